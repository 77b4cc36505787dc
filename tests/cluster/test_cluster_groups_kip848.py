"""KIP-848 consumer groups (``group.protocol=consumer``) against the embedded cluster.

confluent-kafka consumers with the new protocol split 6 partitions with the
server-side assignor, the stayer gets all 6 when the other leaves, and a
restarted member resumes from the committed offsets (exact offsets and values).
The reconciliation rule (a partition is handed over only after its previous
owner released it) is checked on the state machine directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kprod.cluster import EmbeddedCluster
from kprod.cluster.groups import INCONSISTENT_GROUP_PROTOCOL
from kprod.cluster.consumer_protocol import (
    FENCED_MEMBER_EPOCH,
    UNKNOWN_MEMBER_ID,
    UNSUPPORTED_ASSIGNOR,
    ConsumerGroupState,
    assign,
)
from cluster_helpers import wait_until
from test_cluster_group_protocol import Client
from test_cluster_groups import GROUP, ConfluentMember, orders, run_group_lifecycle  # noqa: F401  (fixture)


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    """Three brokers that ask KIP-848 members to heartbeat every 100 ms (Kafka: 5 s)."""
    with EmbeddedCluster(brokers=3, config={"group.consumer.heartbeat.interval.ms": "100"}) as embedded:
        yield embedded
        assert embedded.internal_errors() == []


def test_confluent_kafka_consumer_protocol_group(cluster: EmbeddedCluster, orders: Any) -> None:
    run_group_lifecycle(
        cluster,
        orders,
        lambda name: ConfluentMember(cluster.bootstrap_servers, GROUP, **{"group.protocol": "consumer"}),
    )
    assert cluster.group_info(GROUP).group_type == "consumer"


def _partitions(topic: str) -> int:
    return 6


def test_partitions_move_only_after_their_owner_released_them() -> None:
    group = ConsumerGroupState()
    a, a_member = group.heartbeat("", 0, None, "c", "/h", 1000, ["t"], "uniform", [], _partitions)
    assert a.member_epoch == group.epoch and a.assignment == {("t", p) for p in range(6)}
    assert a_member is not None
    b, _ = group.heartbeat("", 0, None, "c", "/h", 1000, ["t"], None, [], _partitions)
    assert b.assignment == frozenset()  # everything is still a's
    b_id = b.member_id or ""
    # a is told to give up half, keeping its epoch until it confirms
    a2, _ = group.heartbeat(a.member_id or "", a.member_epoch, None, "c", "/h", 1000, None, None, None, _partitions)
    kept = a2.assignment or frozenset()
    assert a2.member_epoch == a.member_epoch and len(kept) == 3 and kept < (a.assignment or frozenset())
    b2, _ = group.heartbeat(b_id, b.member_epoch, None, "c", "/h", 1000, None, None, None, _partitions)
    assert b2.assignment is None  # unchanged: a has not released anything yet
    # a confirms: it owns only its half now, and moves to the new epoch
    a3, _ = group.heartbeat(a.member_id or "", a.member_epoch, None, "c", "/h", 1000, None, None,
                            sorted(a2.assignment or ()), _partitions)
    assert a3.member_epoch == group.epoch and a3.assignment is None
    b3, _ = group.heartbeat(b_id, b.member_epoch, None, "c", "/h", 1000, None, None, None, _partitions)
    assert b3.assignment == {("t", p) for p in range(6)} - kept
    assert group.state_name() == "Stable"
    # errors
    assert group.heartbeat(b_id, 99, None, "c", "/h", 1000, None, None, None, _partitions)[0].error == FENCED_MEMBER_EPOCH
    assert group.heartbeat("nobody", 3, None, "c", "/h", 1000, None, None, None, _partitions)[0].error == UNKNOWN_MEMBER_ID
    assert group.heartbeat("", 0, None, "c", "/h", 1000, ["t"], "sticky", [], _partitions)[0].error == UNSUPPORTED_ASSIGNOR
    # b leaves: a gets everything back at the next heartbeat
    left, _ = group.heartbeat(b_id, -1, None, "c", "/h", 1000, None, None, None, _partitions)
    assert left.error == 0 and list(group.members) == [a.member_id]
    a4, _ = group.heartbeat(a.member_id or "", a3.member_epoch, None, "c", "/h", 1000, None, None, None, _partitions)
    assert a4.assignment == {("t", p) for p in range(6)}


def test_server_side_assignors() -> None:
    members = {"m1": ("a", "b"), "m2": ("a",)}
    counts = {"a": 4, "b": 2}
    assert assign("range", members, counts.__getitem__) == {
        "m1": {("a", 0), ("a", 1), ("b", 0), ("b", 1)}, "m2": {("a", 2), ("a", 3)}}
    uniform = assign("uniform", members, counts.__getitem__)
    assert uniform["m1"] | uniform["m2"] == {("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 1)}
    assert not uniform["m1"] & uniform["m2"] and len(uniform["m2"]) == 2


def test_restarted_static_member_replaces_its_old_self() -> None:
    group = ConsumerGroupState()
    first, _ = group.heartbeat("m-1", 0, "host-1", "c", "/h", 1000, ["t"], None, [], _partitions)
    assert first.assignment == {("t", p) for p in range(6)}
    again, _ = group.heartbeat("m-2", 0, "host-1", "c", "/h", 1000, ["t"], None, [], _partitions)
    assert list(group.members) == ["m-2"] and again.assignment == {("t", p) for p in range(6)}
    assert group.heartbeat("m-1", first.member_epoch, "host-1", "c", "/h", 1000, None, None, None,
                           _partitions)[0].error == UNKNOWN_MEMBER_ID


def test_classic_and_consumer_members_do_not_share_a_group(cluster: EmbeddedCluster) -> None:
    consumer_member = ConfluentMember(cluster.bootstrap_servers, "mixed", **{"group.protocol": "consumer"})
    try:
        cluster.create_topic("orders", partitions=2)
        wait_until(lambda: consumer_member.poll() == [] and len(consumer_member.assignment()) == 2, timeout=30,
                   what="the KIP-848 member owning both partitions")
        classic = Client(cluster, cluster.group_coordinator("mixed"))
        try:
            first = classic.join("mixed")
            assert int(first.error_code) == INCONSISTENT_GROUP_PROTOCOL
        finally:
            classic.close()
        assert cluster.group_info("mixed").group_type == "consumer"
    finally:
        consumer_member.close()
