"""Batch validation on Produce, size limits and timestamp types."""

from __future__ import annotations

import struct
import time

import pytest
from cluster_helpers import build_batch, connect, fetch_partition, produce_partition
from crc32c import crc32c

from kprod.cluster import EmbeddedCluster
from kprod.protocol.records import read_batches

NONE = 0
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87
UNKNOWN_TOPIC_OR_PARTITION = 3


def _restamp(batch: bytearray) -> bytes:
    """Recompute the CRC after editing covered bytes, so only the edit is wrong."""
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    return bytes(batch)


def _produce(cluster: EmbeddedCluster, topic: str, batch: bytes, version: int | None = None) -> tuple[int, str | None]:
    with connect(cluster, cluster.leader(topic, 0)) as conn:
        result, _ = produce_partition(conn, topic, 0, batch, version=version)
    return int(result.error_code), result.error_message if hasattr(result, "error_message") else None


def test_corrupt_crc(cluster: EmbeddedCluster, topic: str) -> None:
    batch = bytearray(build_batch([b"payload"]))
    batch[-1] ^= 0xFF
    code, message = _produce(cluster, topic, bytes(batch))
    assert code == CORRUPT_MESSAGE
    assert "CRC" in message
    assert cluster.end_offset(topic, 0) == 0


def test_truncated_batch(cluster: EmbeddedCluster, topic: str) -> None:
    code, _ = _produce(cluster, topic, build_batch([b"payload"])[:-3])
    assert code == CORRUPT_MESSAGE


def test_two_batches_in_one_partition(cluster: EmbeddedCluster, topic: str) -> None:
    code, message = _produce(cluster, topic, build_batch([b"a"]) + build_batch([b"b"]))
    assert code == INVALID_RECORD
    assert "exactly one record batch" in message


def test_offset_delta_disagreeing_with_count(cluster: EmbeddedCluster, topic: str) -> None:
    batch = bytearray(build_batch([b"a", b"b"]))
    struct.pack_into(">i", batch, 23, 5)  # lastOffsetDelta 5 for 2 records
    code, _ = _produce(cluster, topic, _restamp(batch))
    assert code == INVALID_RECORD


def test_control_batch_from_client(cluster: EmbeddedCluster, topic: str) -> None:
    batch = bytearray(build_batch([b"a"]))
    struct.pack_into(">h", batch, 21, 0x20)
    code, _ = _produce(cluster, topic, _restamp(batch))
    assert code == INVALID_RECORD


def test_old_magic(cluster: EmbeddedCluster, topic: str) -> None:
    batch = bytearray(build_batch([b"a"]))
    batch[16] = 1
    code, message = _produce(cluster, topic, bytes(batch))
    assert code == INVALID_RECORD
    assert "magic" in message


def test_zstd_needs_produce_v7(cluster: EmbeddedCluster, topic: str) -> None:
    batch = build_batch([b"zstd"], codec=4)
    code, _ = _produce(cluster, topic, batch, version=6)
    assert code == UNSUPPORTED_COMPRESSION_TYPE
    code, _ = _produce(cluster, topic, batch, version=7)
    assert code == NONE
    assert cluster.records(topic, 0)[0].value == b"zstd"


def test_message_too_large(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("small", config={"max.message.bytes": "1000"})
    code, message = _produce(cluster, "small", build_batch([b"x" * 1200]))
    assert code == MESSAGE_TOO_LARGE
    assert "max.message.bytes=1000" in message
    code, _ = _produce(cluster, "small", build_batch([b"x" * 500]))
    assert code == NONE


def test_cluster_wide_message_max_bytes() -> None:
    with EmbeddedCluster(brokers=1, config={"message.max.bytes": 2000}) as cluster:
        cluster.create_topic("t")
        code, _ = _produce(cluster, "t", build_batch([b"x" * 3000]))
        assert code == MESSAGE_TOO_LARGE


def test_unknown_partition(cluster: EmbeddedCluster, topic: str) -> None:
    with connect(cluster, 0) as conn:
        result, _ = produce_partition(conn, topic, 7, build_batch([b"x"]))
        missing, _ = produce_partition(conn, "no-such-topic", 0, build_batch([b"x"]))
    assert int(result.error_code) == UNKNOWN_TOPIC_OR_PARTITION
    assert int(missing.error_code) == UNKNOWN_TOPIC_OR_PARTITION  # Produce never auto-creates


def test_log_append_time_stamps_batches(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("stamped", config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    sent = build_batch([b"a", b"b"], timestamp=1_000)
    with connect(cluster, cluster.leader("stamped", 0)) as conn:
        result, _ = produce_partition(conn, "stamped", 0, sent)
        after = int(time.time() * 1000)
        append_time = int(result.log_append_time.timestamp() * 1000)
        assert before <= append_time <= after
        data, _ = fetch_partition(conn, "stamped", 0, 0)
    (batch,) = read_batches(data.records)  # CRC checked: the broker recomputed it
    assert batch.timestamp_type == 1
    assert batch.max_timestamp == append_time
    assert [r.timestamp for r in batch.records()] == [append_time, append_time]
    (logged,) = cluster.partition_log("stamped", 0)
    assert logged.timestamp_type == "LogAppendTime"


def test_create_time_is_kept(cluster: EmbeddedCluster, topic: str) -> None:
    with connect(cluster, cluster.leader(topic, 0)) as conn:
        result, _ = produce_partition(conn, topic, 0, build_batch([b"a", b"b"], timestamp=1_000))
    assert result.log_append_time is None  # -1 on the wire under CreateTime
    assert [r.timestamp for r in cluster.records(topic, 0)] == [1_000, 1_001]
    assert cluster.partition_log(topic, 0)[0].timestamp_type == "CreateTime"


@pytest.mark.parametrize("codec,name", [(1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")])
def test_compressed_batches_stored_as_sent(cluster: EmbeddedCluster, topic: str, codec: int, name: str) -> None:
    values = [b"value %d" % i * 10 for i in range(50)]
    batch = build_batch(values, codec=codec)
    assert _produce(cluster, topic, batch)[0] == NONE
    (logged,) = cluster.partition_log(topic, 0)
    assert logged.compression == name
    assert logged.size_in_bytes == len(batch)
    assert [r.value for r in logged.records] == values


def test_large_batch_is_stored_exactly(cluster: EmbeddedCluster) -> None:
    cluster.create_topic("big", config={"max.message.bytes": str(8 * 1024 * 1024)})
    values = [bytes([i % 251]) * 100_000 for i in range(50)]  # ~5 MB, many socket reads
    batch = build_batch(values)
    with connect(cluster, cluster.leader("big", 0), timeout=30) as conn:
        result, _ = produce_partition(conn, "big", 0, batch)
        assert int(result.error_code) == NONE
        data, _ = fetch_partition(conn, "big", 0, 0, partition_max_bytes=10 * 1024 * 1024)
    assert data.records[16:] == batch[16:]  # byte for byte after the stamped offset and leader epoch
    assert [r.value for r in cluster.records("big", 0)] == values
