"""Latency and throughput accounting for ``kprod perf``, in Kafka's perf-tool format.

Every record gets the *same* callback: a function object per record, held
while the record waits in a 32 MiB buffer, costs more in garbage collection
than the send itself. The callback takes the record's send time from its
metadata (the CreateTime ``send()`` stamped), so latency is acknowledgement
time minus send time in whole milliseconds, as Java's tool measures it.

Latencies go into a preallocated histogram with one bucket per millisecond:
O(1) per record, no sampling, and exact percentiles over every record (Java
samples at most 500,000). Window and total counters live in closure cells
written only by the producer's I/O thread, which also prints the 5-second
window lines, as Java's tool does from its callback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PerfStats", "PerfSummary", "now_ms", "percentiles"]

#: Buckets of the latency histogram (1 ms each): beyond delivery.timeout.ms's 120 s default.
HISTOGRAM_MS = 1 << 17
REPORT_INTERVAL_MS = 5000
PERCENTILES = (0.5, 0.95, 0.99, 0.999)
_MB = 1024.0 * 1024.0


def now_ms() -> int:
    """Wall-clock milliseconds: the clock record timestamps use."""
    return time.time_ns() // 1_000_000


def window_line(count: int, nbytes: int, elapsed_ms: int, total_latency: int, max_latency: int) -> str:
    """Kafka's periodic line: ``N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency.``"""
    elapsed = max(elapsed_ms, 1)
    return (
        f"{count} records sent, {1000.0 * count / elapsed:.1f} records/sec"
        f" ({1000.0 * nbytes / elapsed / _MB:.2f} MB/sec), {total_latency / count if count else 0.0:.1f} ms avg latency,"
        f" {float(max_latency):.1f} ms max latency."
    )


def percentiles(histogram: list[int], overflow: list[int], count: int, ranks: tuple[float, ...]) -> list[int]:
    """The latency at ``int(p * count)`` in sorted order for each p (Java's rule), 0 when empty."""
    if count <= 0:
        return [0] * len(ranks)
    targets = [min(int(p * count), count - 1) for p in ranks]
    result: list[int] = []
    seen = 0
    for latency, n in enumerate(histogram):
        if n:
            seen += n
            while len(result) < len(targets) and targets[len(result)] < seen:
                result.append(latency)
            if len(result) == len(targets):
                return result
    rest = sorted(overflow)
    while len(result) < len(targets):
        result.append(rest[targets[len(result)] - seen])
    return result


@dataclass(frozen=True, slots=True)
class PerfSummary:
    """The totals of a run; ``line()`` is Kafka's final line."""

    records_sent: int
    records_failed: int
    bytes: int
    elapsed_ms: int
    avg_latency_ms: float
    max_latency_ms: int
    p50_ms: int
    p95_ms: int
    p99_ms: int
    p999_ms: int

    @property
    def records_per_sec(self) -> float:
        return 1000.0 * self.records_sent / max(self.elapsed_ms, 1)

    @property
    def mb_per_sec(self) -> float:
        return 1000.0 * self.bytes / max(self.elapsed_ms, 1) / _MB

    def line(self) -> str:
        return (
            f"{self.records_sent} records sent, {self.records_per_sec:.1f} records/sec ({self.mb_per_sec:.2f} MB/sec),"
            f" {self.avg_latency_ms:.2f} ms avg latency, {float(self.max_latency_ms):.2f} ms max latency,"
            f" {self.p50_ms} ms 50th, {self.p95_ms} ms 95th, {self.p99_ms} ms 99th, {self.p999_ms} ms 99.9th."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_sent": self.records_sent,
            "records_failed": self.records_failed,
            "bytes": self.bytes,
            "elapsed_ms": self.elapsed_ms,
            "records_per_sec": round(self.records_per_sec, 1),
            "mb_per_sec": round(self.mb_per_sec, 3),
            "avg_latency_ms": round(self.avg_latency_ms, 3),
            "max_latency_ms": self.max_latency_ms,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
        }


