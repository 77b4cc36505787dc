"""The group coordinator at the protocol level: raw requests, exact error codes.

FindCoordinator placement, MEMBER_ID_REQUIRED, generation fencing
(ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS), rebalance and
session timeouts (waited on as conditions, never slept), static membership
(FENCED_INSTANCE_ID, leaving by instance id), batched LeaveGroup, offsets
(commit, multi-group fetch, delete), list/describe/delete groups, and a
coordinator that moves with its offsets when its broker stops.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from cluster_helpers import connect, wait_until
from kprod.cluster import EmbeddedCluster
from kprod.cluster.entities import make
from kprod.cluster.groups import java_string_hash
from kprod.net.blocking import BlockingConnection
from kprod.protocol.messages import ApiKey, request_module, request_type

TOPIC = "events"
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86


def _ms(value: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=value)


def subscription(*topics: str) -> bytes:
    """A consumer protocol Subscription v0: the topics, no user data."""
    body = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        body += struct.pack(">h", len(topic)) + topic.encode()
    return body + struct.pack(">i", -1)


class Client:
    """Raw group requests over one blocking connection to one broker."""

    def __init__(self, cluster: EmbeddedCluster, node_id: int) -> None:
        self.conn: BlockingConnection = connect(cluster, node_id)

    def close(self) -> None:
        self.conn.close()

    def send(self, api: int, version: int, **fields: Any) -> Any:
        return self.conn.send(make(request_type(api, version), **fields))

    def join(
        self,
        group: str,
        member_id: str = "",
        *,
        instance: str | None = None,
        session_ms: int = 10_000,
        rebalance_ms: int = 10_000,
        metadata: bytes = b"",
        version: int = 9,
    ) -> Any:
        module = request_module(ApiKey.JOIN_GROUP, version)
        return self.send(
            ApiKey.JOIN_GROUP,
            version,
            group_id=group,
            session_timeout=_ms(session_ms),
            rebalance_timeout=_ms(rebalance_ms),
            member_id=member_id,
            group_instance_id=instance,
            protocol_type="consumer",
            protocols=(module.JoinGroupRequestProtocol(name="range", metadata=metadata or subscription(TOPIC)),),
            reason=None,
        )

    def join_new(self, group: str, **options: Any) -> Any:
        """Join as a new dynamic member: MEMBER_ID_REQUIRED first, then the real join."""
        first = self.join(group, **options)
        assert int(first.error_code) == MEMBER_ID_REQUIRED and first.member_id
        return self.join(group, first.member_id, **options)

    def sync(
        self, group: str, member_id: str, generation: int, assignments: dict[str, bytes] | None = None,
        *, instance: str | None = None,
    ) -> Any:
        module = request_module(ApiKey.SYNC_GROUP, 5)
        return self.send(
            ApiKey.SYNC_GROUP,
            5,
            group_id=group,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=instance,
            protocol_type="consumer",
            protocol_name="range",
            assignments=tuple(
                module.SyncGroupRequestAssignment(member_id=m, assignment=a) for m, a in (assignments or {}).items()
            ),
        )

    def heartbeat(self, group: str, member_id: str, generation: int, *, instance: str | None = None) -> int:
        response = self.send(
            ApiKey.HEARTBEAT, 4, group_id=group, generation_id=generation, member_id=member_id,
            group_instance_id=instance,
        )
        return int(response.error_code)

    def commit(
        self, group: str, offsets: dict[int, int], *, member_id: str = "", generation: int = -1,
        instance: str | None = None, topic: str = TOPIC,
    ) -> list[int]:
        module = request_module(ApiKey.OFFSET_COMMIT, 9)
        response = self.send(
            ApiKey.OFFSET_COMMIT,
            9,
            group_id=group,
            generation_id_or_member_epoch=generation,
            member_id=member_id,
            group_instance_id=instance,
            topics=(
                module.OffsetCommitRequestTopic(
                    name=topic,
                    partitions=tuple(
                        module.OffsetCommitRequestPartition(
                            partition_index=p, committed_offset=o, committed_leader_epoch=3,
                            committed_metadata=f"meta-{p}",
                        )
                        for p, o in offsets.items()
                    ),
                ),
            ),
        )
        return [int(p.error_code) for t in response.topics for p in t.partitions]

    def fetch_offsets(self, groups: dict[str, list[int] | None]) -> dict[str, Any]:
        """OffsetFetch v8 for several groups: {group: (error, {partition: (offset, epoch, metadata, error)})}."""
        module = request_module(ApiKey.OFFSET_FETCH, 8)
        response = self.send(
            ApiKey.OFFSET_FETCH,
            8,
            groups=tuple(
                module.OffsetFetchRequestGroup(
                    group_id=g,
                    topics=None if parts is None else (module.OffsetFetchRequestTopics(name=TOPIC, partition_indexes=tuple(parts)),),
                )
                for g, parts in groups.items()
            ),
            require_stable=False,
        )
        return {
            g.group_id: (
                int(g.error_code),
                {
                    (t.name, p.partition_index): (p.committed_offset, p.committed_leader_epoch, p.metadata, int(p.error_code))
                    for t in g.topics
                    for p in t.partitions
                },
            )
            for g in response.groups
        }


@pytest.fixture
def clients(cluster: EmbeddedCluster) -> Iterator[Any]:
    """clients(group) -> a Client connected to the group's coordinator (all closed at the end)."""
    cluster.create_topic(TOPIC, partitions=3, replication_factor=3)
    opened: list[Client] = []

    def make_client(group: str | None = None, node_id: int | None = None) -> Client:
        client = Client(cluster, node_id if node_id is not None else cluster.group_coordinator(group or ""))
        opened.append(client)
        return client

    yield make_client
    for client in opened:
        client.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def _waiting_join(cluster: EmbeddedCluster, group: str, members: int) -> None:
    wait_until(lambda: cluster.group_info(group).state == "PreparingRebalance"
               and len(cluster.group_info(group).members) == members, what="a rebalance in progress")


