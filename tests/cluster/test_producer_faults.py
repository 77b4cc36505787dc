"""Each fault the embedded cluster can inject, and what kprod's producer does about it.

Every test reads the partition back from the cluster and checks exact
records, order and the absence of duplicates, not just that futures resolved.
"""

from __future__ import annotations

import time

import pytest

from kprod import Producer
from kprod.cluster import EmbeddedCluster
from kprod.errors import KafkaTimeoutError, NotEnoughReplicasError
from kprod.protocol.messages import ApiKey

NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
NOT_ENOUGH_REPLICAS = 19
UNKNOWN_PRODUCER_ID = 59


def producer_for(cluster: EmbeddedCluster, **overrides: object) -> Producer:
    config: dict[str, object] = {
        "bootstrap.servers": cluster.bootstrap_servers,
        "linger.ms": 0,
        "retry.backoff.ms": 20,
        "retry.backoff.max.ms": 100,
        "request.timeout.ms": 2000,
        "delivery.timeout.ms": 15000,
    }
    config.update(overrides)
    return Producer(config)


def values_in(cluster: EmbeddedCluster, topic: str, partition: int) -> list[bytes | None]:
    return [record.value for record in cluster.records(topic, partition)]


def send_numbered(producer: Producer, topic: str, count: int, start: int = 0) -> list[object]:
    return [producer.send(topic, b"%d" % i, partition=0) for i in range(start, start + count)]


def expected(count: int, start: int = 0) -> list[bytes]:
    return [b"%d" % i for i in range(start, start + count)]


def test_injected_not_leader_is_retried_and_delivered_once_in_order(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        producer.send(topic, b"warm-up", partition=0).result(10)
        cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=3)
        futures = send_numbered(producer, topic, 50)
        producer.flush(10)
        offsets = [f.result(0).offset for f in futures]  # type: ignore[attr-defined]
    assert cluster.pending_injections() == 0
    assert values_in(cluster, topic, 0) == [b"warm-up", *expected(50)]
    assert offsets == list(range(1, 51))


def test_lost_responses_do_not_duplicate_with_idempotence(cluster: EmbeddedCluster, topic: str) -> None:
    """The broker writes the batch but the producer sees an error: the resend is a duplicate
    the broker recognises (same producer id and sequence), so the log holds it once."""
    with producer_for(cluster) as producer:
        producer.send(topic, b"warm-up", partition=0).result(10)
        cluster.inject_errors(ApiKey.PRODUCE, REQUEST_TIMED_OUT, count=2, after_append=True)
        futures = send_numbered(producer, topic, 20)
        producer.flush(10)
        assert all(f.exception(0) is None for f in futures)  # type: ignore[attr-defined]
    assert values_in(cluster, topic, 0) == [b"warm-up", *expected(20)]


def test_lost_responses_duplicate_without_idempotence(cluster: EmbeddedCluster, topic: str) -> None:
    """The same fault without idempotence: the retry writes the records again (at-least-once)."""
    with producer_for(cluster, **{"enable.idempotence": False, "acks": "all"}) as producer:
        producer.send(topic, b"warm-up", partition=0).result(10)
        cluster.inject_errors(ApiKey.PRODUCE, REQUEST_TIMED_OUT, count=1, after_append=True)
        producer.send(topic, b"once", partition=0).result(10)
    assert values_in(cluster, topic, 0) == [b"warm-up", b"once", b"once"]