class PerfStats:
    """Counts acknowledged and failed records through :attr:`callback`.

    ``on_window(line)`` gets each 5-second line (on the I/O thread);
    ``on_error(message)`` gets each distinct error message the first time
    it is seen. Read :meth:`summary` after the producer is closed, when
    every callback has run.
    """

    def __init__(
        self,
        start_ms: int,
        *,
        on_window: Callable[[str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        interval_ms: int = REPORT_INTERVAL_MS,
    ) -> None:
        self.start_ms = start_ms
        self.histogram = [0] * HISTOGRAM_MS
        self.overflow: list[int] = []  # latencies beyond the histogram
        #: Each distinct error message and how many records failed with it, in order of appearance.
        self.errors: dict[str, int] = {}
        self._on_window = on_window
        self._on_error = on_error
        self._last_error: tuple[BaseException | None, str] = (None, "")
        self._error_lock = threading.Lock()  # failures come from the I/O thread and from send()
        self._send_failures = 0
        self.callback, self._totals = self._build(start_ms, interval_ms)

    def _build(
        self, start_ms: int, interval_ms: int
    ) -> tuple[Callable[[Any, BaseException | None], None], Callable[[], tuple[int, int, int, int, int]]]:
        histogram = self.histogram
        size = len(histogram)
        overflow = self.overflow
        on_window = self._on_window
        failure = self._failure
        time_ns = time.time_ns
        count = nbytes = total_latency = max_latency = failed = 0
        w_count = w_bytes = w_latency = w_max = 0
        w_start = start_ms
        next_report = start_ms + interval_ms

        def roll(now: int) -> None:
            nonlocal count, nbytes, total_latency, max_latency, w_count, w_bytes, w_latency, w_max, w_start, next_report
            if on_window is not None and w_count:
                on_window(window_line(w_count, w_bytes, now - w_start, w_latency, w_max))
            count += w_count
            nbytes += w_bytes
            total_latency += w_latency
            if w_max > max_latency:
                max_latency = w_max
            w_count = w_bytes = w_latency = w_max = 0
            w_start = now
            next_report = now + interval_ms

        def on_completion(metadata: Any, exception: BaseException | None) -> None:
            # The per-record hot path: a clock read and a few integer operations. The
            # metadata is a RecordMetadata tuple: [3] is its timestamp, [5] its value size
            # (indexing a tuple is cheaper than its named properties).
            nonlocal w_count, w_bytes, w_latency, w_max, failed
            if exception is None:
                now = time_ns() // 1_000_000
                latency = now - metadata[3]
                if 0 <= latency < size:
                    histogram[latency] += 1
                elif latency < 0:  # the wall clock stepped back
                    latency = 0
                    histogram[0] += 1
                else:
                    overflow.append(latency)
                w_count += 1
                w_bytes += metadata[5]
                w_latency += latency
                if latency > w_max:
                    w_max = latency
                if now >= next_report:
                    roll(now)
            else:
                failed += 1
                failure(exception)

        def totals() -> tuple[int, int, int, int, int]:
            return (
                count + w_count,
                nbytes + w_bytes,
                total_latency + w_latency,
                max(max_latency, w_max),
                failed,
            )

        return on_completion, totals

    def _failure(self, exception: BaseException) -> None:
        with self._error_lock:
            last, message = self._last_error
            if exception is not last:  # a failed batch hands the same error to each of its records
                message = f"{type(exception).__name__}: {exception}"
                self._last_error = (exception, message)
            seen = self.errors.get(message, 0)
            self.errors[message] = seen + 1
        if not seen and self._on_error is not None:
            self._on_error(message)

    def acknowledged(self) -> int:
        """Records acknowledged so far (read from any thread; approximate while running)."""
        return self._totals()[0]

    def failed(self) -> int:
        """Records failed so far (in callbacks, or raised by ``send()``)."""
        return self._totals()[4] + self._send_failures

    def record_failure(self, exception: BaseException) -> None:
        """Count a record whose ``send()`` raised (the main thread; callbacks do not run for it)."""
        self._send_failures += 1
        self._failure(exception)

    def summary(self, end_ms: int) -> PerfSummary:
        count, nbytes, total_latency, max_latency, failed = self._totals()
        p50, p95, p99, p999 = percentiles(self.histogram, self.overflow, count, PERCENTILES)
        return PerfSummary(
            records_sent=count,
            records_failed=failed + self._send_failures,
            bytes=nbytes,
            elapsed_ms=end_ms - self.start_ms,
            avg_latency_ms=total_latency / count if count else 0.0,
            max_latency_ms=max_latency,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            p999_ms=p999,
        )