# -- FindCoordinator --------------------------------------------------------------------------


def test_java_string_hash_matches_java() -> None:
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("") == 0
    assert java_string_hash("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE: Kafka's abs maps it to 0


def test_find_coordinator_places_groups_like_kafka(cluster: EmbeddedCluster, clients: Any) -> None:
    client = clients(node_id=1)
    groups = ["orders", "payments", "group-42", "polygenelubricants"]
    # offsets partition = abs(hashCode) % 50; its replicas are the brokers rotated by the partition index
    expected = {g: (abs(java_string_hash(g)) if java_string_hash(g) != -(2**31) else 0) % 50 % 3 for g in groups}
    response = client.send(ApiKey.FIND_COORDINATOR, 4, key_type=0, coordinator_keys=tuple(groups))
    found = {c.key: (c.node_id, int(c.error_code)) for c in response.coordinators}
    assert found == {g: (expected[g], NONE) for g in groups}
    ports = {b.node_id: b.port for b in cluster.brokers}
    assert all(c.port == ports[c.node_id] and c.host == "127.0.0.1" for c in response.coordinators)
    single = client.send(ApiKey.FIND_COORDINATOR, 0, key="orders")
    assert (single.node_id, int(single.error_code)) == (expected["orders"], NONE)
    assert [cluster.group_coordinator(g) for g in groups] == [expected[g] for g in groups]
    # transactions are not served
    txn = client.send(ApiKey.FIND_COORDINATOR, 4, key_type=1, coordinator_keys=("tx",))
    assert int(txn.coordinators[0].error_code) == COORDINATOR_NOT_AVAILABLE


def test_group_requests_to_another_broker_get_not_coordinator(cluster: EmbeddedCluster, clients: Any) -> None:
    other = (cluster.group_coordinator("g") + 1) % 3
    client = clients(node_id=other)
    assert int(client.join("g").error_code) == NOT_COORDINATOR
    assert client.heartbeat("g", "m", 1) == NOT_COORDINATOR
    assert client.commit("g", {0: 5}) == [NOT_COORDINATOR]
    assert client.fetch_offsets({"g": [0]})["g"][0] == NOT_COORDINATOR
    assert cluster.groups() == []


# -- membership and generations -----------------------------------------------------------------


def test_member_id_required_then_join_sync_heartbeat(cluster: EmbeddedCluster, clients: Any) -> None:
    client = clients("g")
    first = client.join("g")
    assert int(first.error_code) == MEMBER_ID_REQUIRED and first.member_id.startswith("kprod-")
    joined = client.join("g", first.member_id)
    assert int(joined.error_code) == NONE
    assert (joined.generation_id, joined.leader, joined.member_id, joined.protocol_name) == (
        1, first.member_id, first.member_id, "range")
    assert [(m.member_id, m.metadata) for m in joined.members] == [(first.member_id, subscription(TOPIC))]
    synced = client.sync("g", first.member_id, 1, {first.member_id: b"all of it"})
    assert (int(synced.error_code), synced.assignment) == (NONE, b"all of it")
    assert client.heartbeat("g", first.member_id, 1) == NONE
    assert client.heartbeat("g", first.member_id, 0) == ILLEGAL_GENERATION
    assert client.heartbeat("g", "stranger", 1) == UNKNOWN_MEMBER_ID
    assert int(client.sync("g", first.member_id, 7).error_code) == ILLEGAL_GENERATION
    info = cluster.group_info("g")
    assert (info.state, info.generation, info.leader) == ("Stable", 1, first.member_id)
    assert [m.assignment for m in info.members] == [b"all of it"]
    # before v4 a new member gets its id and joins in one round trip
    old = clients("g2").join("g2", version=3)
    assert int(old.error_code) == NONE and old.generation_id == 1 and old.member_id


def test_session_timeout_outside_the_brokers_bounds_is_refused(cluster: EmbeddedCluster, clients: Any) -> None:
    assert int(clients("g").join("g", session_ms=1000).error_code) == INVALID_SESSION_TIMEOUT
    assert cluster.groups() == []


def test_rebalance_fences_the_old_generation(cluster: EmbeddedCluster, clients: Any, pool: ThreadPoolExecutor) -> None:
    a, b = clients("g"), clients("g")
    first = a.join_new("g")
    a_id = first.member_id
    assert int(a.sync("g", a_id, 1, {a_id: b"p0,p1,p2"}).error_code) == NONE
    assert a.commit("g", {0: 4}, member_id=a_id, generation=1) == [NONE]

    b_first = b.join("g")
    b_join: Future[Any] = pool.submit(b.join, "g", b_first.member_id)
    _waiting_join(cluster, "g", 2)
    assert a.heartbeat("g", a_id, 1) == REBALANCE_IN_PROGRESS
    assert int(a.sync("g", a_id, 1).error_code) == REBALANCE_IN_PROGRESS
    # commits of the current generation are still accepted while it rebalances, as in Kafka
    assert a.commit("g", {0: 5}, member_id=a_id, generation=1) == [NONE]

    a_rejoined = a.join("g", a_id)
    b_joined = b_join.result(10)
    assert a_rejoined.generation_id == b_joined.generation_id == 2
    assert a_rejoined.leader == b_joined.leader == a_id
    assert sorted(m.member_id for m in a_rejoined.members) == sorted([a_id, b_first.member_id])
    assert b_joined.members == ()  # only the leader gets the members

    # The follower's SyncGroup waits for the leader's assignments.
    b_sync: Future[Any] = pool.submit(b.sync, "g", b_first.member_id, 2)
    wait_until(lambda: cluster.group_info("g").state == "CompletingRebalance", what="completing")
    assert a.commit("g", {0: 6}, member_id=a_id, generation=2) == [REBALANCE_IN_PROGRESS]  # until synced
    leader_sync = a.sync("g", a_id, 2, {a_id: b"p0,p1", b_first.member_id: b"p2"})
    assert leader_sync.assignment == b"p0,p1"
    assert b_sync.result(10).assignment == b"p2"
    assert a.commit("g", {0: 6}, member_id=a_id, generation=1) == [ILLEGAL_GENERATION]
    assert a.commit("g", {0: 6}, member_id="stranger", generation=2) == [UNKNOWN_MEMBER_ID]
    assert a.commit("g", {0: 7}, member_id=a_id, generation=2) == [NONE]
    assert cluster.group_info("g").offsets == {(TOPIC, 0): 7}


def test_rebalance_timeout_removes_members_that_do_not_rejoin(cluster: EmbeddedCluster, clients: Any) -> None:
    a, b = clients("g"), clients("g")
    a_id = a.join_new("g", rebalance_ms=300).member_id
    a.sync("g", a_id, 1, {a_id: b"x"})
    b_id = b.join("g", rebalance_ms=300).member_id
    joined = b.join("g", b_id, rebalance_ms=300)  # returns once a's rebalance timeout expires
    assert (int(joined.error_code), joined.generation_id, joined.leader) == (NONE, 2, b_id)
    assert [m.member_id for m in joined.members] == [b_id]
    assert a.heartbeat("g", a_id, 1) == UNKNOWN_MEMBER_ID


def test_silent_member_expires_after_its_session_timeout() -> None:
    with EmbeddedCluster(brokers=1, config={"group.min.session.timeout.ms": "50"}) as cluster:
        cluster.create_topic(TOPIC)
        client = Client(cluster, 0)
        try:
            member = client.join_new("g", session_ms=200).member_id
            client.sync("g", member, 1, {member: b"x"})
            assert cluster.group_info("g").state == "Stable"
            wait_until(lambda: cluster.group_info("g").state == "Empty", what="the session timing out")
            assert cluster.group_info("g").members == ()
            assert client.heartbeat("g", member, 1) == UNKNOWN_MEMBER_ID
        finally:
            client.close()
        assert cluster.internal_errors() == []


# -- static membership ----------------------------------------------------------------------------


def test_static_member_rejoins_without_rebalance_and_fences_its_old_id(cluster: EmbeddedCluster, clients: Any) -> None:
    first, second = clients("g"), clients("g")
    joined = first.join("g", instance="host-1")  # static members need no MEMBER_ID_REQUIRED round trip
    old_id = joined.member_id
    assert int(joined.error_code) == NONE and joined.generation_id == 1 and old_id.startswith("host-1-")
    assert first.sync("g", old_id, 1, {old_id: b"p0"}, instance="host-1").assignment == b"p0"

    again = second.join("g", instance="host-1")  # the same instance restarted
    new_id = again.member_id
    assert int(again.error_code) == NONE and new_id != old_id
    assert again.generation_id == 1  # no rebalance
    assert again.skip_assignment is True and again.leader == new_id
    assert first.heartbeat("g", old_id, 1, instance="host-1") == FENCED_INSTANCE_ID
    assert first.commit("g", {0: 1}, member_id=old_id, generation=1, instance="host-1") == [FENCED_INSTANCE_ID]
    assert int(first.sync("g", old_id, 1, instance="host-1").error_code) == FENCED_INSTANCE_ID
    assert second.sync("g", new_id, 1, instance="host-1").assignment == b"p0"  # kept its assignment
    assert second.heartbeat("g", new_id, 1, instance="host-1") == NONE
    info = cluster.group_info("g")
    assert (info.generation, [m.member_id for m in info.members]) == (1, [new_id])
    assert info.members[0].group_instance_id == "host-1"


def test_leave_group_batched_by_instance_id(cluster: EmbeddedCluster, clients: Any, pool: ThreadPoolExecutor) -> None:
    a, b, c = clients("g"), clients("g"), clients("g")
    a_join = pool.submit(a.join, "g", instance="i1")
    a_id = a_join.result(10).member_id
    a.sync("g", a_id, 1, {a_id: b"x"}, instance="i1")
    b_join = pool.submit(b.join, "g", instance="i2")
    _waiting_join(cluster, "g", 2)
    a.join("g", a_id, instance="i1")
    b_join.result(10)
    module = request_module(ApiKey.LEAVE_GROUP, 5)
    response = c.send(
        ApiKey.LEAVE_GROUP,
        5,
        group_id="g",
        members=tuple(
            module.MemberIdentity(member_id="", group_instance_id=i, reason="shutdown") for i in ("i1", "i2", "i9")
        ),
    )
    assert int(response.error_code) == NONE
    assert [(m.group_instance_id, int(m.error_code)) for m in response.members] == [
        ("i1", NONE), ("i2", NONE), ("i9", UNKNOWN_MEMBER_ID)]
    info = cluster.group_info("g")
    assert (info.state, info.members) == ("Empty", ())
    # v0: one member by id
    old = c.send(ApiKey.LEAVE_GROUP, 0, group_id="g", member_id="gone")
    assert int(old.error_code) == UNKNOWN_MEMBER_ID


# -- offsets and admin ----------------------------------------------------------------------------


def _same_coordinator_groups(cluster: EmbeddedCluster, count: int) -> list[str]:
    by_node: dict[int, list[str]] = {}
    for i in range(100):
        name = f"app-{i}"
        by_node.setdefault(cluster.group_coordinator(name), []).append(name)
    return next(names[:count] for names in by_node.values() if len(names) >= count)


def test_offsets_commit_fetch_multi_group_and_delete(cluster: EmbeddedCluster, clients: Any) -> None:
    g1, g2, unused = _same_coordinator_groups(cluster, 3)
    elsewhere = next(f"other-{i}" for i in range(100) if cluster.group_coordinator(f"other-{i}") != cluster.group_coordinator(g1))
    client = clients(g1)
    assert client.commit(g1, {0: 10, 1: 11}) == [NONE, NONE]  # a simple (assign-mode) commit
    assert client.commit(g2, {2: 22}) == [NONE]
    assert client.commit(g1, {0: 1}, topic="missing") == [UNKNOWN_TOPIC_OR_PARTITION]
    assert client.commit(g1, {7: 1}) == [UNKNOWN_TOPIC_OR_PARTITION]
    fetched = client.fetch_offsets({g1: [0, 1, 2], g2: None, unused: [0], elsewhere: [0]})
    assert fetched[g1] == (NONE, {
        (TOPIC, 0): (10, 3, "meta-0", NONE), (TOPIC, 1): (11, 3, "meta-1", NONE), (TOPIC, 2): (-1, -1, "", NONE)})
    assert fetched[g2] == (NONE, {(TOPIC, 2): (22, 3, "meta-2", NONE)})
    assert fetched[unused] == (NONE, {(TOPIC, 0): (-1, -1, "", NONE)})
    assert fetched[elsewhere][0] == NOT_COORDINATOR  # each group of a batch is checked on its own

    delete = client.send(ApiKey.OFFSET_DELETE, 0, group_id=g1, topics=(
        request_module(ApiKey.OFFSET_DELETE, 0).OffsetDeleteRequestTopic(
            name=TOPIC, partitions=(request_module(ApiKey.OFFSET_DELETE, 0).OffsetDeleteRequestPartition(partition_index=0),)),))
    assert int(delete.error_code) == NONE and int(delete.topics[0].partitions[0].error_code) == NONE
    assert cluster.group_info(g1).offsets == {(TOPIC, 1): 11}

    listed = client.send(ApiKey.LIST_GROUPS, 5, states_filter=(), types_filter=())
    assert sorted((g.group_id, g.group_state, g.group_type) for g in listed.groups) == [
        (g1, "Empty", "classic"), (g2, "Empty", "classic")]
    described = client.send(ApiKey.DESCRIBE_GROUPS, 5, groups=(g1, unused), include_authorized_operations=False)
    assert [(d.group_id, int(d.error_code), d.group_state, d.members) for d in described.groups] == [
        (g1, NONE, "Empty", ()), (unused, NONE, "Dead", ())]
    v6 = client.send(ApiKey.DESCRIBE_GROUPS, 6, groups=(unused,), include_authorized_operations=False)
    assert int(v6.groups[0].error_code) == GROUP_ID_NOT_FOUND

    deleted = client.send(ApiKey.DELETE_GROUPS, 2, groups_names=(g1, unused))
    assert [int(r.error_code) for r in deleted.results] == [NONE, GROUP_ID_NOT_FOUND]
    assert g1 not in cluster.groups() and g2 in cluster.groups()
    assert client.fetch_offsets({g1: [1]})[g1] == (NONE, {(TOPIC, 1): (-1, -1, "", NONE)})


def test_groups_with_members_cannot_be_deleted_nor_lose_subscribed_offsets(cluster: EmbeddedCluster, clients: Any) -> None:
    client = clients("g")
    member = client.join_new("g").member_id
    client.sync("g", member, 1, {member: b"x"})
    assert client.commit("g", {0: 3}, member_id=member, generation=1) == [NONE]
    deleted = client.send(ApiKey.DELETE_GROUPS, 2, groups_names=("g",))
    assert int(deleted.results[0].error_code) == NON_EMPTY_GROUP
    module = request_module(ApiKey.OFFSET_DELETE, 0)
    delete = client.send(ApiKey.OFFSET_DELETE, 0, group_id="g", topics=(
        module.OffsetDeleteRequestTopic(name=TOPIC, partitions=(module.OffsetDeleteRequestPartition(partition_index=0),)),))
    assert int(delete.topics[0].partitions[0].error_code) == GROUP_SUBSCRIBED_TO_TOPIC
    assert cluster.group_info("g").offsets == {(TOPIC, 0): 3}
    described = client.send(ApiKey.DESCRIBE_GROUPS, 5, groups=("g",), include_authorized_operations=False).groups[0]
    assert (described.group_state, described.protocol_type, described.protocol_data) == ("Stable", "consumer", "range")
    assert [(m.member_id, m.member_metadata, m.member_assignment) for m in described.members] == [
        (member, subscription(TOPIC), b"x")]


def test_coordinator_moves_with_its_offsets_when_its_broker_stops(cluster: EmbeddedCluster, clients: Any) -> None:
    old = cluster.group_coordinator("g")
    assert clients("g").commit("g", {0: 42, 1: 43}) == [NONE, NONE]
    cluster.stop_broker(old)
    new = cluster.group_coordinator("g")
    assert new not in (old, -1)
    moved = clients("g")
    found = moved.send(ApiKey.FIND_COORDINATOR, 4, key_type=0, coordinator_keys=("g",)).coordinators[0]
    assert (found.node_id, int(found.error_code)) == (new, NONE)
    assert moved.fetch_offsets({"g": [0, 1]})["g"][1] == {
        (TOPIC, 0): (42, 3, "meta-0", NONE), (TOPIC, 1): (43, 3, "meta-1", NONE)}
    cluster.start_broker(old)
    assert cluster.group_coordinator("g") == new
    assert clients(node_id=old).fetch_offsets({"g": [0]})["g"][0] == NOT_COORDINATOR


def test_group_errors_can_be_injected(cluster: EmbeddedCluster, clients: Any) -> None:
    client = clients("g")
    member = client.join_new("g").member_id
    client.sync("g", member, 1, {member: b"x"})
    cluster.inject_errors(ApiKey.HEARTBEAT, REBALANCE_IN_PROGRESS, count=1)
    cluster.inject_errors(ApiKey.OFFSET_COMMIT, NOT_COORDINATOR, count=1)
    assert client.heartbeat("g", member, 1) == REBALANCE_IN_PROGRESS
    assert client.heartbeat("g", member, 1) == NONE
    assert client.commit("g", {0: 1}, member_id=member, generation=1) == [NOT_COORDINATOR]
    assert client.commit("g", {0: 1}, member_id=member, generation=1) == [NONE]
    assert cluster.pending_injections() == 0
    assert cluster.group_info("g").offsets == {(TOPIC, 0): 1}
