"""What the Python API reports back: brokers, partitions, and the batches a log holds.

Plain frozen dataclasses, so they compare in assertions and pickle across the
child-process boundary unchanged. Records are ``kprod.protocol.records.Record``
tuples: (offset, timestamp, key, value, headers).
"""

from __future__ import annotations

from dataclasses import dataclass

from kprod.protocol.records import Record, parse_batch_header

__all__ = ["BrokerInfo", "LoggedBatch", "PartitionInfo", "Record", "decode_batches"]

_CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """One broker of the embedded cluster."""

    node_id: int
    host: str
    port: int
    running: bool

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """Leadership, replication and log bounds of one partition at one moment."""

    topic: str
    partition: int
    leader: int  # -1 while offline
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    log_start_offset: int
    end_offset: int  # the high watermark: replication is synchronous, so also the log end offset


@dataclass(frozen=True, slots=True)
class LoggedBatch:
    """One record batch as the partition stores it, with its records decoded."""

    base_offset: int
    last_offset: int
    partition_leader_epoch: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    compression: str  # none, gzip, snappy, lz4, zstd
    timestamp_type: str  # CreateTime or LogAppendTime
    max_timestamp: int
    transactional: bool
    size_in_bytes: int
    records: tuple[Record, ...]

    @property
    def record_count(self) -> int:
        return self.last_offset - self.base_offset + 1

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.record_count - 1) & 0x7FFFFFFF


def decode_batches(batches: list[bytes]) -> list[LoggedBatch]:
    """Read stored batches for assertions (decompresses; not for hot paths)."""
    out = []
    for data in batches:
        batch = parse_batch_header(data)
        out.append(
            LoggedBatch(
                base_offset=batch.base_offset,
                last_offset=batch.last_offset,
                partition_leader_epoch=batch.partition_leader_epoch,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                base_sequence=batch.base_sequence,
                compression=_CODECS.get(batch.codec, str(batch.codec)),
                timestamp_type="LogAppendTime" if batch.timestamp_type else "CreateTime",
                max_timestamp=batch.max_timestamp,
                transactional=batch.is_transactional,
                size_in_bytes=batch.size_in_bytes,
                records=tuple(batch.records()),
            )
        )
    return out
