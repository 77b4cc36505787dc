"""ApiVersions, Metadata (auto-creation), CreateTopics, DeleteTopics, and cluster settings."""

from __future__ import annotations

import socket
import struct

import pytest
from cluster_helpers import connect

from kprod.cluster import ClusterError, EmbeddedCluster
from kprod.protocol.messages import ApiKey
from kprod.protocol.requests import create_topics_request, delete_topics_request, metadata_request

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_NOT_AVAILABLE = 15
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40


def _raw_exchange(cluster: EmbeddedCluster, frame_body: bytes) -> bytes:
    """Send one hand-made request frame; return the response frame (b"" if the broker closed)."""
    broker = cluster.brokers[0]
    with socket.create_connection((broker.host, broker.port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(frame_body)) + frame_body)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            if len(data) >= 4 and len(data) >= 4 + struct.unpack(">i", data[:4])[0]:
                return data[4:]


def test_advertised_versions(cluster: EmbeddedCluster) -> None:
    with connect(cluster, 0) as conn:
        ranges = conn.broker_versions
    assert ranges[ApiKey.PRODUCE] == (0, 11)
    assert ranges[ApiKey.FETCH] == (4, 12)
    assert ranges[ApiKey.METADATA] == (0, 12)
    assert ranges[ApiKey.LIST_OFFSETS] == (1, 7)
    assert ranges[ApiKey.API_VERSIONS] == (0, 4)
    assert {ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.INIT_PRODUCER_ID} <= set(ranges)


def test_api_versions_unknown_version_gets_v0_answer(cluster: EmbeddedCluster) -> None:
    # ApiVersions v9 (unknown), header v2: key, version, correlation id, client id, no tags; junk body
    request = struct.pack(">hhih", 18, 9, 77, 4) + b"test" + b"\x00" + b"\x05junk"
    response = _raw_exchange(cluster, request)
    correlation_id, error_code, count = struct.unpack_from(">ihi", response)
    assert (correlation_id, error_code, count) == (77, UNSUPPORTED_VERSION, 1)
    assert struct.unpack_from(">hhh", response, 10) == (18, 0, 4)
    assert len(response) == 16


def test_unknown_api_or_version_closes_connection(cluster: EmbeddedCluster) -> None:
    join_group_v10 = struct.pack(">hhih", 11, 10, 1, 4) + b"test" + b"\x00" * 20  # no such version
    assert _raw_exchange(cluster, join_group_v10) == b""
    produce_v2 = struct.pack(">hhih", 0, 2, 1, 4) + b"test" + b"\x00" * 20  # advertised from 0, refused below 3
    assert _raw_exchange(cluster, produce_v2) == b""


def test_create_topics_request(cluster: EmbeddedCluster) -> None:
    with connect(cluster, 0) as conn:
        version = conn.version(ApiKey.CREATE_TOPICS)
        response = conn.send(
            create_topics_request(
                version,
                [
                    ("orders", 4, 2, {"min.insync.replicas": "2", "message.timestamp.type": "LogAppendTime"}),
                    ("bad/name", 1, 1, None),
                    ("too-replicated", 1, 4, None),
                    ("no-partitions", 0, 1, None),
                    ("bad-config", 1, 1, {"min.insync.replica": "2"}),
                ],
            )
        )
        results = {t.name: t for t in response.topics}
        assert int(results["orders"].error_code) == NONE
        assert (results["orders"].num_partitions, results["orders"].replication_factor) == (4, 2)
        configs = {c.name: c.value for c in results["orders"].configs}
        assert configs["min.insync.replicas"] == "2"
        assert configs["message.timestamp.type"] == "LogAppendTime"
        assert int(results["bad/name"].error_code) == INVALID_TOPIC_EXCEPTION
        assert int(results["too-replicated"].error_code) == INVALID_REPLICATION_FACTOR
        assert int(results["no-partitions"].error_code) == INVALID_PARTITIONS
        assert int(results["bad-config"].error_code) == INVALID_CONFIG
        assert "Did you mean 'min.insync.replicas'" in results["bad-config"].error_message

        again = conn.send(create_topics_request(version, [("orders", 1, 1, None)]))
        assert int(again.topics[0].error_code) == TOPIC_ALREADY_EXISTS
        dry = conn.send(create_topics_request(version, [("dry", 1, 1, None)], validate_only=True))
        assert int(dry.topics[0].error_code) == NONE
    assert cluster.topics() == ["orders"]
    info = cluster.partition_info("orders", 3)
    assert len(info.replicas) == 2 and info.isr == info.replicas


