"""Kafka's own Java tools use the embedded cluster's group coordinator.

``ConsoleConsumer --group`` reads every record and commits its offsets;
``ConsumerGroupCommand --describe --group`` lists the group's partitions,
committed offsets, lag and members, and ``--list``, ``--reset-offsets`` and
``--delete`` change what the cluster holds. The jars come from Maven into .cache (as
for the real-Kafka tests); without Java they skip, except under CI=true where
they fail, so CI cannot lose them silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster_helpers import wait_until
from kprod import Producer
from kprod.cluster import EmbeddedCluster

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.apache_kafka.realkafka import LOG4J_CONFIG, KafkaSetupError, ensure_kafka_jars, find_java  # noqa: E402

TOPIC = "orders"
GROUP = "java-readers"
_TOOL_TIMEOUT = 180


@pytest.fixture(scope="module")
def java_tool() -> Iterator[list[str]]:
    """The command prefix running a class of Kafka 4.4's tools."""
    try:
        java = find_java()
        libs = ensure_kafka_jars()
    except KafkaSetupError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Kafka's Java tools are needed in CI: {exc}")
        pytest.skip(str(exc))
    yield [java, "-Xmx256m", "-cp", f"{libs}/*", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]


def _run(java_tool: list[str], cls: str, *args: str) -> str:
    done = subprocess.run(
        [*java_tool, cls, *args], capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{cls} failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture
def orders(cluster: EmbeddedCluster) -> dict[int, list[str]]:
    """30 records, 10 per partition of a 3-partition topic: {partition: [values]}."""
    cluster.create_topic(TOPIC, partitions=3, replication_factor=3)
    sent: dict[int, list[str]] = {p: [] for p in range(3)}
    with Producer({"bootstrap.servers": cluster.bootstrap_servers}) as producer:
        for i in range(30):
            value = f"order-{i}"
            producer.send(TOPIC, value.encode(), partition=i % 3)
            sent[i % 3].append(value)
        producer.flush(30)
    return sent


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_console_consumer_with_group_reads_and_commits(
    cluster: EmbeddedCluster, orders: dict[int, list[str]], java_tool: list[str], protocol: str
) -> None:
    out = _run(
        java_tool,
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server", cluster.bootstrap_servers,
        "--topic", TOPIC,
        "--group", GROUP,
        "--from-beginning",
        "--max-messages", "30",
        "--timeout-ms", "60000",
        "--formatter-property", "print.partition=true",
        "--consumer-property", f"group.protocol={protocol}",
    )
    lines = [line for line in out.splitlines() if line.startswith("Partition:")]
    assert len(lines) == 30
    got: dict[int, list[str]] = {p: [] for p in range(3)}
    for line in lines:
        partition, value = line.split("\t")
        got[int(partition.removeprefix("Partition:"))].append(value)
    assert got == orders  # every record once, in partition order
    info = cluster.group_info(GROUP)
    assert info.state == "Empty" and info.protocol_type == "consumer" and info.group_type == protocol
    assert info.offsets == {(TOPIC, p): 10 for p in range(3)}


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_consumer_group_command_describes_a_live_group(
    cluster: EmbeddedCluster, orders: dict[int, list[str]], java_tool: list[str], protocol: str
) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": cluster.bootstrap_servers, "group.id": GROUP, "enable.auto.commit": False,
         "auto.offset.reset": "earliest", "client.id": "describe-me", "log_level": 2, "group.protocol": protocol}
    )
    try:
        consumer.subscribe([TOPIC])
        read: list[bytes] = []

        def consumed_all() -> bool:
            read.extend(m.value() for m in consumer.consume(100, 0.05) if m.error() is None)
            return len(read) == 30

        wait_until(consumed_all, timeout=60, what="the consumer reading every record")
        # commit 7 of each partition's 10 records, so the tool reports a lag of 3
        partitions = [confluent_kafka.TopicPartition(TOPIC, p, 7) for p in range(3)]
        consumer.commit(offsets=partitions, asynchronous=False)
        member_id = consumer.memberid()
        out = _run(
            java_tool,
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server", cluster.bootstrap_servers,
            "--describe", "--group", GROUP,
        )
    finally:
        consumer.close()
    rows = [line.split() for line in out.splitlines() if line.startswith(GROUP)]
    assert sorted(row[:9] for row in rows) == [
        [GROUP, TOPIC, str(p), "7", "10", "3", member_id, "/127.0.0.1", "describe-me"] for p in range(3)
    ]


def test_consumer_group_command_lists_resets_and_deletes(
    cluster: EmbeddedCluster, orders: dict[int, list[str]], java_tool: list[str]
) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    for group, partition, offset in (("billing", 0, 5), ("audit", 1, 8)):
        committer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group})
        committer.commit(offsets=[confluent_kafka.TopicPartition(TOPIC, partition, offset)], asynchronous=False)
        committer.close()
    command = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    bootstrap = ["--bootstrap-server", cluster.bootstrap_servers]
    assert sorted(_run(java_tool, command, *bootstrap, "--list").split()) == ["audit", "billing"]
    _run(java_tool, command, *bootstrap, "--reset-offsets", "--group", "audit", "--topic", TOPIC,
         "--to-earliest", "--execute")
    assert cluster.group_info("audit").offsets == {(TOPIC, p): 0 for p in range(3)}
    _run(java_tool, command, *bootstrap, "--delete", "--group", "billing")
    assert cluster.groups() == ["audit"]
