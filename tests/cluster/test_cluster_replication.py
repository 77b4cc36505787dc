"""acks, ISR, min.insync.replicas, leader election and NOT_LEADER_OR_FOLLOWER hints."""

from __future__ import annotations

from typing import Any

import pytest
from cluster_helpers import build_batch, connect, produce_partition, wait_until

from kprod.cluster import ClusterError, EmbeddedCluster
from kprod.errors import KafkaConnectionError
from kprod.protocol.messages import ApiKey
from kprod.protocol.requests import metadata_request

NONE = 0
LEADER_NOT_AVAILABLE = 5
NOT_LEADER_OR_FOLLOWER = 6
NOT_ENOUGH_REPLICAS = 19
INVALID_REQUIRED_ACKS = 21


def _followers(cluster: EmbeddedCluster, topic: str, partition: int) -> list[int]:
    info = cluster.partition_info(topic, partition)
    return [r for r in info.replicas if r != info.leader]


def test_acks_all_needs_min_insync_replicas(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    followers = _followers(cluster, topic, 0)
    with connect(cluster, leader) as conn:
        ok, _ = produce_partition(conn, topic, 0, build_batch([b"a"]), acks=-1)
        assert (int(ok.error_code), ok.base_offset) == (NONE, 0)

        cluster.stop_broker(followers[0])
        replicas = cluster.partition_info(topic, 0).replicas
        assert cluster.isr(topic, 0) == [r for r in replicas if r != followers[0]]
        ok, _ = produce_partition(conn, topic, 0, build_batch([b"b"]), acks=-1)
        assert int(ok.error_code) == NONE  # ISR of 2 still meets min.insync.replicas=2

        cluster.stop_broker(followers[1])
        assert cluster.isr(topic, 0) == [leader]
        refused, _ = produce_partition(conn, topic, 0, build_batch([b"c"]), acks=-1)
        assert int(refused.error_code) == NOT_ENOUGH_REPLICAS
        assert "min.insync.replicas=2" in refused.error_message
        # acks=1 does not wait for the ISR
        one, _ = produce_partition(conn, topic, 0, build_batch([b"d"]), acks=1)
        assert (int(one.error_code), one.base_offset) == (NONE, 2)

        cluster.start_broker(followers[0])
        assert len(cluster.isr(topic, 0)) == 2
        again, _ = produce_partition(conn, topic, 0, build_batch([b"e"]), acks=-1)
        assert (int(again.error_code), again.base_offset) == (NONE, 3)
    values = [r.value for r in cluster.records(topic, 0)]
    assert values == [b"a", b"b", b"d", b"e"]  # the refused batch was not written


def test_confluent_acks_all_fails_then_succeeds_after_restart(cluster: EmbeddedCluster, topic: str) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    for follower in _followers(cluster, topic, 0):
        cluster.stop_broker(follower)
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "enable.idempotence": False, "retries": 0}
    )
    reports: list[Any] = []
    producer.produce(topic, value=b"refused", partition=0, on_delivery=lambda err, msg: reports.append(err))
    producer.flush(10)
    assert len(reports) == 1 and reports[0] is not None
    assert reports[0].code() == confluent_kafka.KafkaError.NOT_ENOUGH_REPLICAS

    for follower in _followers(cluster, topic, 0):
        cluster.start_broker(follower)
    reports.clear()
    producer.produce(topic, value=b"accepted", partition=0, on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(10) == 0
    assert reports == [None]
    assert [r.value for r in cluster.records(topic, 0)] == [b"accepted"]


def test_acks_zero_gets_no_response_and_failure_closes_connection(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    with connect(cluster, leader) as conn:
        assert produce_partition(conn, topic, 0, build_batch([b"fire"]), acks=0) == (None, None)
        # the next request is answered normally: nothing was sent for the acks=0 one
        ok, _ = produce_partition(conn, topic, 0, build_batch([b"and forget"]), acks=1)
        assert ok.base_offset == 1
        # an acks=0 produce that fails (wrong broker) makes the broker close the connection
        other = _followers(cluster, topic, 0)[0]
    with connect(cluster, other) as conn:
        produce_partition(conn, topic, 0, build_batch([b"lost"]), acks=0)
        with pytest.raises(KafkaConnectionError):
            conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
    assert [r.value for r in cluster.records(topic, 0)] == [b"fire", b"and forget"]


def test_invalid_acks_refused(cluster: EmbeddedCluster, topic: str) -> None:
    with connect(cluster, cluster.leader(topic, 0)) as conn:
        result, _ = produce_partition(conn, topic, 0, build_batch([b"x"]), acks=2)
    assert int(result.error_code) == INVALID_REQUIRED_ACKS
    assert cluster.end_offset(topic, 0) == 0


def test_leader_election_on_stop(cluster: EmbeddedCluster, topic: str) -> None:
    before = cluster.partition_info(topic, 1)
    cluster.stop_broker(before.leader)
    after = cluster.partition_info(topic, 1)
    expected = [r for r in before.replicas if r != before.leader][0]  # next in-sync replica in assignment order
    assert after.leader == expected
    assert after.leader_epoch == before.leader_epoch + 1
    assert before.leader not in after.isr
    # the stopped broker's port refuses connections
    with pytest.raises(KafkaConnectionError):
        connect(cluster, before.leader)
    # metadata from a live broker shows the new leader and no stopped broker
    with connect(cluster, expected) as conn:
        metadata = conn.send(metadata_request(conn.version(ApiKey.METADATA), [topic]))
    assert before.leader not in [b.node_id for b in metadata.brokers]
    partition = next(p for p in metadata.topics[0].partitions if p.partition_index == 1)
    assert (partition.leader_id, partition.leader_epoch) == (expected, after.leader_epoch)
    assert before.leader in partition.offline_replicas


def test_old_leader_answers_not_leader_with_new_leader(cluster: EmbeddedCluster, topic: str) -> None:
    before = cluster.partition_info(topic, 0)
    new_leader = [r for r in before.replicas if r != before.leader][1]
    old = connect(cluster, before.leader)
    cluster.move_leader(topic, 0, new_leader)
    with old:
        assert old.version(ApiKey.PRODUCE) >= 10
        result, response = produce_partition(old, topic, 0, build_batch([b"x"]))
        assert int(result.error_code) == NOT_LEADER_OR_FOLLOWER
        assert (result.current_leader.leader_id, result.current_leader.leader_epoch) == (
            new_leader,
            before.leader_epoch + 1,
        )
        endpoint = next(b for b in cluster.brokers if b.node_id == new_leader)
        assert [(e.node_id, e.host, e.port) for e in response.node_endpoints] == [
            (new_leader, endpoint.host, endpoint.port)
        ]
        # Produce v9 has no leader hint fields but the same error
        legacy, _ = produce_partition(old, topic, 0, build_batch([b"x"]), version=9)
        assert int(legacy.error_code) == NOT_LEADER_OR_FOLLOWER
    assert cluster.end_offset(topic, 0) == 0


def test_partition_goes_offline_when_last_isr_member_stops(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("solo", partitions=1, replication_factor=2)
    info = cluster.partition_info("solo", 0)
    leader, follower = info.replicas
    cluster.stop_broker(follower)
    assert cluster.isr("solo", 0) == [leader]
    cluster.stop_broker(leader)
    offline = cluster.partition_info("solo", 0)
    assert offline.leader == -1
    assert offline.isr == (leader,)  # the last ISR member is remembered
    cluster.start_broker(follower)  # out of sync: no unclean election
    assert cluster.leader("solo", 0) == -1
    survivor = next(b.node_id for b in cluster.brokers if b.running)
    with connect(cluster, survivor) as conn:
        metadata = conn.send(metadata_request(conn.version(ApiKey.METADATA), ["solo"]))
    assert int(metadata.topics[0].partitions[0].error_code) == LEADER_NOT_AVAILABLE
    cluster.start_broker(leader)
    back = cluster.partition_info("solo", 0)
    assert back.leader == leader
    assert back.isr == (leader, follower)


def test_restarted_broker_catches_up_before_rejoining(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 2)
    follower = _followers(cluster, topic, 2)[0]
    cluster.stop_broker(follower)
    with connect(cluster, leader) as conn:
        for i in range(5):
            produce_partition(conn, topic, 2, build_batch([b"%d" % i]))
    cluster.start_broker(follower)
    assert follower in cluster.isr(topic, 2)
    # the restarted follower can now lead with every record
    cluster.move_leader(topic, 2, follower)
    with connect(cluster, follower) as conn:
        result, _ = produce_partition(conn, topic, 2, build_batch([b"5"]))
    assert result.base_offset == 5
    assert [r.value for r in cluster.records(topic, 2)] == [b"%d" % i for i in range(6)]


def test_shrink_and_restore_isr(cluster: EmbeddedCluster, topic: str) -> None:
    info = cluster.partition_info(topic, 0)
    cluster.shrink_isr(topic, 0, [info.leader])
    assert cluster.isr(topic, 0) == [info.leader]
    with connect(cluster, info.leader) as conn:
        refused, _ = produce_partition(conn, topic, 0, build_batch([b"x"]))
        assert int(refused.error_code) == NOT_ENOUGH_REPLICAS
        follower = _followers(cluster, topic, 0)[0]
        with pytest.raises(ClusterError, match="not in the ISR"):
            cluster.move_leader(topic, 0, follower)
        cluster.restore_isr(topic, 0)
        assert cluster.isr(topic, 0) == list(info.replicas)
        accepted, _ = produce_partition(conn, topic, 0, build_batch([b"y"]))
        assert (int(accepted.error_code), accepted.base_offset) == (NONE, 0)


def test_misuse_is_reported(cluster: EmbeddedCluster, topic: str) -> None:
    leader = cluster.leader(topic, 0)
    with pytest.raises(ClusterError, match="no broker 9"):
        cluster.stop_broker(9)
    with pytest.raises(ClusterError, match="must keep its leader"):
        cluster.shrink_isr(topic, 0, _followers(cluster, topic, 0))
    with pytest.raises(ClusterError, match="has partitions 0..2"):
        cluster.leader(topic, 3)
    cluster.stop_broker(leader)
    with pytest.raises(ClusterError, match="already stopped"):
        cluster.stop_broker(leader)
    with pytest.raises(ClusterError, match="is stopped"):
        cluster.move_leader(topic, 0, leader)


def test_confluent_producer_survives_leader_failover(cluster: EmbeddedCluster, topic: str) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": cluster.bootstrap_servers, "enable.idempotence": True, "linger.ms": 1}
    )
    errors: list[Any] = []
    delivered: list[int] = []

    def send(i: int) -> None:
        producer.produce(
            topic,
            value=b"%d" % i,
            partition=0,
            on_delivery=lambda err, msg: errors.append(err) if err else delivered.append(int(msg.value())),
        )

    for i in range(500):
        send(i)
    assert producer.flush(10) == 0
    old_leader = cluster.leader(topic, 0)
    cluster.stop_broker(old_leader)
    for i in range(500, 1000):
        send(i)
    assert producer.flush(30) == 0
    assert errors == []
    assert sorted(delivered) == list(range(1000))
    assert [int(r.value) for r in cluster.records(topic, 0)] == list(range(1000))  # once each, in order
    assert cluster.leader(topic, 0) != old_leader
    wait_until(lambda: cluster.connections(cluster.leader(topic, 0)) > 0, what="producer connected to new leader")