def test_delete_topics_request(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("doomed", partitions=2)
    with connect(cluster, 1) as conn:
        response = conn.send(delete_topics_request(conn.version(ApiKey.DELETE_TOPICS), ["doomed", "never"]))
    codes = {r.name: int(r.error_code) for r in response.responses}
    assert codes == {"doomed": NONE, "never": UNKNOWN_TOPIC_OR_PARTITION}
    assert cluster.topics() == []


def test_metadata_auto_creates_topics() -> None:
    config = {"num.partitions": 4, "default.replication.factor": 2}
    with EmbeddedCluster(brokers=3, config=config) as cluster:
        with connect(cluster, 0) as conn:
            version = conn.version(ApiKey.METADATA)
            response = conn.send(metadata_request(version, ["auto"], allow_auto_topic_creation=True))
            no_auto = conn.send(metadata_request(version, ["manual"], allow_auto_topic_creation=False))
            bad = conn.send(metadata_request(version, ["bad name"], allow_auto_topic_creation=True))
        topic = response.topics[0]
        assert int(topic.error_code) == NONE
        assert len(topic.partitions) == 4
        assert all(len(p.replica_nodes) == 2 and p.leader_id >= 0 for p in topic.partitions)
        assert response.cluster_id.startswith("kprod-embedded-")
        assert int(no_auto.topics[0].error_code) == UNKNOWN_TOPIC_OR_PARTITION
        assert int(bad.topics[0].error_code) == INVALID_TOPIC_EXCEPTION
        assert cluster.topics() == ["auto"]


def test_auto_creation_can_be_disabled() -> None:
    with EmbeddedCluster(brokers=1, config={"auto.create.topics.enable": False}) as cluster:
        with connect(cluster, 0) as conn:
            response = conn.send(metadata_request(conn.version(ApiKey.METADATA), ["t"], allow_auto_topic_creation=True))
        assert int(response.topics[0].error_code) == UNKNOWN_TOPIC_OR_PARTITION
        assert cluster.topics() == []


def test_metadata_of_all_topics(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("a", partitions=2, replication_factor=3)
    cluster.create_topic("b")
    with connect(cluster, 2) as conn:
        response = conn.send(metadata_request(conn.version(ApiKey.METADATA), None))
    assert sorted(t.name for t in response.topics) == ["a", "b"]
    assert sorted(b.node_id for b in response.brokers) == [0, 1, 2]
    assert response.controller_id == 0
    # leaders spread over the brokers
    assert len({p.leader_id for p in response.topics[0].partitions}) == 2


def test_find_coordinator_has_no_transaction_coordinator(cluster: EmbeddedCluster) -> None:
    from kprod.protocol.messages import request_type

    with connect(cluster, 0) as conn:
        version = conn.version(ApiKey.FIND_COORDINATOR)
        response = conn.send(request_type(ApiKey.FIND_COORDINATOR, version)(key_type=1, coordinator_keys=("tx",)))
    assert [int(c.error_code) for c in response.coordinators] == [COORDINATOR_NOT_AVAILABLE]


def test_confluent_admin_client(cluster: EmbeddedCluster) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    futures = admin.create_topics([NewTopic("via-admin", num_partitions=3, replication_factor=2)])
    futures["via-admin"].result(10)
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics["via-admin"].partitions) == 3
    admin.delete_topics(["via-admin"])["via-admin"].result(10)
    assert cluster.topics() == []
    with pytest.raises(confluent_kafka.KafkaException):
        admin.create_topics([NewTopic("x", num_partitions=1, replication_factor=5)])["x"].result(10)


def test_python_api_topic_errors(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("t")
    with pytest.raises(ClusterError, match="already exists"):
        cluster.create_topic("t")
    with pytest.raises(ClusterError, match="illegal"):
        cluster.create_topic("a b")
    with pytest.raises(ClusterError, match="must be 'CreateTime' or 'LogAppendTime'"):
        cluster.create_topic("u", config={"message.timestamp.type": "Now"})
    with pytest.raises(ClusterError, match="does not exist"):
        cluster.delete_topic("nope")
    cluster.create_topic("placed", assignments={0: [2, 0], 1: [1, 2]})
    assert (cluster.leader("placed", 0), cluster.leader("placed", 1)) == (2, 1)
    assert cluster.isr("placed", 0) == [2, 0]


def test_cluster_settings_are_checked() -> None:
    with pytest.raises(ClusterError, match="Did you mean 'num.partitions'"):
        EmbeddedCluster(config={"num.partitons": 3})
    with pytest.raises(ClusterError, match="not an integer"):
        EmbeddedCluster(config={"min.insync.replicas": "two"})
    with pytest.raises(ClusterError, match="one port per broker"):
        EmbeddedCluster(brokers=2, ports=[9092])
    with pytest.raises(ClusterError, match="either port"):
        EmbeddedCluster(port=9092, ports=[9092, 9093, 9094])


def test_fixed_ports() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    try:
        cluster = EmbeddedCluster(brokers=2, ports=[base, 0]).start()
    except ClusterError:
        pytest.skip(f"port {base} was taken between the probe and the bind")
    with cluster:
        assert cluster.brokers[0].port == base
        assert cluster.bootstrap_servers.startswith(f"127.0.0.1:{base},")
        with pytest.raises(ClusterError, match="cannot listen"):
            EmbeddedCluster(brokers=1, ports=[base]).start()
