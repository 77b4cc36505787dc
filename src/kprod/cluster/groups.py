"""The classic consumer group coordinator: membership, rebalances and committed offsets.

This is the state machine of Kafka's classic group protocol (JoinGroup,
SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, ...), without sockets or kio:
the API handlers (:mod:`kprod.cluster.api_group`) translate requests into
calls here and results back into responses. A group moves through Kafka's
states::

    Empty -> PreparingRebalance -> CompletingRebalance -> Stable
               ^______________________|____________________|

A rebalance starts when a member joins, leaves, changes its protocols or
misses its session timeout; it completes when every member has rejoined or
the rebalance timeout (the largest of the members') expires, which removes
the members that did not rejoin. The coordinator picks the protocol every
member supports, gives the leader every member's metadata, and relays the
leader's assignments untouched: assignors (range, roundrobin,
cooperative-sticky) run in the clients, as in Kafka.

Groups and their committed offsets are cluster state, not a broker's memory:
the coordinator of a group is the leader of the offsets partition its id
hashes to (``abs(java hashCode) % offsets.topic.num.partitions``, as Kafka
places groups on ``__consumer_offsets``), and that leadership moves to the
next running broker when the coordinator stops, keeping every group and
offset. Timeouts are timers on the cluster's event loop and its monotonic
clock, never sleeps. KIP-848 groups (``group.protocol=consumer``) live in the
same ``Group`` objects, with their members and epochs in
:mod:`kprod.cluster.consumer_protocol`, so offsets and the admin APIs serve
both kinds.
"""

from __future__ import annotations

import logging
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kprod.cluster.consumer_protocol import ConsumerGroupState, HeartbeatResult
from kprod.cluster.state import ClusterState

__all__ = [
    "CommittedOffset",
    "GroupCoordinator",
    "GroupInfo",
    "JoinResult",
    "MemberInfo",
    "SyncResult",
    "java_string_hash",
]

NONE = 0
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
STALE_MEMBER_EPOCH = 113

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"
STATES = (EMPTY, PREPARING_REBALANCE, COMPLETING_REBALANCE, STABLE, DEAD)

log = logging.getLogger("kprod.cluster.groups")

