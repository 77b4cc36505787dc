"""Fetch (long polling, limits, errors), retention and ListOffsets."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from cluster_helpers import build_batch, connect, fetch_partition, produce_partition, wait_until

from kprod.cluster import EmbeddedCluster
from kprod.protocol.messages import ApiKey
from kprod.protocol.records import read_batches
from kprod.protocol.requests import fetch_request, list_offsets_request

NONE = 0
OFFSET_OUT_OF_RANGE = 1
NOT_LEADER_OR_FOLLOWER = 6
FETCH_SESSION_ID_NOT_FOUND = 70
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75


def _values(records: bytes | None) -> list[bytes | None]:
    return [r.value for batch in read_batches(records or b"") for r in batch.records()]


def test_fetch_long_poll_wakes_on_append(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    result: dict[str, Any] = {}

    def consumer() -> None:
        with connect(cluster, leader, timeout=30) as conn:
            started = time.monotonic()
            result["data"], _ = fetch_partition(conn, topic, 0, 0, max_wait_ms=20_000)
            result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=consumer)
    thread.start()
    wait_until(lambda: cluster.waiting_fetches(leader) == 1, what="the fetch to park")
    with connect(cluster, leader) as conn:
        produce_partition(conn, topic, 0, build_batch([b"wake up"]))
    thread.join(10)
    assert not thread.is_alive()
    assert result["elapsed"] < 10  # answered by the append, long before max_wait
    assert _values(result["data"].records) == [b"wake up"]
    assert result["data"].high_watermark == 1
    assert cluster.waiting_fetches() == 0


def test_fetch_waits_max_wait_when_no_data(cluster: EmbeddedCluster, topic: str) -> None:
    with connect(cluster, cluster.leader(topic, 0)) as conn:
        started = time.monotonic()
        data, _ = fetch_partition(conn, topic, 0, 0, max_wait_ms=300)
        elapsed = time.monotonic() - started
    assert 0.29 <= elapsed < 5
    assert int(data.error_code) == NONE
    assert not data.records
    assert data.high_watermark == 0


def test_fetch_min_bytes_waits_for_enough_data(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    with connect(cluster, leader) as producer:
        produce_partition(producer, topic, 0, build_batch([b"small"]))
        result: dict[str, Any] = {}

        def consumer() -> None:
            with connect(cluster, leader, timeout=30) as conn:
                result["data"], _ = fetch_partition(conn, topic, 0, 0, max_wait_ms=20_000, min_bytes=2000)

        thread = threading.Thread(target=consumer)
        thread.start()
        wait_until(lambda: cluster.waiting_fetches(leader) == 1, what="the fetch to park")
        produce_partition(producer, topic, 0, build_batch([b"x" * 500]))
        assert cluster.waiting_fetches(leader) == 1  # not enough yet
        produce_partition(producer, topic, 0, build_batch([b"y" * 2000]))
        thread.join(10)
    assert not thread.is_alive()
    assert _values(result["data"].records) == [b"small", b"x" * 500, b"y" * 2000]


def test_fetch_limits(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    with connect(cluster, leader) as conn:
        for i in range(3):
            produce_partition(conn, topic, 0, build_batch([b"%d" % i * 100]))
        size = len(build_batch([b"0" * 100]))
        # a first batch larger than the limit still comes back whole (KIP-74)
        data, _ = fetch_partition(conn, topic, 0, 0, partition_max_bytes=10)
        assert _values(data.records) == [b"0" * 100]
        data, _ = fetch_partition(conn, topic, 0, 0, partition_max_bytes=2 * size)
        assert _values(data.records) == [b"0" * 100, b"1" * 100]
        # fetching from inside a batch returns the whole batch holding the offset
        data, _ = fetch_partition(conn, topic, 0, 2)
        assert _values(data.records) == [b"2" * 100]
        data, _ = fetch_partition(conn, topic, 0, 3, max_wait_ms=0)
        assert int(data.error_code) == NONE and not data.records
        data, _ = fetch_partition(conn, topic, 0, 4, max_wait_ms=0)
        assert int(data.error_code) == OFFSET_OUT_OF_RANGE


def test_fetch_response_size_limit_across_partitions(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("two", partitions=2, assignments={0: [0], 1: [0]})
    with connect(cluster, 0) as conn:
        produce_partition(conn, "two", 0, build_batch([b"a" * 1000]))
        produce_partition(conn, "two", 1, build_batch([b"b" * 1000]))
        request = fetch_request(conn.version(ApiKey.FETCH), {"two": [(0, 0), (1, 0)]}, max_bytes=500)
        response = conn.send(request)
    first, second = response.responses[0].partitions
    assert _values(first.records) == [b"a" * 1000]  # the first partition always makes progress
    assert not second.records and second.high_watermark == 1


def test_classic_fetch_version(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    with connect(cluster, leader) as conn:
        produce_partition(conn, topic, 0, build_batch([b"a", b"b"]))
        produce_partition(conn, topic, 0, build_batch([b"c"]))
        for version in (4, 11):  # non-flexible encodings of the records field
            response = conn.send(fetch_request(version, {topic: [(0, 0)]}))
            assert _values(response.responses[0].partitions[0].records) == [b"a", b"b", b"c"]


def test_fetch_from_follower_and_stale_epochs(cluster: EmbeddedCluster, topic: str) -> None:
    info = cluster.partition_info(topic, 0)
    follower = [r for r in info.replicas if r != info.leader][0]
    with connect(cluster, follower) as conn:
        data, _ = fetch_partition(conn, topic, 0, 0)
    assert int(data.error_code) == NOT_LEADER_OR_FOLLOWER
    assert (data.current_leader.leader_id, data.current_leader.leader_epoch) == (info.leader, info.leader_epoch)

    cluster.move_leader(topic, 0, follower)
    with connect(cluster, follower) as conn:
        request = fetch_request(conn.version(ApiKey.FETCH), {topic: [(0, 0)]}, max_wait_ms=0)
        codes = []
        for epoch in (info.leader_epoch, info.leader_epoch + 5, info.leader_epoch + 1):
            part = dataclasses.replace(request.topics[0].partitions[0], current_leader_epoch=epoch)
            topic_entity = dataclasses.replace(request.topics[0], partitions=(part,))
            response = conn.send(dataclasses.replace(request, topics=(topic_entity,)))
            codes.append(int(response.responses[0].partitions[0].error_code))
    assert codes == [FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, NONE]


def test_fetch_session_is_refused(cluster: EmbeddedCluster, topic: str) -> None:
    with connect(cluster, cluster.leader(topic, 0)) as conn:
        request = fetch_request(conn.version(ApiKey.FETCH), {topic: [(0, 0)]}, max_wait_ms=0)
        response = conn.send(dataclasses.replace(request, session_id=12, session_epoch=3))
    assert int(response.error_code) == FETCH_SESSION_ID_NOT_FOUND
    assert response.session_id == 0


def test_parked_fetch_answers_when_leader_moves(cluster: EmbeddedCluster, topic: str) -> None:
    info = cluster.partition_info(topic, 0)
    result: dict[str, Any] = {}

    def consumer() -> None:
        with connect(cluster, info.leader, timeout=30) as conn:
            result["data"], _ = fetch_partition(conn, topic, 0, 0, max_wait_ms=20_000)

    thread = threading.Thread(target=consumer)
    thread.start()
    wait_until(lambda: cluster.waiting_fetches(info.leader) == 1, what="the fetch to park")
    cluster.move_leader(topic, 0, [r for r in info.replicas if r != info.leader][0])
    thread.join(10)
    assert not thread.is_alive()
    assert int(result["data"].error_code) == NOT_LEADER_OR_FOLLOWER


def test_retention_bounds_the_log(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("bounded", config={"retention.bytes": "1000"})
    batch_size = len(build_batch([b"v" * 100]))
    with connect(cluster, cluster.leader("bounded", 0)) as conn:
        for i in range(20):
            produce_partition(conn, "bounded", 0, build_batch([b"%02d" % i * 50]))
        info = cluster.partition_info("bounded", 0)
        assert info.end_offset == 20
        assert info.log_start_offset > 0
        retained = cluster.partition_log("bounded", 0)
        assert sum(b.size_in_bytes for b in retained) <= 1000
        assert retained[0].base_offset == info.log_start_offset
        assert [b.base_offset for b in retained] == list(range(info.log_start_offset, 20))
        assert len(retained) >= 1000 // batch_size - 1

        data, _ = fetch_partition(conn, "bounded", 0, 0)
        assert int(data.error_code) == OFFSET_OUT_OF_RANGE
        data, _ = fetch_partition(conn, "bounded", 0, info.log_start_offset)
        assert int(data.error_code) == NONE and data.log_start_offset == info.log_start_offset
        response = conn.send(list_offsets_request(conn.version(ApiKey.LIST_OFFSETS), {"bounded": [(0, -2)]}))
        assert response.topics[0].partitions[0].offset == info.log_start_offset


def test_retention_keeps_memory_bounded_on_long_runs(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("long", config={"retention.bytes": str(64 * 1024)})
    payload = build_batch([b"z" * 1000] * 16)
    with connect(cluster, cluster.leader("long", 0)) as conn:
        for _ in range(3000):  # ~50 MB through one partition
            produce_partition(conn, "long", 0, payload, acks=1)
    retained = cluster.partition_log("long", 0)
    assert sum(b.size_in_bytes for b in retained) <= 64 * 1024
    assert cluster.partition_info("long", 0).end_offset == 3000 * 16


def test_list_offsets(cluster: EmbeddedCluster, topic: str) -> None:
    with connect(cluster, cluster.leader(topic, 0)) as conn:
        produce_partition(conn, topic, 0, build_batch([b"a", b"b"], timestamp=1000))  # 1000, 1001
        produce_partition(conn, topic, 0, build_batch([b"c", b"d"], timestamp=5000))  # 5000, 5001
        produce_partition(conn, topic, 0, build_batch([b"e"], timestamp=3000))
        queries = [-1, -2, -3, 0, 1001, 1002, 5001, 6000]
        response = conn.send(
            list_offsets_request(conn.version(ApiKey.LIST_OFFSETS), {topic: [(0, ts) for ts in queries]})
        )
    answers = [(p.offset, p.timestamp) for p in response.topics[0].partitions]
    assert answers == [
        (5, -1),  # latest
        (0, -1),  # earliest
        (3, 5001),  # max timestamp
        (0, 1000),
        (1, 1001),
        (2, 5000),  # first record at or after 1002
        (3, 5001),
        (-1, -1),  # nothing that late
    ]


def test_offset_for_leader_epoch(cluster: EmbeddedCluster, topic: str) -> None:
    from kprod.protocol.messages import request_module

    info = cluster.partition_info(topic, 0)
    with connect(cluster, info.leader) as conn:
        for i in range(3):
            produce_partition(conn, topic, 0, build_batch([b"%d" % i]))  # epoch 0: offsets 0..2
    second = [r for r in info.replicas if r != info.leader][0]
    cluster.move_leader(topic, 0, second)  # epoch 1 starts at offset 3
    with connect(cluster, second) as conn:
        produce_partition(conn, topic, 0, build_batch([b"3", b"4"]))
        assert conn.broker_versions[23] == (2, 4)
        module = request_module(23, 4)

        def ask(epoch: int, current: int = -1) -> tuple[int, int, int]:
            request = module.OffsetForLeaderEpochRequest(
                replica_id=-1,
                topics=(
                    module.OffsetForLeaderTopic(
                        topic=topic,
                        partitions=(
                            module.OffsetForLeaderPartition(partition=0, current_leader_epoch=current, leader_epoch=epoch),
                        ),
                    ),
                ),
            )
            result = conn.send(request).topics[0].partitions[0]
            return int(result.error_code), result.leader_epoch, result.end_offset

        assert ask(0) == (NONE, 0, 3)
        assert ask(1) == (NONE, 1, 5)
        assert ask(7) == (NONE, -1, -1)
        assert ask(1, current=0)[0] == FENCED_LEADER_EPOCH
