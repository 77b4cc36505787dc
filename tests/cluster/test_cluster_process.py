"""The child-process mode (same API) and the foreground command ``python -m kprod.cluster``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from cluster_helpers import build_batch, connect, produce_partition

from kprod.cluster import ClusterError, EmbeddedCluster
from kprod.cluster.main import run
from kprod.errors import KafkaConnectionError
from kprod.net.blocking import BlockingConnection
from kprod.protocol.messages import ApiKey
from kprod.protocol.requests import metadata_request

NOT_LEADER_OR_FOLLOWER = 6


@pytest.fixture
def child_cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(brokers=3, process=True) as cluster:
        yield cluster
        assert cluster.internal_errors() == []


def test_same_api_in_a_child_process(child_cluster: EmbeddedCluster) -> None:
    cluster = child_cluster
    assert cluster.process
    assert [b.node_id for b in cluster.brokers] == [0, 1, 2]
    cluster.create_topic("t", partitions=2, replication_factor=3, config={"min.insync.replicas": "2"})
    info = cluster.partition_info("t", 0)
    assert info.leader == cluster.leader("t", 0) and len(info.isr) == 3
    with connect(cluster, info.leader) as conn:
        result, _ = produce_partition(conn, "t", 0, build_batch([b"a", b"b"], producer_id=5, producer_epoch=0, base_sequence=0))
    assert result.base_offset == 0
    (batch,) = cluster.partition_log("t", 0)
    assert (batch.producer_id, batch.base_sequence, [r.value for r in batch.records]) == (5, 0, [b"a", b"b"])

    cluster.stop_broker(info.leader)
    assert cluster.leader("t", 0) != info.leader
    assert not next(b for b in cluster.brokers if b.node_id == info.leader).running
    cluster.start_broker(info.leader)
    cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=2)
    assert cluster.pending_injections() == 2
    with pytest.raises(ClusterError, match="no broker 8"):
        cluster.stop_broker(8)
    with pytest.raises(ClusterError, match="already exists"):
        cluster.create_topic("t")


def test_clients_against_a_child_process(child_cluster: EmbeddedCluster) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    child_cluster.create_topic("perf", partitions=3, replication_factor=2)
    producer = confluent_kafka.Producer({"bootstrap.servers": child_cluster.bootstrap_servers, "linger.ms": 5})
    for i in range(3000):
        producer.produce("perf", key=b"%d" % i, value=b"v%d" % i)
    assert producer.flush(30) == 0
    del producer
    assert sum(child_cluster.end_offset("perf", p) for p in range(3)) == 3000
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": child_cluster.bootstrap_servers, "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([confluent_kafka.TopicPartition("perf", p, 0) for p in range(3)])
    values = set()
    deadline = time.monotonic() + 20
    while len(values) < 3000 and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            assert msg.error() is None
            values.add(msg.value())
    consumer.close()
    assert values == {b"v%d" % i for i in range(3000)}


def test_child_process_releases_ports_on_stop() -> None:
    cluster = EmbeddedCluster(brokers=1, process=True).start()
    broker = cluster.brokers[0]
    cluster.stop()
    cluster.stop()  # idempotent
    with pytest.raises(KafkaConnectionError):
        BlockingConnection(broker.host, broker.port, timeout=5)
    with pytest.raises(ClusterError, match="not started"):
        cluster.topics()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output from python -m kprod.cluster within {timeout}s")
    return process.stdout.readline().strip()


def test_foreground_command_prints_bootstrap_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "kprod.cluster", "--brokers", "2", "--topic", "demo:3:2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        bootstrap = _read_line(process, 60)
        hosts = bootstrap.split(",")
        assert len(hosts) == 2 and all(h.startswith("127.0.0.1:") for h in hosts)
        host, port = hosts[1].split(":")
        with BlockingConnection(host, int(port)) as conn:
            metadata = conn.send(metadata_request(conn.version(ApiKey.METADATA), ["demo"]))
        assert len(metadata.topics[0].partitions) == 3
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
        assert process.stderr is not None
        assert "A development and test tool, NOT a production broker" in process.stderr.read()
        with pytest.raises(KafkaConnectionError):
            BlockingConnection(host, int(port), timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_foreground_command_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--brokers", "0"]) == 2
    assert "brokers must be a positive number" in capsys.readouterr().err
    assert run(["--config", "num.partition=2"]) == 2
    assert "Did you mean 'num.partitions'" in capsys.readouterr().err