def test_stopped_leader_fails_over_to_the_new_leader(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        first = send_numbered(producer, topic, 10)
        producer.flush(10)
        old_leader = cluster.leader(topic, 0)
        cluster.stop_broker(old_leader)
        second = send_numbered(producer, topic, 10, start=10)
        producer.flush(15)
        assert all(f.exception(0) is None for f in first + second)  # type: ignore[attr-defined]
    assert cluster.leader(topic, 0) != old_leader
    assert values_in(cluster, topic, 0) == expected(20)


def test_moved_leader_is_followed(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        producer.send(topic, b"before", partition=0).result(10)
        old_leader = cluster.leader(topic, 0)
        new_leader = next(n for n in cluster.isr(topic, 0) if n != old_leader)
        cluster.move_leader(topic, 0, new_leader)
        metadata = producer.send(topic, b"after", partition=0).result(10)
    assert metadata.offset == 1
    assert cluster.leader(topic, 0) == new_leader
    assert values_in(cluster, topic, 0) == [b"before", b"after"]


def test_shrunk_isr_fails_acks_all_after_delivery_timeout_then_recovers(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    cluster.shrink_isr(topic, 0, [leader])  # below min.insync.replicas=2
    with producer_for(cluster, **{"delivery.timeout.ms": 1500, "request.timeout.ms": 1000}) as producer:
        started = time.monotonic()
        with pytest.raises(KafkaTimeoutError) as failure:
            producer.send(topic, b"lost", partition=0).result(10)
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 5.0
        assert isinstance(failure.value.__cause__, NotEnoughReplicasError)
        assert "NOT_ENOUGH_REPLICAS" in str(failure.value)
        cluster.restore_isr(topic, 0)
        assert producer.send(topic, b"kept", partition=0).result(10).offset == 0
    assert values_in(cluster, topic, 0) == [b"kept"]


def test_retries_zero_fails_at_the_first_retriable_error(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster, **{"retries": 0, "enable.idempotence": False}) as producer:
        cluster.inject_errors(ApiKey.PRODUCE, NOT_ENOUGH_REPLICAS, count=1)
        with pytest.raises(NotEnoughReplicasError) as failure:
            producer.send(topic, b"x", partition=0).result(10)
        assert failure.value.topic == topic and failure.value.partition == 0
        assert producer.send(topic, b"y", partition=0).result(10).offset == 0
    assert values_in(cluster, topic, 0) == [b"y"]


def test_latency_beyond_request_timeout_is_retried(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster, **{"request.timeout.ms": 300, "delivery.timeout.ms": 10000}) as producer:
        producer.send(topic, b"warm-up", partition=0).result(10)
        leader = cluster.leader(topic, 0)
        cluster.add_latency(leader, 600)
        future = producer.send(topic, b"slow", partition=0)
        deadline = time.monotonic() + 5
        while cluster.end_offset(topic, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.add_latency(leader, 0)
        assert future.result(10).offset >= 1
    # The slow request may have been written before it timed out; idempotence keeps one copy.
    assert values_in(cluster, topic, 0) == [b"warm-up", b"slow"]


def test_dropped_connections_are_reopened_without_loss_or_duplicates(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        futures = send_numbered(producer, topic, 20)
        producer.flush(10)
        assert cluster.drop_connections() >= 1
        futures += send_numbered(producer, topic, 20, start=20)
        producer.flush(10)
        assert all(f.exception(0) is None for f in futures)  # type: ignore[attr-defined]
    assert values_in(cluster, topic, 0) == expected(40)


def test_throttled_broker_still_gets_every_record(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        cluster.throttle(cluster.leader(topic, 0), 50)
        futures = send_numbered(producer, topic, 30)
        producer.flush(10)
        assert [f.result(0).offset for f in futures] == list(range(30))  # type: ignore[attr-defined]
    assert values_in(cluster, topic, 0) == expected(30)


def test_unknown_producer_id_bumps_the_epoch_and_delivers(cluster: EmbeddedCluster, topic: str) -> None:
    with producer_for(cluster) as producer:
        producer.send(topic, b"a", partition=0).result(10)
        cluster.inject_errors(ApiKey.PRODUCE, UNKNOWN_PRODUCER_ID, count=1)
        producer.send(topic, b"b", partition=0).result(10)
        producer.send(topic, b"c", partition=0).result(10)
    log = cluster.partition_log(topic, 0)
    assert [r.value for b in log for r in b.records] == [b"a", b"b", b"c"]
    assert log[0].producer_epoch < log[-1].producer_epoch
    assert log[-1].base_sequence == 1  # sequences restarted at 0 with the new epoch