Timer = Any  # the event loop's timer: has cancel()
Schedule = Callable[[float, Callable[[], None]], Timer]


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units, 32-bit overflow)."""
    value = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        value = (31 * value + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _kafka_abs(value: int) -> int:
    """Kafka's ``Utils.abs``: ``Integer.MIN_VALUE`` maps to 0."""
    return 0 if value == -(1 << 31) else abs(value)


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What a JoinGroup answers (``members`` only for the leader)."""

    error: int
    member_id: str
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a SyncGroup answers."""

    error: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """One committed position of a group in a partition."""

    offset: int
    leader_epoch: int
    metadata: str | None
    commit_time_ms: int


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A group member as ``EmbeddedCluster.group_info`` reports it."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    assignment: bytes
    partitions: tuple[tuple[str, int], ...] = ()  # consumer-protocol members: what they own now


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A consumer group as ``EmbeddedCluster.group_info`` reports it."""

    group_id: str
    state: str
    generation: int
    protocol_type: str | None
    protocol: str | None
    leader: str | None
    members: tuple[MemberInfo, ...]
    coordinator: int
    offsets: dict[tuple[str, int], int]
    group_type: str = "classic"  # or "consumer" (KIP-848)


class Member:
    """One member of a classic group."""

    __slots__ = (
        "member_id",
        "instance_id",
        "client_id",
        "client_host",
        "session_timeout_ms",
        "rebalance_timeout_ms",
        "protocol_type",
        "protocols",
        "assignment",
        "join_callback",
        "sync_callback",
        "session_timer",
    )

    def __init__(
        self,
        member_id: str,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
    ) -> None:
        self.member_id = member_id
        self.instance_id = instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = list(protocols)
        self.assignment = b""
        self.join_callback: Callable[[JoinResult], None] | None = None
        self.sync_callback: Callable[[SyncResult], None] | None = None
        self.session_timer: Timer | None = None

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def info(self) -> MemberInfo:
        return MemberInfo(
            self.member_id,
            self.instance_id,
            self.client_id,
            self.client_host,
            self.session_timeout_ms,
            self.rebalance_timeout_ms,
            self.assignment,
        )


class Group:
    """One classic group: its members, generation and committed offsets."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.state = EMPTY
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_members: dict[str, Timer] = {}  # ids handed out with MEMBER_ID_REQUIRED
        self.pending_sync: set[str] = set()  # members still to send SyncGroup this generation
        self.offsets: dict[tuple[str, int], CommittedOffset] = {}
        self.join_timer: Timer | None = None
        self.sync_timer: Timer | None = None
        self.initial_delay = False  # the first rebalance of an empty group waits this out
        self.consumer: ConsumerGroupState | None = None  # set for KIP-848 groups

    @property
    def group_type(self) -> str:
        return "classic" if self.consumer is None else "consumer"

    def has_members(self) -> bool:
        return bool(self.members) or (self.consumer is not None and bool(self.consumer.members))

    def is_fenced(self, member_id: str, instance_id: str | None) -> bool:
        """A static member whose instance id now belongs to another member id."""
        if instance_id is None:
            return False
        owner = self.static_members.get(instance_id)
        return owner is not None and owner != member_id

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def supports(self, protocol_type: str, protocols: Sequence[tuple[str, bytes]]) -> bool:
        if not protocol_type or not protocols:
            return False
        if not self.members:
            return True
        names = {name for name, _ in protocols}
        return protocol_type == self.protocol_type and bool(names & self._candidates())

    def _candidates(self) -> set[str]:
        """Protocols every member supports."""
        candidates: set[str] | None = None
        for member in self.members.values():
            names = {name for name, _ in member.protocols}
            candidates = names if candidates is None else candidates & names
        return candidates or set()

    def select_protocol(self) -> str | None:
        """The protocol most members prefer among those all support (Kafka's vote)."""
        candidates = self._candidates()
        votes: dict[str, int] = {}
        for member in self.members.values():
            for name, _ in member.protocols:
                if name in candidates:
                    votes[name] = votes.get(name, 0) + 1
                    break
        if not votes:
            return None
        return max(votes, key=lambda name: votes[name])

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.join_callback is not None for m in self.members.values())

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to (consumer protocol), None if not readable."""
        if self.protocol_type != "consumer" or self.state == EMPTY:
            return set()
        topics: set[str] = set()
        for member in self.members.values():
            found = consumer_subscription_topics(member.metadata(self.protocol_name))
            if found is None:
                return None
            topics |= found
        return topics


def consumer_subscription_topics(metadata: bytes) -> set[str] | None:
    """The topics of a consumer protocol Subscription (version, topics, ...), None if unreadable."""
    try:
        pos = 2  # int16 version
        (count,) = struct.unpack_from(">i", metadata, pos)
        pos += 4
        topics = set()
        for _ in range(max(count, 0)):
            (size,) = struct.unpack_from(">h", metadata, pos)
            pos += 2
            topics.add(metadata[pos : pos + size].decode())
            pos += size
        return topics
    except (struct.error, UnicodeDecodeError):
        return None


class GroupCoordinator:
    """Every classic group of the cluster, and which broker coordinates each.

    All methods run on the event loop thread. Results that may wait (JoinGroup,
    SyncGroup) are delivered through callbacks; the others are returned.
    """

    def __init__(self, state: ClusterState, schedule: Schedule, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = state.config
        self._state = state
        self._schedule = schedule
        self._clock = clock
        self.groups: dict[str, Group] = {}
        self._leaders: dict[int, int] = {}  # offsets partition -> broker leading it

    # -- where groups live ---------------------------------------------------------------

    def offsets_partition(self, group_id: str) -> int:
        return _kafka_abs(java_string_hash(group_id)) % self.config.offsets_topic_num_partitions

    def coordinator(self, group_id: str) -> int:
        """The node coordinating ``group_id`` (-1 when no broker runs).

        The offsets partition's replicas are every broker, starting at the
        partition index; its leader stays until it stops, then the next
        running replica takes over (and keeps it when the old one returns).
        """
        partition = self.offsets_partition(group_id)
        running = set(self._state.running_ids())
        leader = self._leaders.get(partition)
        if leader is not None and leader in running:
            return leader
        nodes = sorted(self._state.brokers)
        for i in range(len(nodes)):
            node = nodes[(partition + i) % len(nodes)]
            if node in running:
                self._leaders[partition] = node
                return node
        return -1

    # -- time --------------------------------------------------------------------------------

    def _after(self, ms: int, callback: Callable[[], None]) -> Timer:
        return self._schedule(self._clock() + ms / 1000, callback)

    @staticmethod
    def _cancel(timer: Timer | None) -> None:
        if timer is not None:
            timer.cancel()

    def _heartbeat(self, group: Group, member: Member) -> None:
        """Restart the member's session timer."""
        self._cancel(member.session_timer)
        member.session_timer = self._after(member.session_timeout_ms, lambda: self._session_expired(group, member))

    def _session_expired(self, group: Group, member: Member) -> None:
        if group.members.get(member.member_id) is not member:
            return
        if member.join_callback is not None or member.sync_callback is not None:
            self._heartbeat(group, member)  # waiting on the coordinator counts as alive, as in Kafka
            return
        self._remove_member(group, member)

    # -- JoinGroup ---------------------------------------------------------------------------

    def join(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
        require_known_member_id: bool,
        respond: Callable[[JoinResult], None],
    ) -> None:
        """Handle a JoinGroup; ``respond`` is called now or when the rebalance completes."""
        config = self.config
        if not config.group_min_session_timeout_ms <= session_timeout_ms <= config.group_max_session_timeout_ms:
            respond(JoinResult(INVALID_SESSION_TIMEOUT, member_id))
            return
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                respond(JoinResult(UNKNOWN_MEMBER_ID, member_id))
                return
            group = Group(group_id)
        if not group.supports(protocol_type, protocols) or group.consumer is not None and group.has_members():
            respond(JoinResult(INCONSISTENT_GROUP_PROTOCOL, member_id))
            return
        self.groups.setdefault(group_id, group)
        group.consumer = None  # an empty KIP-848 group (offsets only) becomes classic
        args = (client_id, client_host, session_timeout_ms, rebalance_timeout_ms, protocol_type, protocols)
        if not member_id:
            new_id = f"{instance_id if instance_id is not None else client_id}-{uuid.uuid4()}"
            if instance_id is not None:
                self._static_join(group, new_id, instance_id, args, respond)
            elif require_known_member_id:
                group.pending_members[new_id] = self._after(
                    session_timeout_ms, lambda: self._pending_expired(group, new_id)
                )
                respond(JoinResult(MEMBER_ID_REQUIRED, new_id))
            else:
                self._add_member(group, new_id, None, args, respond)
            return
        if member_id in group.pending_members:
            self._add_member(group, member_id, instance_id, args, respond)
            return
        if group.is_fenced(member_id, instance_id):
            respond(JoinResult(FENCED_INSTANCE_ID, member_id))
            return
        member = group.members.get(member_id)
        if member is None:
            respond(JoinResult(UNKNOWN_MEMBER_ID, member_id))
            return
        changed = member.protocols != list(protocols)
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.protocols = list(protocols)
        self._heartbeat(group, member)
        if group.state == PREPARING_REBALANCE:
            self._wait_for_join(group, member, respond)
        elif group.state == COMPLETING_REBALANCE and not changed:
            respond(self._join_result(group, member))  # it missed our answer: give it again
        elif group.state == STABLE and not changed and member.member_id != group.leader_id:
            respond(self._join_result(group, member))  # nothing to do: it may sync again
        else:
            member.join_callback = respond
            self._prepare_rebalance(group)

    def _add_member(
        self,
        group: Group,
        member_id: str,
        instance_id: str | None,
        args: tuple[Any, ...],
        respond: Callable[[JoinResult], None],
    ) -> None:
        self._cancel(group.pending_members.pop(member_id, None))
        member = Member(member_id, instance_id, *args)
        group.members[member_id] = member
        if instance_id is not None:
            group.static_members[instance_id] = member_id
        if group.leader_id is None:
            group.leader_id = member_id
        if not group.protocol_type:
            group.protocol_type = member.protocol_type
        self._heartbeat(group, member)
        member.join_callback = respond
        if group.state == PREPARING_REBALANCE:
            self._check_join(group)
        else:
            self._prepare_rebalance(group)

    def _static_join(
        self,
        group: Group,
        new_id: str,
        instance_id: str,
        args: tuple[Any, ...],
        respond: Callable[[JoinResult], None],
    ) -> None:
        """A static member (re)joins without a member id: it replaces its old id, fencing it."""
        old_id = group.static_members.get(instance_id)
        member = group.members.get(old_id) if old_id is not None else None
        if member is None:
            self._add_member(group, new_id, instance_id, args, respond)
            return
        old_join, old_sync = member.join_callback, member.sync_callback
        member.join_callback = member.sync_callback = None
        if old_join is not None:
            old_join(JoinResult(FENCED_INSTANCE_ID, member.member_id))
        if old_sync is not None:
            old_sync(SyncResult(FENCED_INSTANCE_ID))
        del group.members[member.member_id]
        if member.member_id in group.pending_sync:
            group.pending_sync.discard(member.member_id)
            group.pending_sync.add(new_id)
        if group.leader_id == member.member_id:
            group.leader_id = new_id
        member.member_id = new_id
        group.members[new_id] = member
        group.static_members[instance_id] = new_id
        old_protocols = member.protocols
        (member.client_id, member.client_host, member.session_timeout_ms, member.rebalance_timeout_ms,
         member.protocol_type, protocols) = args
        member.protocols = list(protocols)
        self._heartbeat(group, member)
        if group.state == STABLE and (member.protocols == old_protocols or group.select_protocol() == group.protocol_name):
            # Same protocol next generation: keep the assignment, no rebalance (KIP-345).
            respond(self._join_result(group, member, skip_assignment=member.member_id == group.leader_id))
        elif group.state == PREPARING_REBALANCE:
            self._wait_for_join(group, member, respond)
        else:
            member.join_callback = respond
            self._prepare_rebalance(group)

    def _wait_for_join(self, group: Group, member: Member, respond: Callable[[JoinResult], None]) -> None:
        previous = member.join_callback
        member.join_callback = respond
        if previous is not None:
            previous(JoinResult(UNKNOWN_MEMBER_ID, member.member_id))  # replaced by a newer JoinGroup
        self._check_join(group)

    def _pending_expired(self, group: Group, member_id: str) -> None:
        if group.pending_members.pop(member_id, None) is not None:
            self._check_join(group)

    def _join_result(self, group: Group, member: Member, skip_assignment: bool = False) -> JoinResult:
        is_leader = member.member_id == group.leader_id
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if is_leader:
            members = tuple(
                (m.member_id, m.instance_id, m.metadata(group.protocol_name)) for m in group.members.values()
            )
        return JoinResult(
            NONE,
            member.member_id,
            group.generation,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            members,
            skip_assignment,
        )

    # -- rebalancing -------------------------------------------------------------------------

    def _prepare_rebalance(self, group: Group) -> None:
        if group.state == COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = b""
                callback, member.sync_callback = member.sync_callback, None
                if callback is not None:
                    callback(SyncResult(REBALANCE_IN_PROGRESS))
        self._cancel(group.sync_timer)
        group.sync_timer = None
        group.pending_sync.clear()
        timeout = group.rebalance_timeout_ms()
        delay = self.config.group_initial_rebalance_delay_ms
        group.initial_delay = group.state == EMPTY and delay > 0
        if group.initial_delay:
            timeout = min(delay, timeout)
        log.debug("group %s: preparing a rebalance from %s, generation %d", group.group_id, group.state, group.generation)
        group.state = PREPARING_REBALANCE
        self._cancel(group.join_timer)
        group.join_timer = self._after(timeout, lambda: self._join_expired(group))
        self._check_join(group)

    def _join_expired(self, group: Group) -> None:
        group.join_timer = None
        group.initial_delay = False
        if group.state == PREPARING_REBALANCE:
            self._complete_join(group)

    def _check_join(self, group: Group) -> None:
        if group.state == PREPARING_REBALANCE and not group.initial_delay and group.all_joined():
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        self._cancel(group.join_timer)
        group.join_timer = None
        for member in [m for m in group.members.values() if m.join_callback is None]:
            self._drop(group, member)  # did not rejoin within the rebalance timeout
        group.generation += 1
        if not group.members:
            group.state = EMPTY
            group.protocol_name = None
            group.leader_id = None
            return
        group.protocol_name = group.select_protocol()
        group.state = COMPLETING_REBALANCE
        log.debug(
            "group %s: generation %d, protocol %s, leader %s, members %s",
            group.group_id, group.generation, group.protocol_name, group.leader_id, list(group.members),
        )
        group.pending_sync = set(group.members)
        generation = group.generation
        group.sync_timer = self._after(group.rebalance_timeout_ms(), lambda: self._sync_expired(group, generation))
        for member in list(group.members.values()):
            callback, member.join_callback = member.join_callback, None
            self._heartbeat(group, member)
            if callback is not None:
                callback(self._join_result(group, member))

    def _sync_expired(self, group: Group, generation: int) -> None:
        """Members that did not send SyncGroup within the rebalance timeout leave."""
        group.sync_timer = None
        if group.generation != generation or group.state not in (COMPLETING_REBALANCE, STABLE):
            return
        late = [group.members[m] for m in group.pending_sync if m in group.members]
        if not late:
            return
        for member in late:
            self._drop(group, member)
        self._after_removal(group)

    def _drop(self, group: Group, member: Member) -> None:
        """Forget a member (its waiting JoinGroup/SyncGroup get UNKNOWN_MEMBER_ID)."""
        self._cancel(member.session_timer)
        member.session_timer = None
        group.members.pop(member.member_id, None)
        group.pending_sync.discard(member.member_id)
        if member.instance_id is not None and group.static_members.get(member.instance_id) == member.member_id:
            del group.static_members[member.instance_id]
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)
        join, sync = member.join_callback, member.sync_callback
        member.join_callback = member.sync_callback = None
        if join is not None:
            join(JoinResult(UNKNOWN_MEMBER_ID, member.member_id))
        if sync is not None:
            sync(SyncResult(UNKNOWN_MEMBER_ID))

    def _remove_member(self, group: Group, member: Member) -> None:
        self._drop(group, member)
        self._after_removal(group)

    def _after_removal(self, group: Group) -> None:
        if group.state in (STABLE, COMPLETING_REBALANCE):
            self._prepare_rebalance(group)
        elif group.state == PREPARING_REBALANCE:
            self._check_join(group)

    # -- SyncGroup / Heartbeat / LeaveGroup ---------------------------------------------------

    def sync(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation: int,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
        respond: Callable[[SyncResult], None],
    ) -> None:
        """Handle a SyncGroup; ``respond`` is called now or when the leader's assignments arrive."""
        group = self.groups.get(group_id)
        if group is None:
            respond(SyncResult(UNKNOWN_MEMBER_ID))
            return
        if group.is_fenced(member_id, instance_id):
            respond(SyncResult(FENCED_INSTANCE_ID))
            return
        member = group.members.get(member_id)
        if member is None:
            respond(SyncResult(UNKNOWN_MEMBER_ID))
            return
        if generation != group.generation:
            respond(SyncResult(ILLEGAL_GENERATION))
            return
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            respond(SyncResult(INCONSISTENT_GROUP_PROTOCOL))
            return
        if group.state == EMPTY:
            respond(SyncResult(UNKNOWN_MEMBER_ID))
            return
        if group.state == PREPARING_REBALANCE:
            respond(SyncResult(REBALANCE_IN_PROGRESS))
            return
        self._heartbeat(group, member)
        group.pending_sync.discard(member_id)
        if group.state == STABLE:
            respond(self._sync_result(group, member))
            return
        # CompletingRebalance: the followers wait for the leader's assignments.
        previous, member.sync_callback = member.sync_callback, respond
        if previous is not None:
            previous(SyncResult(UNKNOWN_MEMBER_ID))
        if member_id == group.leader_id:
            for each in group.members.values():
                each.assignment = assignments.get(each.member_id, b"")
            group.state = STABLE
            for each in list(group.members.values()):
                callback, each.sync_callback = each.sync_callback, None
                if callback is not None:
                    callback(self._sync_result(group, each))

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncResult:
        return SyncResult(NONE, member.assignment, group.protocol_type, group.protocol_name)

    def heartbeat(self, group_id: str, member_id: str, instance_id: str | None, generation: int) -> int:
        """Handle a Heartbeat: an error code."""
        group = self.groups.get(group_id)
        if group is None:
            return UNKNOWN_MEMBER_ID
        if group.is_fenced(member_id, instance_id):
            return FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None:
            return UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return ILLEGAL_GENERATION
        if group.state == EMPTY:
            return UNKNOWN_MEMBER_ID
        self._heartbeat(group, member)
        return REBALANCE_IN_PROGRESS if group.state == PREPARING_REBALANCE else NONE

    def leave(self, group_id: str, leaving: Sequence[tuple[str, str | None]]) -> list[int]:
        """Handle a LeaveGroup: one error code per (member id, instance id)."""
        group = self.groups.get(group_id)
        if group is None:
            return [UNKNOWN_MEMBER_ID] * len(leaving)
        codes = []
        for member_id, instance_id in leaving:
            if not member_id and instance_id is not None:
                member_id = group.static_members.get(instance_id, "")
                if not member_id:
                    codes.append(UNKNOWN_MEMBER_ID)
                    continue
            if group.is_fenced(member_id, instance_id):
                codes.append(FENCED_INSTANCE_ID)
            elif member_id in group.pending_members:
                self._cancel(group.pending_members.pop(member_id))
                self._check_join(group)
                codes.append(NONE)
            elif member_id not in group.members:
                codes.append(UNKNOWN_MEMBER_ID)
            else:
                self._remove_member(group, group.members[member_id])
                codes.append(NONE)
        return codes

    # -- offsets -------------------------------------------------------------------------------

    def check_commit(self, group_id: str, member_id: str, instance_id: str | None, generation: int) -> int:
        """Whether an OffsetCommit may write: an error code (creates a group for a simple commit)."""
        group = self.groups.get(group_id)
        if group is None:
            if generation >= 0:
                return ILLEGAL_GENERATION
            self.groups[group_id] = Group(group_id)
            return NONE
        if group.consumer is not None and group.consumer.members:
            consumer_member = group.consumer.members.get(member_id)
            if consumer_member is None:
                return UNKNOWN_MEMBER_ID
            return NONE if generation == consumer_member.epoch else STALE_MEMBER_EPOCH
        if group.is_fenced(member_id, instance_id):
            return FENCED_INSTANCE_ID
        if generation < 0 and group.state == EMPTY:
            return NONE  # the group only stores offsets (assigned partitions, admin tools)
        member = group.members.get(member_id)
        if member is None:
            return UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return ILLEGAL_GENERATION
        if group.state == COMPLETING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        self._heartbeat(group, member)
        return NONE

    def commit(self, group_id: str, offsets: dict[tuple[str, int], tuple[int, int, str | None]]) -> None:
        """Store offsets (after ``check_commit`` said NONE)."""
        group = self.groups[group_id]
        now = int(time.time() * 1000)
        for key, (offset, epoch, metadata) in offsets.items():
            group.offsets[key] = CommittedOffset(offset, epoch, metadata, now)

    def committed(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        group = self.groups.get(group_id)
        return dict(group.offsets) if group is not None else {}

    def delete_offsets(self, group_id: str, partitions: Iterable[tuple[str, int]]) -> None:
        group = self.groups.get(group_id)
        if group is not None:
            for key in partitions:
                group.offsets.pop(key, None)

    # -- admin -------------------------------------------------------------------------------------

    def delete_group(self, group_id: str) -> int:
        group = self.groups.get(group_id)
        if group is None:
            return GROUP_ID_NOT_FOUND
        if group.has_members() or group.state != EMPTY:
            return NON_EMPTY_GROUP
        for timer in group.pending_members.values():
            self._cancel(timer)
        self._cancel(group.join_timer)
        group.state = DEAD
        del self.groups[group_id]
        return NONE

    def info(self, group_id: str) -> GroupInfo | None:
        group = self.groups.get(group_id)
        if group is None:
            return None
        consumer = group.consumer
        if consumer is not None:
            members = tuple(
                MemberInfo(m.member_id, m.instance_id, m.client_id, m.client_host,
                           self.config.group_consumer_session_timeout_ms, m.rebalance_timeout_ms, b"",
                           tuple(sorted(m.assigned)))
                for m in consumer.members.values()
            )
            generation, protocol = consumer.epoch, None
        else:
            members = tuple(m.info() for m in group.members.values())
            generation, protocol = group.generation, group.protocol_name
        return GroupInfo(
            group.group_id,
            group.state,
            generation,
            group.protocol_type,
            protocol,
            group.leader_id,
            members,
            self.coordinator(group_id),
            {key: committed.offset for key, committed in group.offsets.items()},
            group.group_type,
        )

    # -- KIP-848 consumer groups -------------------------------------------------------------------

    def consumer_heartbeat(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        topics: Sequence[str] | None,
        assignor: str | None,
        owned: Sequence[tuple[str, int]] | None,
    ) -> HeartbeatResult:
        """Handle a ConsumerGroupHeartbeat (see :mod:`kprod.cluster.consumer_protocol`)."""
        group = self.groups.get(group_id)
        if group is None:
            if epoch != 0:
                return HeartbeatResult(UNKNOWN_MEMBER_ID if epoch > 0 else NONE, member_id, epoch)
            group = self.groups[group_id] = Group(group_id)
        if group.consumer is None:
            if group.members or group.state != EMPTY:
                return HeartbeatResult(GROUP_ID_NOT_FOUND, message=f"Group {group_id} is a classic group.")
            group.consumer = ConsumerGroupState()  # an empty classic group (offsets only) converts
            group.protocol_type = "consumer"
        topics_state = self._state.topics

        def partitions(topic: str) -> int:
            found = topics_state.get(topic)
            return len(found.partitions) if found is not None else 0

        if epoch < 0 and member_id in group.consumer.members:
            self._cancel(group.consumer.members[member_id].session_timer)  # it leaves
        result, member = group.consumer.heartbeat(
            member_id, epoch, instance_id, client_id, client_host, rebalance_timeout_ms, topics, assignor, owned,
            partitions,
        )
        if member is not None:
            self._cancel(member.session_timer)
            member.session_timer = self._after(
                self.config.group_consumer_session_timeout_ms,
                lambda: self._consumer_expired(group, member.member_id),
            )
        self._settle_consumer_group(group)
        return result

    def _consumer_expired(self, group: Group, member_id: str) -> None:
        if group.consumer is not None:
            group.consumer.remove(member_id)
            self._settle_consumer_group(group)

    def _settle_consumer_group(self, group: Group) -> None:
        consumer = group.consumer
        if consumer is None:
            return
        group.state = consumer.state_name()  # Empty, Stable or Reconciling
        group.generation = consumer.epoch
