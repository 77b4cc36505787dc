"""A batch of records for one partition, and the futures of its records.

The record future is deliberately light: a ``concurrent.futures.Future``
costs about 9 µs to build (a Condition and an RLock), which alone would cap
the producer near 115k records/s. Here each record gets a small slotted
object pointing at its batch; the batch owns the one ``threading.Event`` that
waiters block on, and the callbacks, run on the I/O thread in send order.

No future is ever in a reference cycle: a pending batch holds its futures (its
futures and callback lists) and each future reaches the pending batch through
a weak reference; when the batch completes, its futures take a strong
reference and the batch drops its lists. So a batch that never completes (a
producer dropped in a forked child) is freed with its futures by reference
counting, and the compiled futures need no cycle-collector tracking.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from kprod import _native
from kprod.errors import ProducerClosedError
from kprod.protocol.records import RecordBatchBuilder
from kprod.record import RecordMetadata

__all__ = ["ProducerBatch", "RecordFuture", "SendCallback"]

log = logging.getLogger("kprod.producer")

#: Java-style completion callback: ``callback(metadata, exception)``, exactly one None.
SendCallback = Callable[[RecordMetadata | None, BaseException | None], Any]

# Guards batch callback lists between add_done_callback (any thread) and completion (I/O thread).
_CALLBACK_LOCK = threading.Lock()

_PENDING, _SUCCEEDED, _FAILED, _SPLIT = range(4)


class ProducerBatch:
    """Records for one topic-partition, sent and completed as a unit."""

    __slots__ = (
        "topic", "partition", "builder", "futures", "callbacks", "created_ms", "attempts",
        "retry_at_ms", "state", "base_offset", "log_append_time", "error", "_event", "_settled",
        "memory", "full", "producer_id", "producer_epoch", "base_sequence", "in_flight",
        "drained_ms", "payload", "final_error", "order", "last_error", "_final_count", "_hooks",
        "__weakref__",
    )

    def __init__(self, topic: str, partition: int, builder: RecordBatchBuilder, created_ms: float, memory: int) -> None:
        self.topic = topic
        self.partition = partition
        self.builder = builder
        # The records' futures in order; emptied once the batch completes (see _finish).
        self.futures: list[RecordFuture] = []
        self._final_count = -1
        # (future, callback, java_style) in registration order; None once completed.
        self.callbacks: list[tuple[RecordFuture, Callable[..., Any], bool]] | None = []
        self.created_ms = created_ms
        self.attempts = 0
        self.retry_at_ms = 0.0
        self.state = _PENDING
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        # Made by the first thread that waits (most batches never have one: an Event costs
        # ~4 us, most of a new batch's cost); set once the batch settles.
        self._event: threading.Event | None = None
        self._settled = False
        # Batch-level completion hooks (see add_hook); None until one is added.
        self._hooks: list[Callable[[ProducerBatch], Any]] | None = None
        self.memory = memory
        self.full = False
        self.producer_id = -1
        self.producer_epoch = -1
        self.base_sequence = -1
        self.in_flight = False
        self.drained_ms = 0.0
        self.payload: bytes | None = None
        self.final_error: BaseException | None = None
        # (creation number, index of its first record in the batch it was split from):
        # the partition's send order, which retries and splits must keep.
        self.order = (0, 0)
        # The error of the last attempt that is being retried (the cause of a later expiry).
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"ProducerBatch({self.topic}-{self.partition}, {self.record_count} records)"

    @property
    def record_count(self) -> int:
        return self._final_count if self._final_count >= 0 else len(self.futures)

    @property
    def done(self) -> bool:
        return self.state != _PENDING

    @property
    def split(self) -> bool:
        """Its records moved to smaller batches (MESSAGE_TOO_LARGE); follow their futures."""
        return self.state == _SPLIT

    @property
    def has_sequence(self) -> bool:
        return self.base_sequence >= 0

    def add_callback(self, future: RecordFuture, callback: Callable[..., Any], java_style: bool) -> bool:
        """Register a callback; False if the batch is already complete (caller runs it)."""
        with _CALLBACK_LOCK:
            if self.callbacks is None:
                return False
            self.callbacks.append((future, callback, java_style))
            return True

    def add_hook(self, hook: Callable[[ProducerBatch], Any]) -> bool:
        """Call ``hook(batch)`` once, on the I/O thread, when the batch settles (completed,
        after its callbacks, or split); False if it already has (nothing registered).

        One call per batch however many of its records are waited on: the asyncio
        producer hands a batch's results to its event loop this way.
        """
        with _CALLBACK_LOCK:
            if self._settled:
                return False
            if self._hooks is None:
                self._hooks = [hook]
            else:
                self._hooks.append(hook)
            return True

    def succeed(self, base_offset: int, log_append_time: int) -> None:
        """Mark every record written and run the callbacks (I/O thread)."""
        self.base_offset = base_offset
        self.log_append_time = log_append_time
        self._finish(_SUCCEEDED)

    def fail(self, error: BaseException) -> None:
        """Fail every record of the batch with ``error`` and run the callbacks."""
        self.error = error
        self._finish(_FAILED)

    def mark_split(self) -> None:
        """The batch's records moved to smaller batches; wake waiters so they follow."""
        self.state = _SPLIT
        self._settle()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the batch completed (its callbacks have run) or split; False on timeout."""
        if self._settled:
            return True
        with _CALLBACK_LOCK:
            if self._settled:
                return True
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        return event.wait(timeout)

    def _settle(self) -> None:
        with _CALLBACK_LOCK:
            self._settled = True
            event = self._event
            hooks, self._hooks = self._hooks, None
        if event is not None:
            event.set()
        if hooks is not None:
            for hook in hooks:
                try:
                    hook(self)
                except Exception:
                    log.exception("A completion hook for %s-%d raised; the producer goes on", self.topic, self.partition)

    def _finish(self, state: int) -> None:
        # Callbacks run before waiters wake (as in Java), so flush() and result()
        # return only after the record's callback has run. A callback that waits
        # on its own future does not block: the state is already final.
        _hold_batch(self.futures, self)  # the futures keep the completed batch (see the module doc)
        with _CALLBACK_LOCK:
            self.state = state
            callbacks, self.callbacks = self.callbacks, None
        if callbacks:
            error = self.error
            for future, callback, java_style in callbacks:
                try:
                    if java_style:
                        if error is None:
                            callback(future._metadata(), None)
                        else:
                            callback(None, error)
                    else:
                        callback(future)
                except Exception:
                    log.exception("A send callback for %s-%d raised; the producer goes on", self.topic, self.partition)
        self._settle()
        # The futures now hold the batch: drop the list, so that nothing is a cycle.
        self._final_count = len(self.futures)
        self.futures = []


class _FutureCore:
    """A record future's fields (pure Python; ``kprod._speedups.FutureCore`` is the
    compiled twin, which the compiled append path can create without a Python call).

    ``_batch`` is the batch, through a weak reference while it is pending (None once a
    batch that never completed is gone) and a strong one once it completed
    (:func:`_hold_batch`); assigning it stores a weak reference."""

    __slots__ = ("_ref", "_held", "_index", "_timestamp", "_key_size", "_value_size")

    def __init__(self, batch: ProducerBatch, index: int, timestamp: int, key_size: int, value_size: int) -> None:
        self._ref = weakref.ref(batch)
        self._held: ProducerBatch | None = None
        self._index = index
        self._timestamp = timestamp
        self._key_size = key_size
        self._value_size = value_size

    @property
    def _batch(self) -> ProducerBatch | None:
        held = self._held
        return held if held is not None else self._ref()

    @_batch.setter
    def _batch(self, batch: ProducerBatch) -> None:
        self._ref = weakref.ref(batch)
        self._held = None


def _hold_batch_py(futures: list[Any], batch: ProducerBatch) -> None:
    """Each future holds its completed ``batch`` strongly (pure Python twin)."""
    for future in futures:
        future._held = batch


_FutureBase: type[_FutureCore] = _native.speedups.FutureCore if _native.speedups is not None else _FutureCore
_hold_batch: Callable[[list[Any], ProducerBatch], None] = (
    _native.speedups.hold_batch if _native.speedups is not None else _hold_batch_py
)


def _gone() -> ProducerClosedError:
    return ProducerClosedError(
        "This record's batch no longer exists: its producer was dropped before the record was acknowledged "
        "(for example in a process forked from the producer's). The record's outcome is unknown here."
    )


class RecordFuture(_FutureBase):  # type: ignore[valid-type,misc]
    """The result of one ``send()``: a ``concurrent.futures.Future``-compatible object.

    ``result(timeout)`` returns :class:`RecordMetadata` or raises the send's
    error; ``add_done_callback(fn)`` calls ``fn(future)`` once it is done.
    ``RecordFuture(batch, index, timestamp, key_size, value_size)``.
    """

    __slots__ = ()

    def _live(self) -> ProducerBatch:
        batch = self._batch
        if batch is None:
            raise _gone()
        return batch  # type: ignore[no-any-return]

    def _metadata(self) -> RecordMetadata:
        batch = self._batch  # (inlined _live(): this runs for every Java-style callback)
        if batch is None:
            raise _gone()
        base = batch.base_offset
        return RecordMetadata(
            batch.topic,
            batch.partition,
            base + self._index if base >= 0 else -1,
            batch.log_append_time if batch.log_append_time >= 0 else self._timestamp,
            self._key_size,
            self._value_size,
        )

    def _wait(self, timeout: float | None) -> ProducerBatch:
        # A split batch hands its futures to new batches *before* it wakes
        # waiters, so re-reading ``self._batch`` after a wake-up follows them.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self._live()
            if batch.state == _SUCCEEDED or batch.state == _FAILED:
                return batch
            if deadline is None:
                batch.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not batch.wait(remaining):
                if self._batch is batch and batch.state == _PENDING:
                    raise TimeoutError(
                        f"The record for {batch.topic}-{batch.partition} was not acknowledged within {timeout}s; "
                        "it is still pending (wait longer, or see delivery.timeout.ms)."
                    )

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """Wait for the record's metadata, or raise the error that failed it."""
        batch = self._wait(timeout)
        if batch.state == _FAILED:
            assert batch.error is not None
            raise batch.error
        return self._metadata()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for completion; the error that failed the record, or None."""
        batch = self._wait(timeout)
        return batch.error if batch.state == _FAILED else None

    def done(self) -> bool:
        state = self._live().state
        return state == _SUCCEEDED or state == _FAILED

    def running(self) -> bool:
        return not self.done()

    def cancelled(self) -> bool:
        return False

    def cancel(self) -> bool:
        """A record handed to the producer cannot be cancelled (as in Java)."""
        return False

    def add_done_callback(self, fn: Callable[[RecordFuture], Any]) -> None:
        """Call ``fn(future)`` when done: on the I/O thread, or now if already done."""
        if not self._live().add_callback(self, fn, False):
            fn(self)

    def add_callback(self, fn: SendCallback) -> None:
        """Call ``fn(metadata, exception)`` when done (Java's Callback style)."""
        batch = self._live()
        if not batch.add_callback(self, fn, True):
            error = batch.error if batch.state == _FAILED else None
            fn(None if error else self._metadata(), error)

    def __repr__(self) -> str:
        batch = self._batch
        if batch is None:
            return "<RecordFuture gone>"
        state = {_PENDING: "pending", _SUCCEEDED: "done", _FAILED: "failed", _SPLIT: "pending"}[batch.state]
        return f"<RecordFuture {batch.topic}-{batch.partition} {state}>"
