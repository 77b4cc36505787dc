"""Idempotent-producer state: duplicates, sequence gaps, epochs (kafka-protocol.md §5)."""

from __future__ import annotations

import pytest
from cluster_helpers import build_batch, connect, produce_partition

from kprod.cluster import EmbeddedCluster
from kprod.net.blocking import BlockingConnection
from kprod.protocol.messages import ApiKey
from kprod.protocol.requests import init_producer_id_request

NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_REQUEST = 42


@pytest.fixture
def leader(cluster: EmbeddedCluster, topic: str) -> BlockingConnection:
    with connect(cluster, cluster.leader(topic, 0)) as conn:
        yield conn


def _producer_id(conn: BlockingConnection) -> int:
    response = conn.send(init_producer_id_request(conn.version(ApiKey.INIT_PRODUCER_ID)))
    assert int(response.error_code) == NONE
    assert response.producer_epoch == 0
    return int(response.producer_id)


def _send(conn: BlockingConnection, topic: str, pid: int, epoch: int, seq: int, count: int = 2) -> tuple[int, int]:
    batch = build_batch([b"s%d" % (seq + i) for i in range(count)], producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    result, _ = produce_partition(conn, topic, 0, batch)
    return int(result.error_code), result.base_offset


def test_init_producer_id_gives_fresh_ids(leader: BlockingConnection) -> None:
    first, second = _producer_id(leader), _producer_id(leader)
    assert first >= 0 and second >= 0 and first != second
    transactional = leader.send(
        init_producer_id_request(leader.version(ApiKey.INIT_PRODUCER_ID), transactional_id="txn")
    )
    assert int(transactional.error_code) == INVALID_REQUEST  # transactions are not served


def test_duplicate_batch_answered_with_original_offset(cluster: EmbeddedCluster, topic: str, leader: BlockingConnection) -> None:
    pid = _producer_id(leader)
    assert _send(leader, topic, pid, 0, 0) == (NONE, 0)
    assert _send(leader, topic, pid, 0, 2) == (NONE, 2)
    assert _send(leader, topic, pid, 0, 4) == (NONE, 4)
    # resend of the second batch (same epoch, same sequences): success, original offset, not appended
    assert _send(leader, topic, pid, 0, 2) == (NONE, 2)
    assert cluster.end_offset(topic, 0) == 6
    log = cluster.partition_log(topic, 0)
    assert [(b.producer_id, b.producer_epoch, b.base_sequence, b.base_offset) for b in log] == [
        (pid, 0, 0, 0),
        (pid, 0, 2, 2),
        (pid, 0, 4, 4),
    ]


def test_only_last_five_batches_are_remembered(cluster: EmbeddedCluster, topic: str, leader: BlockingConnection) -> None:
    pid = _producer_id(leader)
    for n in range(6):
        assert _send(leader, topic, pid, 0, 2 * n) == (NONE, 2 * n)
    assert _send(leader, topic, pid, 0, 2) == (NONE, 2)  # 5th newest: still a duplicate
    code, _ = _send(leader, topic, pid, 0, 0)  # 6th newest: forgotten, so out of order
    assert code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert cluster.end_offset(topic, 0) == 12


def test_sequence_gap_is_out_of_order(cluster: EmbeddedCluster, topic: str, leader: BlockingConnection) -> None:
    pid = _producer_id(leader)
    assert _send(leader, topic, pid, 0, 0) == (NONE, 0)
    code, _ = _send(leader, topic, pid, 0, 5)
    assert code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert cluster.end_offset(topic, 0) == 2
    assert _send(leader, topic, pid, 0, 2) == (NONE, 2)  # the expected sequence still works


def test_epochs(cluster: EmbeddedCluster, topic: str, leader: BlockingConnection) -> None:
    pid = _producer_id(leader)
    assert _send(leader, topic, pid, 3, 0) == (NONE, 0)  # unknown producer: any epoch, any sequence
    code, _ = _send(leader, topic, pid, 2, 2)
    assert code == INVALID_PRODUCER_EPOCH
    code, _ = _send(leader, topic, pid, 4, 7)  # a new epoch must start at sequence 0
    assert code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert _send(leader, topic, pid, 4, 0) == (NONE, 2)
    code, _ = _send(leader, topic, pid, 3, 2)  # the old epoch is fenced now
    assert code == INVALID_PRODUCER_EPOCH
    assert cluster.end_offset(topic, 0) == 4


def test_sequence_wraps_around(cluster: EmbeddedCluster, topic: str, leader: BlockingConnection) -> None:
    pid = _producer_id(leader)
    top = 2**31 - 1
    assert _send(leader, topic, pid, 0, top - 1, count=2) == (NONE, 0)  # sequences top-1, top
    assert _send(leader, topic, pid, 0, 0) == (NONE, 2)  # wraps to 0


def test_producer_state_survives_leader_change(cluster: EmbeddedCluster, topic: str, leader: BlockingConnection) -> None:
    pid = _producer_id(leader)
    assert _send(leader, topic, pid, 0, 0) == (NONE, 0)
    new_leader = [r for r in cluster.partition_info(topic, 0).replicas if r != cluster.leader(topic, 0)][0]
    cluster.move_leader(topic, 0, new_leader)
    with connect(cluster, new_leader) as conn:
        assert _send(conn, topic, pid, 0, 0) == (NONE, 0)  # duplicate recognised by the new leader
        code, _ = _send(conn, topic, pid, 0, 9)
        assert code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert cluster.end_offset(topic, 0) == 2
