"""Request hooks: ``cluster.intercept(api, fn, times=None, broker=None)``.

Each kind of hook result is shown on a raw connection (exact error codes,
offsets and throttle times) or through confluent-kafka, then ``times=``,
``broker=``, removal, the ``clear_faults()`` report, a hook that fails, and
what the child-process mode accepts.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from cluster_helpers import build_batch, connect, produce_partition

from kprod.cluster import DROP, ClusterError, Delay, EmbeddedCluster, Error, HookContext, Throttle
from kprod.errors import KafkaConnectionError
from kprod.protocol.messages import ApiKey, ErrorCode
from kprod.protocol.requests import list_offsets_request, metadata_request

NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
POLICY_VIOLATION = 44


def _produce(cluster: EmbeddedCluster, topic: str, value: bytes, node: int | None = None) -> int:
    """Produce one batch to partition 0 on a fresh connection; the error code."""
    conn = connect(cluster, cluster.leader(topic, 0) if node is None else node)
    try:
        result, _ = produce_partition(conn, topic, 0, build_batch([value]))
        return int(result.error_code)
    finally:
        conn.close()


def _values(cluster: EmbeddedCluster, topic: str) -> list[bytes | None]:
    return [r.value for r in cluster.records(topic, 0)]


def test_a_passing_hook_sees_each_decoded_request(cluster: EmbeddedCluster, topic: str) -> None:
    seen: list[tuple[str, int, Any]] = []

    def spy(request: Any, context: HookContext) -> None:
        seen.append((context.api, context.node_id, request))

    hook = cluster.intercept("Produce", spy)
    assert _produce(cluster, topic, b"a") == 0
    assert _values(cluster, topic) == [b"a"]
    ((api, node, request),) = seen
    assert (api, node) == ("Produce", cluster.leader(topic, 0))
    assert [t.name for t in request.topic_data] == [topic]
    assert hook.fired == 0 and hook.active  # passing is not acting


def test_an_error_code_answers_every_partition(cluster: EmbeddedCluster, topic: str) -> None:
    hook = cluster.intercept("Produce", lambda request, context: POLICY_VIOLATION, times=1)
    assert _produce(cluster, topic, b"refused") == POLICY_VIOLATION
    assert _produce(cluster, topic, b"accepted") == 0
    assert _values(cluster, topic) == [b"accepted"]
    assert (hook.fired, hook.active) == (1, False)


def test_an_error_after_append_writes_then_fails(cluster: EmbeddedCluster, topic: str) -> None:
    cluster.intercept("Produce", Error(REQUEST_TIMED_OUT, after_append=True), times=1)
    assert _produce(cluster, topic, b"written") == REQUEST_TIMED_OUT
    assert _values(cluster, topic) == [b"written"]


def test_delay_holds_the_response(cluster: EmbeddedCluster, topic: str) -> None:
    cluster.intercept("Produce", lambda request, context: Delay(300))
    conn = connect(cluster, cluster.leader(topic, 0))
    try:
        started = time.monotonic()
        result, _ = produce_partition(conn, topic, 0, build_batch([b"late"]))
        assert time.monotonic() - started >= 0.3
    finally:
        conn.close()
    assert int(result.error_code) == 0
    assert _values(cluster, topic) == [b"late"]  # a delay does not change the answer


def test_throttle_is_reported_in_the_response(cluster: EmbeddedCluster, topic: str) -> None:
    cluster.intercept("Metadata", Throttle(250), times=1)
    conn = connect(cluster, 0)
    try:
        first = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
        second = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
    finally:
        conn.close()
    assert first.throttle_time.total_seconds() == 0.25
    assert second.throttle_time.total_seconds() == 0


def test_drop_closes_the_connection_without_handling(cluster: EmbeddedCluster, topic: str) -> None:
    hook = cluster.intercept("Produce", DROP, times=1)
    with pytest.raises(KafkaConnectionError):
        _produce(cluster, topic, b"dropped")
    assert _values(cluster, topic) == []
    assert hook.info.fired == 1
    assert _produce(cluster, topic, b"next") == 0


def test_a_response_entity_is_sent_as_it_is(cluster: EmbeddedCluster, topic: str) -> None:
    def answer_42(request: Any, context: HookContext) -> Any:
        module = context.response_module
        partition = request.topics[0].partitions[0]
        return module.ListOffsetsResponse(
            throttle_time=datetime.timedelta(0),
            topics=(
                module.ListOffsetsTopicResponse(
                    name=request.topics[0].name,
                    partitions=(
                        module.ListOffsetsPartitionResponse(
                            partition_index=partition.partition_index,
                            error_code=ErrorCode.none,
                            timestamp=-1,
                            offset=42,
                            leader_epoch=7,
                        ),
                    ),
                ),
            ),
        )

    cluster.intercept("ListOffsets", answer_42, times=1)
    conn = connect(cluster, cluster.leader(topic, 0))
    try:
        version = conn.version(ApiKey.LIST_OFFSETS)
        made_up = conn.send(list_offsets_request(version, {topic: [(0, -1)]}))
        real = conn.send(list_offsets_request(version, {topic: [(0, -1)]}))
    finally:
        conn.close()
    assert (made_up.topics[0].partitions[0].offset, made_up.topics[0].partitions[0].leader_epoch) == (42, 7)
    assert real.topics[0].partitions[0].offset == 0


def test_a_response_that_cannot_be_encoded_is_reported_not_sent() -> None:
    def sloppy(request: Any, context: HookContext) -> Any:
        module = context.response_module
        return module.ListOffsetsResponse(throttle_time=0, topics=())  # not a timedelta: cannot be written

    with EmbeddedCluster(brokers=1) as cluster:
        cluster.create_topic("t")
        cluster.intercept("ListOffsets", sloppy, times=1)
        conn = connect(cluster, 0)
        try:
            answer = conn.send(list_offsets_request(conn.version(ApiKey.LIST_OFFSETS), {"t": [(0, -1)]}))
        finally:
            conn.close()
        assert answer.topics[0].partitions[0].offset == 0  # served as if the hook passed
        (error,) = cluster.internal_errors()
    assert "cannot be encoded" in error


def test_delay_and_error_combine(cluster: EmbeddedCluster, topic: str) -> None:
    cluster.add_latency(cluster.leader(topic, 0), 200)
    cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=1)
    started = time.monotonic()
    assert _produce(cluster, topic, b"x") == NOT_LEADER_OR_FOLLOWER
    assert time.monotonic() - started >= 0.2


def test_times_counts_actions_and_a_function_decides_per_request(cluster: EmbeddedCluster, topic: str) -> None:
    def refuse_odd(request: Any, context: HookContext) -> int | None:
        value = request.topic_data[0].partition_data[0].records
        return NOT_LEADER_OR_FOLLOWER if b"odd" in bytes(value) else None

    hook = cluster.intercept("Produce", refuse_odd, times=2)
    codes = [_produce(cluster, topic, b"odd" if i % 2 else b"even") for i in range(6)]
    assert codes == [0, NOT_LEADER_OR_FOLLOWER, 0, NOT_LEADER_OR_FOLLOWER, 0, 0]
    assert (hook.fired, hook.active) == (2, False)
    assert _values(cluster, topic) == [b"even", b"even", b"even", b"odd"]


def test_broker_limits_a_hook_to_one_broker(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("spread", partitions=3, replication_factor=1)
    leaders = {cluster.leader("spread", p): p for p in range(3)}
    assert sorted(leaders) == [0, 1, 2]
    cluster.intercept("Produce", NOT_LEADER_OR_FOLLOWER, broker=1)
    results = {}
    for node, partition in leaders.items():
        conn = connect(cluster, node)
        try:
            result, _ = produce_partition(conn, "spread", partition, build_batch([b"v"]))
        finally:
            conn.close()
        results[node] = int(result.error_code)
    assert results == {0: 0, 1: NOT_LEADER_OR_FOLLOWER, 2: 0}


def test_remove_restores_normal_service(cluster: EmbeddedCluster, topic: str) -> None:
    hook = cluster.intercept("Produce", NOT_LEADER_OR_FOLLOWER)
    assert _produce(cluster, topic, b"a") == NOT_LEADER_OR_FOLLOWER
    final = hook.remove()
    assert (final.fired, final.active, final.api) == (1, False, "Produce")
    assert hook.remove() == final  # idempotent
    assert _produce(cluster, topic, b"b") == 0
    with cluster.intercept("Produce", NOT_LEADER_OR_FOLLOWER):  # a context manager removes it too
        assert _produce(cluster, topic, b"c") == NOT_LEADER_OR_FOLLOWER
    assert _produce(cluster, topic, b"d") == 0
    assert _values(cluster, topic) == [b"b", b"d"]


def test_clear_faults_reports_every_hook_it_removes(cluster: EmbeddedCluster, topic: str) -> None:
    spy = cluster.intercept("Fetch", lambda request, context: None)
    cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=3, broker=2)
    cluster.add_latency(1, 50)
    cluster.throttle(0, 20)
    assert len(cluster.hooks()) == 4
    report = cluster.clear_faults()
    assert [(h.api, h.broker, h.remaining, h.active) for h in report] == [
        ("Fetch", None, None, False),
        ("Produce", 2, 3, False),
        ("*", 1, None, False),
        ("*", 0, None, False),
    ]
    assert [h.description for h in report] == [
        "Fetch on any broker: function test_clear_faults_reports_every_hook_it_removes.<locals>.<lambda>",
        "Produce on broker 2: error NOT_LEADER_OR_FOLLOWER (6), 3 left",
        "* on broker 1: delay 50 ms",
        "* on broker 0: throttle 20 ms",
    ]
    assert cluster.hooks() == [] and cluster.pending_injections() == 0
    assert not spy.active


def test_a_failing_hook_is_reported_and_the_request_served() -> None:
    def broken(request: Any, context: HookContext) -> Any:
        raise RuntimeError("bug in the test's hook")

    with EmbeddedCluster(brokers=1) as cluster:  # its own cluster: it ends with internal errors
        cluster.create_topic("t")
        cluster.intercept("Produce", broken, times=1)
        cluster.intercept("ApiVersions", lambda request, context: "not a result", times=1)
        assert _produce(cluster, "t", b"served") == 0
        assert _values(cluster, "t") == [b"served"]
        errors = cluster.internal_errors()
    assert len(errors) == 2
    assert "RuntimeError: bug in the test's hook" in errors[1]
    assert "returned 'not a result'" in errors[0]


def test_hook_arguments_are_checked(cluster: EmbeddedCluster) -> None:
    with pytest.raises(ClusterError, match="not served.*Produce"):
        cluster.intercept("Produse", None)
    with pytest.raises(ClusterError, match="times must be a positive"):
        cluster.intercept("Produce", 6, times=0)
    with pytest.raises(ClusterError, match="no broker 9"):
        cluster.intercept("Produce", 6, broker=9)
    with pytest.raises(ClusterError, match="not a Kafka error code"):
        cluster.intercept("Produce", 31337)
    with pytest.raises(ClusterError, match="Produce only"):
        cluster.intercept("Fetch", Error(6, after_append=True))
    with pytest.raises(ClusterError, match="return None"):
        cluster.intercept("Produce", "drop")
    assert cluster.hooks() == []  # a refused call registers nothing


def test_child_process_takes_constant_results_only() -> None:
    with EmbeddedCluster(brokers=1, process=True) as cluster:
        cluster.create_topic("t")
        with pytest.raises(ClusterError, match="cannot run in the cluster's child process"):
            cluster.intercept("Produce", lambda request, context: None)
        hook = cluster.intercept("Produce", POLICY_VIOLATION, times=1)
        assert _produce(cluster, "t", b"refused") == POLICY_VIOLATION
        assert _produce(cluster, "t", b"accepted") == 0
        assert (hook.fired, hook.active) == (1, False)
        cluster.intercept(None, DROP, broker=0)
        assert [h.description for h in cluster.clear_faults()] == ["* on broker 0: drop the connection"]
        assert _values(cluster, "t") == [b"accepted"]
