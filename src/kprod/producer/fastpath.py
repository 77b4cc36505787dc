"""The accumulator's per-record append into an open batch, and its bulk form.

``append_record`` and ``append_many`` run under the accumulator lock for every
record ``send()`` / ``send_many()`` queues: size check, encoding into the
batch's builder, the record's future, its callback. They are compiled in
``kprod._speedups`` when it is built; the functions here are the pure-Python
reference (used otherwise, and by the parity tests), with the same arguments
and results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kprod import _native
from kprod.producer.batch import ProducerBatch, RecordFuture

__all__ = ["HEADER_OVERHEAD", "RECORD_OVERHEAD", "SendCore", "REASON_DONE", "REASON_NEED_BATCH", "REASON_STICKY", "REASON_FULL",
           "append_many", "append_record", "record_estimate", "scan_bytes"]

#: Upper bound of a record's framing bytes beyond key, value and headers
#: (length, attributes, timestamp delta, offset delta, key/value lengths, header count).
RECORD_OVERHEAD = 32
#: A header's estimate beyond its key (counted 3 bytes a character, UTF-8's bound) and value.
HEADER_OVERHEAD = 10

# append_many's stop reasons (the low bits) and flag.
REASON_DONE = 0  # every record appended
REASON_NEED_BATCH = 1  # the next record's partition has no open batch with room
REASON_STICKY = 2  # the sticky partition got its budget: ask the partitioner again
REASON_FULL = 4  # flag: some batch became full (wake the sender)

Headers = Sequence[tuple[str, bytes | None]] | None


def record_estimate(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """What a record counts against ``batch.size`` before it is encoded (an upper bound)."""
    estimate = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    if headers:
        for header_key, header_value in headers:
            estimate += len(header_key) * 3 + (len(header_value) if header_value else 0) + HEADER_OVERHEAD
    return estimate


def _scan_bytes_py(items: Sequence[Any]) -> tuple[int, int]:
    """(index of the first item that is neither bytes nor None, or -1; the largest length
    up to there): whether send_many() can skip the serializer, and its size check."""
    longest = 0
    for index, item in enumerate(items):
        if type(item) is bytes:
            if len(item) > longest:
                longest = len(item)
        elif item is not None:
            return index, longest
    return -1, longest


def _append_record_py(
    future_type: type[RecordFuture], batch: ProducerBatch, timestamp: int, key: bytes | None,
    value: bytes | None, headers: Headers, callback: Callable[..., Any] | None, limit: int,
) -> RecordFuture | None:
    """Encode one record into ``batch`` unless its estimate takes the batch past ``limit``
    (then None, nothing changed). Marks the batch full once it reaches ``limit``.

    All or nothing: whatever can fail (a completed batch, the future) comes before the
    record is encoded; after that only list appends and the flag, which do not fail."""
    builder = batch.builder
    estimate = (RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0) if not headers
                else record_estimate(key, value, headers))
    if builder._size + estimate > limit:
        return None
    futures = batch.futures
    callbacks = None
    if callback is not None:
        callbacks = batch.callbacks
        if callbacks is None:
            raise RuntimeError("the batch is already complete: no callback can be added")
    future = future_type(batch, len(futures), timestamp, -1 if key is None else len(key),
                         -1 if value is None else len(value))
    builder.append(timestamp, key, value, headers)  # changes nothing if it raises
    futures.append(future)
    if callbacks is not None and callback is not None:
        callbacks.append((future, callback, True))
    if builder._size >= limit:
        batch.full = True
    return future


def _append_many_py(
    future_type: type[RecordFuture], batches: list[ProducerBatch | None], values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None, timestamps: Sequence[int | None] | None, headers: Sequence[Headers] | None,
    partitions: int | Sequence[int], callback: Callable[..., Any] | None, start: int, now: int,
    sticky_partition: int, sticky_budget: int, limit: int, out: list[RecordFuture],
) -> tuple[int, int, int]:
    """Append records ``start..`` in order to their partition's open batch; see ``kprod._speedups``.

    ``partitions`` is one int for all records or one per record (-1: the sticky
    partition). Returns (next index, estimated bytes given to the sticky
    partition, reason): stops at the end, at the first record whose partition
    has no open batch with room (``batches[p]`` None or refused), or once the
    sticky partition got ``sticky_budget`` bytes. A batch that fills up gets no
    more records in this call; ``REASON_FULL`` is then or-ed into the reason.
    """
    batches = list(batches)
    fixed = partitions if type(partitions) is int else None
    used = 0
    full = 0
    i = start
    n = len(values)
    while i < n:
        p = fixed if fixed is not None else partitions[i]  # type: ignore[index]
        is_sticky = p < 0
        if is_sticky:
            p = sticky_partition
        if not 0 <= p < len(batches):
            raise ValueError(f"append_many(): partition {p} of record {i} is out of range")
        batch = batches[p]
        if batch is None:
            return i, used, REASON_NEED_BATCH | full
        key = keys[i] if keys is not None else None
        value = values[i]
        record_headers = headers[i] if headers is not None else None
        timestamp = timestamps[i] if timestamps is not None else None
        if timestamp is None:
            timestamp = now
        future = _append_record_py(future_type, batch, timestamp, key, value, record_headers, callback, limit)
        if future is None:
            return i, used, REASON_NEED_BATCH | full
        out.append(future)
        if batch.full:
            full = REASON_FULL
            batches[p] = None
        i += 1
        if is_sticky:
            used += record_estimate(key, value, record_headers)
            if used >= sticky_budget:
                return i, used, REASON_STICKY | full
    return i, used, REASON_DONE | full


_speedups = _native.speedups

if _speedups is not None:
    _speedups.configure(record_overhead=RECORD_OVERHEAD, header_overhead=HEADER_OVERHEAD)
    append_record: Callable[..., RecordFuture | None] = _speedups.append_record
    append_many: Callable[..., tuple[int, int, int]] = _speedups.append_many
    scan_bytes: Callable[[Sequence[Any]], tuple[int, int]] = _speedups.scan_bytes
else:
    append_record = _append_record_py
    append_many = _append_many_py
    scan_bytes = _scan_bytes_py



class _SendCorePy:
    """The base class of ``kprod.Producer``: its ``send()``, first step.

    The common case (a topic, no headers) goes to the producer's compiled
    ``SendPath`` (``_fast_send``); anything else, or a record that path does not
    take, to ``_send_python``, the reference. ``kprod._speedups.SendCore`` is the
    compiled twin, which spares ``send()`` its Python frame.
    """

    _fast_send: Callable[..., RecordFuture | None] | None = None
    #: ``fallback(self, topic, value, key, partition, timestamp, headers, callback)``: ``send()``
    #: for every record ``_fast_send`` does not take (``Producer.__init__`` sets ``_send_python``).
    _send_fallback: Callable[..., RecordFuture] | None = None

    def send(
        self,
        topic: Any,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: int | None = None,
        headers: Any = None,
        callback: Callable[..., Any] | None = None,
    ) -> RecordFuture:
        """Queue one record; returns a future of its RecordMetadata.

        ``send(ProducerRecord(...), callback=cb)`` or ``send(topic, value, key=...)``.
        ``callback(metadata, exception)`` runs on the I/O thread once the record
        is acknowledged or failed; keep it quick. Raises at once for errors
        before sending: serialization, unknown topic or full buffer after
        ``max.block.ms``, a record too large, a closed producer.
        """
        fast = self._fast_send
        if fast is not None and headers is None:
            future = fast(topic, value, key, partition, timestamp, None, callback)
            if future is not None:
                return future
        fallback = self._send_fallback
        if fallback is None:
            raise TypeError("SendCore: set _send_fallback (a function taking self and send()'s 7 arguments) "
                            "before calling send()")
        return fallback(self, topic, value, key, partition, timestamp, headers, callback)


if TYPE_CHECKING:
    SendCore = _SendCorePy
else:
    SendCore = getattr(_speedups, "SendCore", _SendCorePy)
