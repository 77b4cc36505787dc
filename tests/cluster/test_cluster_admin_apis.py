"""The admin APIs of the embedded cluster, through confluent-kafka's and kafka-python's admin clients.

Each test reads back exact results: the configs a client sees after it set
them, the partition count after CreatePartitions, the low watermark after
DeleteRecords, the offsets ListOffsets finds for timestamps, and the effect
of a changed topic config on the next request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import build_batch, connect, produce_partition, wait_until

from kprod.cluster import ClusterError, EmbeddedCluster

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    OffsetSpec,
)

kafka_admin = pytest.importorskip("kafka.admin")

TIMEOUT = 30


@pytest.fixture
def admin(cluster: EmbeddedCluster) -> Iterator[Any]:
    yield AdminClient({"bootstrap.servers": cluster.bootstrap_servers})


@pytest.fixture
def kp_admin(cluster: EmbeddedCluster) -> Iterator[Any]:
    client = kafka_admin.KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    yield client
    client.close()


def _describe(admin: Any, topic: str) -> dict[str, tuple[str, Any]]:
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {name: (entry.value, ConfigSource(entry.source)) for name, entry in future.result(TIMEOUT).items()}


def _incremental(admin: Any, topic: str, *changes: tuple[str, str | None, Any]) -> None:
    entries = [ConfigEntry(name, value, incremental_operation=op) for name, value, op in changes]
    (future,) = admin.incremental_alter_configs([ConfigResource("topic", topic, incremental_configs=entries)]).values()
    future.result(TIMEOUT)


def _produce(cluster: EmbeddedCluster, topic: str, values: list[bytes], partition: int = 0, **config: Any) -> list[Any]:
    """Send with confluent-kafka; the delivery error (or None) of each record, in order."""
    settings = {"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0, "message.timeout.ms": 10_000}
    settings.update(config)
    producer = Producer(settings)
    results: list[Any] = []
    for value in values:
        producer.produce(topic, value=value, key=b"k", partition=partition, on_delivery=lambda e, m: results.append(e))
        producer.flush(TIMEOUT)
    return results


def _consume(cluster: EmbeddedCluster, topic: str, partition: int, count: int, offset: int = 0) -> list[Any]:
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap_servers, "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, offset)])
    out: list[Any] = []
    try:
        wait_until(lambda: out.extend(m for m in consumer.consume(count, 0.2) if m.error() is None) or len(out) >= count,
                   what=f"{count} records from {topic}-{partition}")
    finally:
        consumer.close()
    return out


# -- DescribeConfigs / IncrementalAlterConfigs / AlterConfigs ------------------------------


def test_describe_configs_lists_every_topic_key_with_its_source(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("configured", partitions=1, config={"retention.bytes": "1000000", "min.insync.replicas": "1"})
    described = _describe(admin, "configured")
    assert described == {
        "cleanup.policy": ("delete", ConfigSource.DEFAULT_CONFIG),
        "compression.type": ("producer", ConfigSource.DEFAULT_CONFIG),
        "max.message.bytes": ("1048588", ConfigSource.DEFAULT_CONFIG),
        "message.timestamp.type": ("CreateTime", ConfigSource.DEFAULT_CONFIG),
        "min.insync.replicas": ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG),
        "retention.bytes": ("1000000", ConfigSource.DYNAMIC_TOPIC_CONFIG),
        "retention.ms": ("-1", ConfigSource.DEFAULT_CONFIG),
        "segment.bytes": ("1073741824", ConfigSource.DEFAULT_CONFIG),
        "segment.ms": ("604800000", ConfigSource.DEFAULT_CONFIG),
    }


def test_broker_settings_show_as_static_broker_config() -> None:
    with EmbeddedCluster(brokers=1, config={"min.insync.replicas": "1", "log.retention.bytes": "5000"}) as cluster:
        cluster.create_topic("t")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        described = _describe(admin, "t")
        assert described["retention.bytes"] == ("5000", ConfigSource.STATIC_BROKER_CONFIG)
        assert described["max.message.bytes"] == ("1048588", ConfigSource.DEFAULT_CONFIG)
        (future,) = admin.describe_configs([ConfigResource("broker", "0")]).values()
        broker = {name: (e.value, ConfigSource(e.source), e.is_read_only) for name, e in future.result(TIMEOUT).items()}
        assert broker["log.retention.bytes"] == ("5000", ConfigSource.STATIC_BROKER_CONFIG, True)
        assert broker["num.partitions"] == ("1", ConfigSource.DEFAULT_CONFIG, True)


def test_describe_configs_of_a_missing_topic_fails(admin: Any) -> None:
    (future,) = admin.describe_configs([ConfigResource("topic", "nowhere")]).values()
    with pytest.raises(KafkaException) as caught:
        future.result(TIMEOUT)
    assert caught.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_incremental_alter_configs_set_delete_append_subtract(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", config={"retention.bytes": "1000000"})
    _incremental(
        admin,
        "t",
        ("retention.ms", "86400000", AlterConfigOpType.SET),
        ("retention.bytes", None, AlterConfigOpType.DELETE),
        ("cleanup.policy", "compact", AlterConfigOpType.APPEND),
    )
    described = _describe(admin, "t")
    assert described["retention.ms"] == ("86400000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert described["retention.bytes"] == ("67108864", ConfigSource.DEFAULT_CONFIG)
    assert described["cleanup.policy"] == ("delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    _incremental(admin, "t", ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT))
    assert _describe(admin, "t")["cleanup.policy"] == ("compact", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert cluster.topic_config("t")["cleanup.policy"] == "compact"


def test_a_refused_alteration_changes_nothing(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", config={"retention.bytes": "1000000"})
    with pytest.raises(KafkaException) as caught:
        _incremental(
            admin,
            "t",
            ("retention.bytes", "2000000", AlterConfigOpType.SET),
            ("message.timestamp.type", "Yesterday", AlterConfigOpType.SET),
        )
    assert caught.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "Yesterday" in caught.value.args[0].str()
    assert _describe(admin, "t")["retention.bytes"] == ("1000000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    with pytest.raises(KafkaException) as caught:
        _incremental(admin, "t", ("retention.bytes", "x", AlterConfigOpType.SET))
    assert caught.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_validate_only_checks_without_changing(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t")
    entries = [ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)]
    resource = ConfigResource("topic", "t", incremental_configs=entries)
    (future,) = admin.incremental_alter_configs([resource], validate_only=True).values()
    future.result(TIMEOUT)
    assert _describe(admin, "t")["retention.ms"] == ("-1", ConfigSource.DEFAULT_CONFIG)


def test_legacy_alter_configs_replaces_the_whole_set(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", config={"retention.bytes": "1000000"})
    resource = ConfigResource("topic", "t", set_config={"max.message.bytes": "5000"})
    with pytest.warns(DeprecationWarning):
        (future,) = admin.alter_configs([resource]).values()
    future.result(TIMEOUT)
    config = cluster.topic_config("t")
    assert config["max.message.bytes"] == "5000"
    assert config["retention.bytes"] == "67108864"  # not listed, so back to the default


def test_kafka_python_alter_configs_keeps_what_it_read(cluster: EmbeddedCluster, kp_admin: Any) -> None:
    # kafka-python's non-incremental alter_configs describes the topic first and sends
    # the modified keys it found along with the new ones.
    cluster.create_topic("t", config={"retention.bytes": "1000000"})
    resource = kafka_admin.ConfigResource(kafka_admin.ConfigResourceType.TOPIC, "t", configs={"max.message.bytes": "5000"})
    kp_admin.alter_configs([resource], incremental=False)
    config = cluster.topic_config("t")
    assert (config["max.message.bytes"], config["retention.bytes"]) == ("5000", "1000000")


def test_broker_configs_cannot_be_altered(admin: Any) -> None:
    entries = [ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)]
    (future,) = admin.incremental_alter_configs([ConfigResource("broker", "0", incremental_configs=entries)]).values()
    with pytest.raises(KafkaException) as caught:
        future.result(TIMEOUT)
    assert caught.value.args[0].code() == KafkaError.INVALID_REQUEST


def test_kafka_python_describe_configs(cluster: EmbeddedCluster, kp_admin: Any) -> None:
    cluster.create_topic("t", config={"message.timestamp.type": "LogAppendTime"})
    result = kp_admin.describe_configs([kafka_admin.ConfigResource(kafka_admin.ConfigResourceType.TOPIC, "t")])
    modified = result["topic"]["t"]
    assert list(modified) == ["message.timestamp.type"]
    assert modified["message.timestamp.type"]["value"] == "LogAppendTime"
    assert modified["message.timestamp.type"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"


# -- configs change behaviour ------------------------------------------------------------------


def test_altered_max_message_bytes_refuses_the_next_large_batch(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t")
    assert _produce(cluster, "t", [b"x" * 2000]) == [None]
    _incremental(admin, "t", ("max.message.bytes", "1000", AlterConfigOpType.SET))
    errors = _produce(cluster, "t", [b"x" * 2000, b"small"])
    assert [e.code() if e else None for e in errors] == [KafkaError.MSG_SIZE_TOO_LARGE, None]
    assert [r.value for r in cluster.records("t", 0)] == [b"x" * 2000, b"small"]


def test_altered_min_insync_replicas_applies_to_acks_all(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", partitions=1, replication_factor=3)
    cluster.shrink_isr("t", 0, [cluster.leader("t", 0)])
    assert _produce(cluster, "t", [b"a"], acks="all") == [None]
    _incremental(admin, "t", ("min.insync.replicas", "2", AlterConfigOpType.SET))
    errors = _produce(cluster, "t", [b"b"], acks="all", retries=0)
    assert [e.code() for e in errors] == [KafkaError.NOT_ENOUGH_REPLICAS]
    assert [r.value for r in cluster.records("t", 0)] == [b"a"]


def test_altered_timestamp_type_stamps_the_next_batches(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t")
    conn = connect(cluster, cluster.leader("t", 0))
    try:
        produce_partition(conn, "t", 0, build_batch([b"before"], timestamp=1000))
        _incremental(admin, "t", ("message.timestamp.type", "LogAppendTime", AlterConfigOpType.SET))
        produce_partition(conn, "t", 0, build_batch([b"after"], timestamp=1000))
    finally:
        conn.close()
    first, second = cluster.partition_log("t", 0)
    assert (first.timestamp_type, first.records[0].timestamp) == ("CreateTime", 1000)
    assert second.timestamp_type == "LogAppendTime" and second.records[0].timestamp > 1_600_000_000_000


def test_retention_ms_drops_batches_older_than_it(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("t", config={"retention.ms": "60000"})
    conn = connect(cluster, cluster.leader("t", 0))
    try:
        produce_partition(conn, "t", 0, build_batch([b"old1", b"old2"], timestamp=1000))
        import time

        now = int(time.time() * 1000)
        produce_partition(conn, "t", 0, build_batch([b"new"], timestamp=now))
    finally:
        conn.close()
    assert [(r.offset, r.value) for r in cluster.records("t", 0)] == [(2, b"new")]
    assert cluster.partition_info("t", 0).log_start_offset == 2


def test_retention_bytes_altered_later_applies_on_the_next_append(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t")
    conn = connect(cluster, cluster.leader("t", 0))
    try:
        for i in range(3):
            produce_partition(conn, "t", 0, build_batch([b"%d" % i * 100]))
        size = len(cluster.partition_log("t", 0)[0].records[0].value or b"")
        assert size == 100
        _incremental(admin, "t", ("retention.bytes", "1", AlterConfigOpType.SET))
        produce_partition(conn, "t", 0, build_batch([b"last"]))
    finally:
        conn.close()
    assert [(r.offset, r.value) for r in cluster.records("t", 0)] == [(3, b"last")]


# -- compaction ------------------------------------------------------------------------------------


def test_compact_keeps_the_last_record_of_each_key(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("t", config={"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 50})
    for i, key in enumerate([b"a", b"b", b"a", b"c", b"b", b"a"]):
        producer.produce("t", key=key, value=b"%d" % i, partition=0)
    producer.flush(TIMEOUT)
    assert cluster.compact("t") == 3
    kept = [(r.offset, r.key, r.value) for r in cluster.records("t", 0)]
    assert kept == [(3, b"c", b"3"), (4, b"b", b"4"), (5, b"a", b"5")]
    assert cluster.end_offset("t", 0) == 6
    read = _consume(cluster, "t", 0, 3)
    assert [(m.offset(), m.key(), m.value()) for m in read] == kept


def test_compact_is_refused_for_a_delete_topic(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("t")
    with pytest.raises(ClusterError, match="cleanup.policy=compact"):
        cluster.compact("t")


# -- CreatePartitions ----------------------------------------------------------------------------


def test_create_partitions_grows_the_topic(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", partitions=2, replication_factor=2)
    (future,) = admin.create_partitions([NewPartitions("t", 5)]).values()
    future.result(TIMEOUT)
    assert len(admin.list_topics("t", timeout=TIMEOUT).topics["t"].partitions) == 5
    for index in (2, 3, 4):
        info = cluster.partition_info("t", index)
        assert len(info.replicas) == 2 and info.leader == info.replicas[0] and info.end_offset == 0
    assert _produce(cluster, "t", [b"new"], partition=4) == [None]
    assert [r.value for r in cluster.records("t", 4)] == [b"new"]


def test_create_partitions_with_assignments_and_refusals(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", partitions=1, replication_factor=2)
    (future,) = admin.create_partitions([NewPartitions("t", 3, replica_assignment=[[2, 0], [1, 2]])]).values()
    future.result(TIMEOUT)
    assert [cluster.partition_info("t", p).replicas for p in (1, 2)] == [(2, 0), (1, 2)]
    (future,) = admin.create_partitions([NewPartitions("t", 2)]).values()
    with pytest.raises(KafkaException) as caught:
        future.result(TIMEOUT)
    assert caught.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert len(cluster.topics()) == 1 and cluster.partition_info("t", 2).replicas == (1, 2)


def test_kafka_python_create_partitions(cluster: EmbeddedCluster, kp_admin: Any) -> None:
    cluster.create_topic("t", partitions=1)
    kp_admin.create_partitions({"t": kafka_admin.NewPartitions(4)})
    assert [cluster.partition_info("t", p).partition for p in range(4)] == [0, 1, 2, 3]


# -- DeleteRecords and ListOffsets ------------------------------------------------------------------


def test_delete_records_moves_the_low_watermark(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", partitions=1, replication_factor=3)
    assert _produce(cluster, "t", [b"%d" % i for i in range(10)]) == [None] * 10
    (future,) = admin.delete_records([TopicPartition("t", 0, 4)]).values()
    assert future.result(TIMEOUT).low_watermark == 4
    assert cluster.partition_info("t", 0).log_start_offset == 4
    (future,) = admin.list_offsets({TopicPartition("t", 0): OffsetSpec.earliest()}).values()
    assert future.result(TIMEOUT).offset == 4
    read = _consume(cluster, "t", 0, 6, offset=confluent_kafka.OFFSET_BEGINNING)
    assert [(m.offset(), m.value()) for m in read] == [(i, b"%d" % i) for i in range(4, 10)]


def test_delete_records_to_the_end_and_beyond(cluster: EmbeddedCluster, kp_admin: Any) -> None:
    cluster.create_topic("t", partitions=1)
    assert _produce(cluster, "t", [b"a", b"b"]) == [None, None]
    kafka = pytest.importorskip("kafka")
    result = kp_admin.delete_records({kafka.TopicPartition("t", 0): -1})
    assert result[kafka.TopicPartition("t", 0)]["low_watermark"] == 2
    assert cluster.records("t", 0) == []
    with pytest.raises(Exception, match="OffsetOutOfRange"):
        kp_admin.delete_records({kafka.TopicPartition("t", 0): 9})
    assert cluster.partition_info("t", 0).log_start_offset == 2


def test_list_offsets_by_timestamp(cluster: EmbeddedCluster, admin: Any) -> None:
    cluster.create_topic("t", partitions=1)
    conn = connect(cluster, cluster.leader("t", 0))
    try:
        produce_partition(conn, "t", 0, build_batch([b"a", b"b", b"c"], timestamp=1000))  # 1000, 1001, 1002
        produce_partition(conn, "t", 0, build_batch([b"d"], timestamp=5000))
        produce_partition(conn, "t", 0, build_batch([b"e"], timestamp=3000))
    finally:
        conn.close()
    tp = TopicPartition("t", 0)

    def offset_for(spec: Any) -> tuple[int, int]:
        (future,) = admin.list_offsets({tp: spec}).values()
        found = future.result(TIMEOUT)
        return found.offset, found.timestamp

    assert offset_for(OffsetSpec.for_timestamp(1001)) == (1, 1001)
    assert offset_for(OffsetSpec.for_timestamp(2000)) == (3, 5000)
    assert offset_for(OffsetSpec.for_timestamp(9000))[0] == -1
    assert offset_for(OffsetSpec.max_timestamp()) == (3, 5000)
    assert offset_for(OffsetSpec.earliest())[0] == 0
    assert offset_for(OffsetSpec.latest())[0] == 5


# -- DescribeCluster and DescribeLogDirs -------------------------------------------------------------


def test_describe_cluster(cluster: EmbeddedCluster, admin: Any) -> None:
    described = admin.describe_cluster().result(TIMEOUT)
    assert described.cluster_id.startswith("kprod-embedded-")
    assert described.controller.id == 0
    assert sorted((n.id, n.host, n.port) for n in described.nodes) == [(b.node_id, b.host, b.port) for b in cluster.brokers]
    cluster.stop_broker(0)
    fresh = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    described = fresh.describe_cluster().result(TIMEOUT)
    assert described.controller.id == 1
    assert sorted(n.id for n in described.nodes) == [1, 2]


def test_describe_log_dirs_reports_sizes_and_lag(cluster: EmbeddedCluster, kp_admin: Any) -> None:
    cluster.create_topic("t", partitions=1, replication_factor=3)
    leader = cluster.leader("t", 0)
    lagging = next(r for r in cluster.partition_info("t", 0).replicas if r != leader)
    cluster.shrink_isr("t", 0, [r for r in cluster.isr("t", 0) if r != lagging])
    assert _produce(cluster, "t", [b"x" * 50, b"y" * 50]) == [None, None]
    size = sum(batch.size_in_bytes for batch in cluster.partition_log("t", 0))
    dirs = {entry["broker"]: entry["log_dirs"][0] for entry in kp_admin.describe_log_dirs()}
    assert sorted(dirs) == [0, 1, 2]
    for node, log_dir in dirs.items():
        assert log_dir["log_dir"] == f"/kprod-embedded/broker-{node}"
        (topic,) = log_dir["topics"]
        (partition,) = topic["partitions"]
        assert (topic["name"], partition["partition_index"], partition["partition_size"]) == ("t", 0, size)
        assert partition["offset_lag"] == (2 if node == lagging else 0)


def test_kafka_python_list_partition_offsets(cluster: EmbeddedCluster, kp_admin: Any) -> None:
    kafka = pytest.importorskip("kafka")
    cluster.create_topic("t", partitions=1)
    conn = connect(cluster, cluster.leader("t", 0))
    try:
        produce_partition(conn, "t", 0, build_batch([b"a", b"b"], timestamp=1000))
        produce_partition(conn, "t", 0, build_batch([b"c"], timestamp=9000))
        produce_partition(conn, "t", 0, build_batch([b"d"], timestamp=2000))
    finally:
        conn.close()
    tp = kafka.TopicPartition("t", 0)
    found = {
        name: kp_admin.list_partition_offsets({tp: spec})[tp]
        for name, spec in (
            ("latest", kafka_admin.OffsetSpec.LATEST),
            ("earliest", kafka_admin.OffsetSpec.EARLIEST),
            ("max", kafka_admin.OffsetSpec.MAX_TIMESTAMP),
        )
    }
    assert (found["latest"].offset, found["earliest"].offset) == (4, 0)
    assert (found["max"].offset, found["max"].timestamp) == (2, 9000)


def test_describe_cluster_lists_stopped_brokers_as_fenced_when_asked(cluster: EmbeddedCluster) -> None:
    from kprod.protocol.messages import request_type

    cluster.stop_broker(2)
    conn = connect(cluster, 0)
    try:
        request = request_type(60, 2)(include_cluster_authorized_operations=False, include_fenced_brokers=True)
        answer = conn.send(request)
        plain = conn.send(request_type(60, 2)(include_cluster_authorized_operations=False, include_fenced_brokers=False))
    finally:
        conn.close()
    assert [(b.broker_id, b.is_fenced) for b in answer.brokers] == [(0, False), (1, False), (2, True)]
    assert [b.broker_id for b in plain.brokers] == [0, 1]
