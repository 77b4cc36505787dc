"""The real-Kafka fixture itself: brokers, topics, and a node failing and coming back.

Every other integration test trusts these properties, so they are checked with
confluent-kafka's own admin client, plus Metadata sent to each node alone where a
claim is about one particular node.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.apache_kafka.realkafka import (
    ClusterControlError,
    ExternalCluster,
    KafkaCluster,
    RealKafkaError,
    unique_topic,
)

FAILOVER_DEADLINE = 30.0


def _metadata(bootstrap: str, timeout: float = 10.0) -> Any:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 2}).list_topics(
        timeout=timeout
    )


def _wait_for(condition: Any, timeout: float, what: str) -> float:
    """Seconds until `condition()` returns true; fails the test after `timeout`."""
    begin = time.monotonic()
    wake = threading.Event()
    while not condition():
        if time.monotonic() - begin > timeout:
            pytest.fail(f"{what} not reached within {timeout:.0f} s")
        wake.wait(0.05)
    return time.monotonic() - begin


def _address(kafka: KafkaCluster, node_id: int) -> str:
    host, port = kafka.broker_address(node_id)
    return f"{host}:{port}"


def test_cluster_has_three_brokers_and_a_controller(kafka: KafkaCluster | ExternalCluster) -> None:
    metadata = _metadata(kafka.bootstrap_servers)
    assert sorted(metadata.brokers) == kafka.node_ids
    assert metadata.controller_id in kafka.node_ids
    for node_id, broker in metadata.brokers.items():
        assert (broker.host, broker.port) == kafka.broker_address(node_id)
    if isinstance(kafka, KafkaCluster):
        assert kafka.node_ids == [1, 2, 3]
        assert kafka.bootstrap_servers == ",".join(
            _address(kafka, node_id) for node_id in (1, 2, 3)
        )
        assert all(kafka.is_running(node_id) for node_id in kafka.node_ids)
    # Each node answers Metadata itself and sees every broker unfenced.
    for node_id in kafka.node_ids:
        view = kafka.node_metadata(node_id)
        assert view.brokers == {n: kafka.broker_address(n) for n in kafka.node_ids}
        assert view.controller_id in kafka.node_ids


def test_describe_cluster_names_the_controller(kafka: KafkaCluster | ExternalCluster) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers, "log_level": 2})
    description = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert sorted(node.id for node in description.nodes) == kafka.node_ids
    assert description.controller is not None
    assert description.controller.id in kafka.node_ids


def test_created_topic_has_leaders_and_full_isr(
    kafka: KafkaCluster | ExternalCluster, topic_factory: Any
) -> None:
    topic = topic_factory(partitions=6, replication_factor=3)
    described = _metadata(kafka.bootstrap_servers).topics[topic]
    assert described.error is None
    assert sorted(described.partitions) == [0, 1, 2, 3, 4, 5]
    for partition in described.partitions.values():
        assert partition.error is None
        assert partition.leader in partition.replicas
        assert len(set(partition.replicas)) == 3
        assert set(partition.replicas) <= set(kafka.node_ids)
        assert sorted(partition.isrs) == sorted(partition.replicas)
        assert kafka.leader(topic, partition.id) == partition.leader
    if isinstance(kafka, KafkaCluster):
        # Leaders are spread: every node leads some of the 6 partitions.
        assert {p.leader for p in described.partitions.values()} == {1, 2, 3}


def test_created_topic_is_visible_on_every_broker(
    kafka: KafkaCluster | ExternalCluster, topic_factory: Any
) -> None:
    topic = topic_factory(partitions=3, config={"min.insync.replicas": "2"})
    for node_id in kafka.node_ids:
        view = kafka.node_metadata(node_id)
        assert view.topic_problem(topic, 3) is None
        assert sorted(view.topics[topic]) == [0, 1, 2]
        assert all(state.leader in kafka.node_ids for state in view.topics[topic].values())


def test_internal_topics_exist_with_three_replicas(kafka: KafkaCluster | ExternalCluster) -> None:
    if not isinstance(kafka, KafkaCluster):
        pytest.skip("the managed cluster creates internal topics; an external one may not have")
    topics = _metadata(kafka.bootstrap_servers).topics
    for name in ("__consumer_offsets", "__transaction_state"):
        assert len(topics[name].partitions) == 3
        for partition in topics[name].partitions.values():
            assert sorted(partition.replicas) == [1, 2, 3]
            assert partition.leader in (1, 2, 3)


def test_leader_of_unknown_topic_or_partition_is_a_clear_error(
    kafka: KafkaCluster | ExternalCluster, topic_factory: Any
) -> None:
    missing = unique_topic("missing")
    with pytest.raises(RealKafkaError, match=re.escape(missing)):
        kafka.leader(missing, 0)
    topic = topic_factory(partitions=2)
    with pytest.raises(RealKafkaError, match=r"partitions 0\.\.1"):
        kafka.leader(topic, 2)


def _wait_failover(kafka: KafkaCluster, topic: str, victim: int) -> Any:
    """Wait until both survivors see `victim` fenced and leading nothing; their client view."""
    survivors = [node_id for node_id in kafka.node_ids if node_id != victim]

    def moved() -> bool:
        for node_id in survivors:
            view = kafka.node_metadata(node_id)
            if victim in view.brokers or any(
                state.leader not in survivors or victim in state.isr
                for state in view.topics[topic].values()
            ):
                return False
        return True

    _wait_for(moved, FAILOVER_DEADLINE, f"failover away from node {victim}")
    return _metadata(",".join(_address(kafka, node_id) for node_id in survivors))


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "sigterm"])
def test_stopped_node_loses_leadership_and_comes_back(
    kafka_control: KafkaCluster, topic_factory: Any, kill: bool
) -> None:
    kafka = kafka_control
    topic = topic_factory(partitions=6)
    victim = kafka.leader(topic, 0)
    led_before = [p for p in range(6) if kafka.leader(topic, p) == victim]
    assert led_before, "node leads no partition"

    begin = time.monotonic()
    kafka.stop_node(victim, kill=kill)
    assert not kafka.is_running(victim)
    metadata = _wait_failover(kafka, topic, victim)
    signal_name = "SIGKILL" if kill else "SIGTERM"
    print(
        f"\nnode {victim} {signal_name}: leaders moved "
        f"{time.monotonic() - begin:.2f} s after the signal"
    )
    assert sorted(metadata.brokers) == sorted(set(kafka.node_ids) - {victim})
    for partition in led_before:
        assert metadata.topics[topic].partitions[partition].leader != victim

    begin = time.monotonic()
    kafka.start_node(victim)
    print(f"restart of node {victim}: {time.monotonic() - begin:.2f} s")
    assert kafka.is_running(victim)
    for node_id in kafka.node_ids:
        assert sorted(kafka.node_metadata(node_id).brokers) == [1, 2, 3]
    assert sorted(_metadata(kafka.bootstrap_servers).brokers) == [1, 2, 3]

    kafka.wait_for_full_isr(topic, timeout=FAILOVER_DEADLINE)
    partitions = _metadata(_address(kafka, victim)).topics[topic].partitions.values()
    assert all(sorted(p.isrs) == [1, 2, 3] for p in partitions)


def test_restore_restarts_stopped_nodes_and_preferred_leaders(
    kafka_control: KafkaCluster, topic_factory: Any
) -> None:
    kafka = kafka_control
    topic = topic_factory(partitions=6)
    preferred = {
        p.id: p.replicas[0]
        for p in _metadata(kafka.bootstrap_servers).topics[topic].partitions.values()
    }
    victim = preferred[0]
    kafka.stop_node(victim)
    _wait_failover(kafka, topic, victim)

    kafka.restore()

    assert all(kafka.is_running(node_id) for node_id in kafka.node_ids)
    partitions = _metadata(kafka.bootstrap_servers).topics[topic].partitions
    assert {p: partitions[p].leader for p in partitions} == preferred
    assert all(sorted(partitions[p].isrs) == [1, 2, 3] for p in partitions)


def test_stopping_an_unknown_node_is_a_clear_error(kafka_control: KafkaCluster) -> None:
    with pytest.raises(ValueError, match=r"node_id 7 is not one of \[1, 2, 3\]"):
        kafka_control.stop_node(7)


def test_external_cluster_refuses_node_control() -> None:
    external = ExternalCluster("127.0.0.1:9092")
    assert not external.controllable
    with pytest.raises(ClusterControlError, match="KPROD_BOOTSTRAP"):
        external.stop_node(1, kill=True)
    with pytest.raises(ClusterControlError, match="KPROD_BOOTSTRAP"):
        external.start_node(1)


@pytest.mark.parametrize("value", ["", "localhost", "host:0", "host:70000", "a:1,:2"])
def test_external_cluster_rejects_bad_bootstrap(value: str) -> None:
    with pytest.raises(ValueError, match="expected host:port"):
        ExternalCluster(value)


def test_unique_topic_names_are_legal_and_distinct() -> None:
    names = {unique_topic("test_x[param/1]") for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert re.fullmatch(r"test_x-param-1-[0-9a-f]{12}", name), name
