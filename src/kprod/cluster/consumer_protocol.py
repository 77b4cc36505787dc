"""KIP-848 consumer groups (``group.protocol=consumer``): ConsumerGroupHeartbeat.

The coordinator owns the assignment: each membership or subscription change
bumps the group epoch, the server-side assignor (``uniform`` or ``range``)
computes a target assignment for every member, and each heartbeat moves its
member towards its target: first the member gives up what it must revoke (the
answer leaves those partitions out and keeps the old epoch), and only once the
member reports it no longer owns them, and no other member still holds a
partition, does the member receive the partitions and the new epoch. So a
partition never has two owners. This is a small model of Kafka's coordinator:
no regex subscriptions, no racks, a restarted static member replaces its old
self through a rebalance (a new epoch), and partition-count changes of subscribed topics are seen only at the next
membership or subscription change.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ASSIGNORS", "ConsumerGroupState", "ConsumerMember", "HeartbeatResult", "assign", "assignment_bytes"]

NONE = 0
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
FENCED_MEMBER_EPOCH = 110
UNSUPPORTED_ASSIGNOR = 112

LEAVE = -1
STATIC_LEAVE = -2

TopicPartition = tuple[str, int]
ASSIGNORS = ("uniform", "range")


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """What a ConsumerGroupHeartbeat answers (``assignment`` None: unchanged)."""

    error: int
    member_id: str | None = None
    member_epoch: int = -1
    assignment: frozenset[TopicPartition] | None = None
    message: str | None = None


class ConsumerMember:
    __slots__ = (
        "member_id", "instance_id", "client_id", "client_host", "epoch", "topics", "assignor",
        "rebalance_timeout_ms", "assigned", "revoking", "owned", "sent", "session_timer",
    )

    def __init__(self, member_id: str, instance_id: str | None, client_id: str, client_host: str) -> None:
        self.member_id = member_id
        self.instance_id = instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.epoch = 0
        self.topics: tuple[str, ...] = ()
        self.assignor = "uniform"
        self.rebalance_timeout_ms = 0
        self.assigned: set[TopicPartition] = set()  # what the member may own now
        self.revoking: set[TopicPartition] = set()  # taken away, not yet confirmed released
        self.owned: set[TopicPartition] | None = None  # as last reported by the member
        self.sent: frozenset[TopicPartition] | None = None  # the assignment last answered
        self.session_timer: Any = None


def assignment_bytes(partitions: set[TopicPartition]) -> bytes:
    """A member's partitions as a classic consumer protocol Assignment (v0), for DescribeGroups."""
    by_topic: dict[str, list[int]] = {}
    for topic, index in sorted(partitions):
        by_topic.setdefault(topic, []).append(index)
    out = [struct.pack(">hi", 0, len(by_topic))]
    for topic, indexes in by_topic.items():
        name = topic.encode()
        out.append(struct.pack(f">h{len(name)}si{len(indexes)}i", len(name), name, len(indexes), *indexes))
    out.append(struct.pack(">i", -1))  # no user data
    return b"".join(out)


def assign(
    assignor: str, members: dict[str, tuple[str, ...]], partitions: Callable[[str], int]
) -> dict[str, set[TopicPartition]]:
    """Target assignment: ``uniform`` spreads every subscribed partition round robin over the
    members (sorted) subscribed to its topic; ``range`` gives each member a contiguous range per topic."""
    target: dict[str, set[TopicPartition]] = {m: set() for m in members}
    topics = sorted({t for subscribed in members.values() for t in subscribed})
    turn = 0
    for topic in topics:
        takers = sorted(m for m, subscribed in members.items() if topic in subscribed)
        count = partitions(topic)
        if not takers:
            continue
        if assignor == "range":
            per, extra = divmod(count, len(takers))
            start = 0
            for i, member in enumerate(takers):
                size = per + (1 if i < extra else 0)
                target[member].update((topic, p) for p in range(start, start + size))
                start += size
        else:
            for p in range(count):
                target[takers[turn % len(takers)]].add((topic, p))
                turn += 1
    return target


