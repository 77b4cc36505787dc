"""What every bench client shares: the run spec, the payload, latency samples, the result line.

Each client runs in a fresh process started by ``bench/run.py`` with one JSON spec as its
only argument, and prints one ``BENCH-RESULT {json}`` line. Keeping payloads, key choice,
sampling and timing here means the clients differ only in the calls they make to their
library, which is what the benchmark compares.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["KEY_MASK", "Latency", "LoopLag", "Spec", "Window", "emit", "emit_skip", "key_pool", "load_spec", "payload"]

RESULT_PREFIX = "BENCH-RESULT "
# Keys cycle through a pool (a power of two, so `i & KEY_MASK` picks one): 16384 distinct
# keys spread over the partitions like fresh random ones, at a fixed memory cost.
KEY_POOL_SIZE = 16384
KEY_MASK = KEY_POOL_SIZE - 1
_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Spec:
    """One client run: where to send, what, and with which producer settings."""

    bootstrap: str
    topic: str
    partitions: int
    records: int  # measured records
    warmup: int  # records sent (and acknowledged) before the measured window opens
    record_size: int  # value bytes per record
    key_size: int  # 0: null keys
    acks: str  # "1" or "all"
    idempotence: bool
    linger_ms: int
    batch_size: int
    compression: str  # none, gzip, snappy, lz4, zstd
    latency_every: int  # every n-th measured record carries a send->ack latency probe
    seed: int
    chunk: int  # records per call for bulk APIs
    java: str = ""  # Java client only: the java executable, the Kafka jars' folder, a log4j2 config
    java_libs: str = ""
    java_log4j: str = ""
    #: Security settings under Java keys (kprod) and librdkafka keys (confluent-kafka); empty: PLAINTEXT.
    security_java: dict[str, str] = field(default_factory=dict)
    security_librdkafka: dict[str, str] = field(default_factory=dict)

    def java_config(self) -> dict[str, object]:
        """The run's settings under the Java producer's keys (kprod and confluent-kafka take them)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "acks": self.acks,
            "enable.idempotence": self.idempotence,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "compression.type": self.compression,
            **self.security_java,
        }

    @property
    def codec(self) -> str | None:
        """The compression name, or None for none (what kafka-python and aiokafka want)."""
        return None if self.compression == "none" else self.compression


def load_spec() -> Spec:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} SPEC_JSON (bench/run.py starts the clients)")
    return Spec(**json.loads(sys.argv[1]))


def payload(spec: Spec) -> bytes:
    """Random capital letters, like ProducerPerformance's payloads: compressible, not trivially."""
    rng = random.Random(spec.seed)
    return bytes(rng.choices(_LETTERS, k=spec.record_size))


def key_pool(spec: Spec) -> list[bytes | None]:
    """KEY_POOL_SIZE keys to index with `i & KEY_MASK`: random bytes, or all None for null keys."""
    if spec.key_size <= 0:
        return [None] * KEY_POOL_SIZE
    rng = random.Random(spec.seed + 1)
    return [rng.randbytes(spec.key_size) for _ in range(KEY_POOL_SIZE)]


class Latency:
    """Send->ack times of every `every`-th measured record, slot by slot.

    A client stamps ``sent[slot]`` right before the probe's send call and its completion
    callback stamps ``acked[slot]`` (or counts an error). Probes are 1 in `every` so the
    probing costs every client the same small amount.
    """

    def __init__(self, records: int, every: int) -> None:
        self.every = max(1, every)
        slots = (records + self.every - 1) // self.every
        self.sent = [0.0] * slots
        self.acked = [0.0] * slots
        self.errors = 0
        self.first_error = ""

    def ack(self, slot: int) -> None:
        self.acked[slot] = time.perf_counter()

    def fail(self, slot: int, error: object) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = repr(error)[:300]

    def summary(self) -> dict[str, Any]:
        samples = sorted(
            (acked - sent) * 1000.0 for sent, acked in zip(self.sent, self.acked) if acked > 0.0
        )
        return {
            "latency_samples": len(samples),
            "latency_unanswered": sum(1 for acked in self.acked if acked == 0.0),
            "p50_ms": _percentile(samples, 50.0),
            "p99_ms": _percentile(samples, 99.0),
            "probe_errors": self.errors,
            "first_error": self.first_error,
        }


def _percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


class LoopLag:
    """The asyncio clients' loop-lag probe: a coroutine that asks to wake every 1 ms and
    records how late each wake-up came, i.e. how long something else held the event loop
    (the client's own code between its yields, the library's calls, the GIL). The clients
    yield to the loop once per ``latency_every`` records, so their own share stays small.
    """

    def __init__(self, period_s: float = 0.001) -> None:
        self.period_s = period_s
        self.lags_ms: list[float] = []
        self._task: Any = None

    def start(self) -> None:
        import asyncio

        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        import asyncio

        clock = time.perf_counter
        lags = self.lags_ms
        while True:
            due = clock() + self.period_s
            await asyncio.sleep(self.period_s)
            lags.append(max(0.0, clock() - due) * 1000.0)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.lags_ms)
        return {
            "loop_ticks": len(ordered),
            "loop_lag_p50_ms": _percentile(ordered, 50.0),
            "loop_lag_p99_ms": _percentile(ordered, 99.0),
            "loop_lag_max_ms": ordered[-1] if ordered else None,
        }


class Window:
    """Wall and process CPU time (all threads, C libraries' included) of the measured part."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Window:
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.process_time() - self._cpu0


def emit(
    spec: Spec,
    *,
    client: str,
    version: str,
    window: Window,
    sent_total: int,
    latency: Latency | None,
    errors: int = 0,
    **extra: Any,
) -> None:
    """Print the one result line bench/run.py reads."""
    result: dict[str, Any] = {
        "client": client,
        "version": version,
        "records": spec.records,
        "elapsed_s": window.wall,
        "cpu_s": window.cpu,
        "sent_total": sent_total,
        "errors": errors,
    }
    if latency is not None:
        result.update(latency.summary())
        result["errors"] += latency.errors
    result.update(extra)
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def emit_skip(client: str, reason: str) -> None:
    """Report that this client cannot run here (missing library or API): not a failure."""
    print(RESULT_PREFIX + json.dumps({"client": client, "skipped": reason}), flush=True)


def spec_dict(spec: Spec) -> dict[str, Any]:
    return asdict(spec)
