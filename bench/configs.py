"""The benchmark configurations of issues 3 and 7, each with the producer settings all clients get."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONFIGS", "BenchConfig"]


@dataclass(frozen=True)
class BenchConfig:
    """One workload. Every client is configured from these fields alone."""

    name: str
    description: str
    record_size: int = 100
    key_size: int = 0  # 0: null keys
    acks: str = "1"
    idempotence: bool = False
    linger_ms: int = 5
    batch_size: int = 65536
    compression: str = "none"
    partitions: int = 6
    #: "" (PLAINTEXT) or "sasl_ssl": SCRAM-SHA-512 over TLS on the real cluster's SASL_SSL listener
    security: str = ""


_MAIN = "100 B records, 6 partitions, linger 5 ms, batch 64 KiB, null keys, acks=1"

CONFIGS: dict[str, BenchConfig] = {
    config.name: config
    for config in (
        BenchConfig("main", _MAIN),
        BenchConfig("batch16k", "as main, but batch.size 16 KiB (the default; issue 3)", batch_size=16384),
        BenchConfig("idempotent", "as main, but acks=all with idempotence", acks="all", idempotence=True),
        BenchConfig("keys16", "as main, with 16-byte random keys (Java partitioning)", key_size=16),
        BenchConfig("lz4", "as main, lz4-compressed", compression="lz4"),
        BenchConfig("zstd", "as main, zstd-compressed", compression="zstd"),
        BenchConfig("1k", "as main, with 1 KiB records", record_size=1024),
        BenchConfig("sasl_ssl", "as main, over SASL_SSL with SCRAM-SHA-512 (real Kafka only; issue 12)",
                    security="sasl_ssl"),
    )
}