class ConsumerGroupState:
    """The consumer-protocol part of a group: members, epochs, target assignment."""

    def __init__(self) -> None:
        self.members: dict[str, ConsumerMember] = {}
        self.epoch = 0  # the group epoch
        self.assignment_epoch = 0
        self.target: dict[str, set[TopicPartition]] = {}

    def state_name(self) -> str:
        if not self.members:
            return "Empty"
        settled = all(m.epoch == self.assignment_epoch and m.assigned == self.target.get(m.member_id, set())
                      and not m.revoking for m in self.members.values())
        return "Stable" if settled else "Reconciling"

    def heartbeat(
        self,
        member_id: str,
        epoch: int,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        topics: Sequence[str] | None,
        assignor: str | None,
        owned: Sequence[TopicPartition] | None,
        partitions: Callable[[str], int],
    ) -> tuple[HeartbeatResult, ConsumerMember | None]:
        """One heartbeat: (answer, the member to keep alive, None if it left)."""
        if assignor is not None and assignor not in ASSIGNORS:
            return HeartbeatResult(UNSUPPORTED_ASSIGNOR, message=f"Assignors served: {', '.join(ASSIGNORS)}."), None
        if epoch in (LEAVE, STATIC_LEAVE):
            member = self.members.pop(member_id, None)
            if member is None:
                return HeartbeatResult(UNKNOWN_MEMBER_ID, member_id, epoch), None
            self.epoch += 1
            return HeartbeatResult(NONE, member_id, epoch), None
        if epoch == 0:
            if topics is None:
                return HeartbeatResult(INVALID_REQUEST, message="A joining member must give its subscribed topics."), None
            member_id = member_id or str(uuid.uuid4())
            if instance_id is not None:  # a restarted static member replaces its old self
                for old in [m for m in self.members.values() if m.instance_id == instance_id and m.member_id != member_id]:
                    del self.members[old.member_id]
                    self.epoch += 1
            member = self.members.get(member_id)
            if member is None:
                member = self.members[member_id] = ConsumerMember(member_id, instance_id, client_id, client_host)
                self.epoch += 1
            member.sent = None  # a (re)joining member gets its whole assignment
            member.owned = set(owned) if owned is not None else set()
        else:
            member = self.members.get(member_id)
            if member is None:
                return HeartbeatResult(UNKNOWN_MEMBER_ID, member_id, epoch), None
            if epoch != member.epoch:
                return HeartbeatResult(FENCED_MEMBER_EPOCH, member_id, member.epoch), None
            if owned is not None:
                member.owned = set(owned)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        if topics is not None and tuple(sorted(topics)) != member.topics:
            member.topics = tuple(sorted(topics))
            self.epoch += 1
        if assignor is not None and assignor != member.assignor:
            member.assignor = assignor
            self.epoch += 1
        self._reconcile(member, partitions)
        assignment = frozenset(member.assigned)
        changed = assignment != member.sent
        member.sent = assignment
        return HeartbeatResult(NONE, member_id, member.epoch, assignment if changed else None), member

    def remove(self, member_id: str) -> None:
        """A member whose session expired."""
        if self.members.pop(member_id, None) is not None:
            self.epoch += 1

    def _reconcile(self, member: ConsumerMember, partitions: Callable[[str], int]) -> None:
        if self.assignment_epoch < self.epoch:
            assignor = next(iter(sorted(m.assignor for m in self.members.values())), "uniform")
            self.target = assign(assignor, {m.member_id: m.topics for m in self.members.values()}, partitions)
            self.assignment_epoch = self.epoch
        target = self.target.get(member.member_id, set())
        if member.revoking and (member.owned is None or not member.owned & member.revoking):
            member.revoking.clear()  # the member confirmed it released them
        to_revoke = member.assigned - target
        if to_revoke:
            member.assigned -= to_revoke
            member.revoking |= to_revoke
        if member.revoking:
            return  # keep the old epoch until the member has let go
        held = set()
        for other in self.members.values():
            if other is not member:
                held |= other.assigned | other.revoking
        member.assigned |= (target - member.assigned) - held
        member.epoch = self.assignment_epoch
