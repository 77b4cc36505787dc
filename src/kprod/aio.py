"""``AsyncProducer``: kprod's producer for asyncio applications.

It is the synchronous :class:`kprod.Producer` (one I/O thread, the same
accumulator, sender and guarantees) with an asyncio face, and no second copy of
the producer:

* ``await send()`` calls the producer's own ``send()`` (compiled when
  ``kprod._speedups`` is built). The inner producer is told never to block
  (``Producer._never_block``): where a thread would wait for a topic's metadata
  or for ``buffer.memory``, it raises ``MetadataNeeded`` / ``MemoryNeeded``, and
  ``send()`` waits on the event loop (other coroutines run) until the I/O thread
  signals progress, up to ``max.block.ms``, then resumes or raises what the
  synchronous producer raises.
* Delivery results reach the loop once per batch, not per record: a batch whose
  records someone awaits (or gave a ``callback=`` for) gets a completion hook
  (``ProducerBatch.add_hook``) that makes one ``loop.call_soon_threadsafe`` call
  when the batch completes. Records nobody awaits cost the loop nothing.
* The future ``send()`` returns is light: an asyncio-compatible object that
  makes its ``asyncio.Future`` only when something awaits it or adds a callback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from functools import partial
from asyncio import AbstractEventLoop
from asyncio.events import _get_running_loop
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from contextvars import Context
from typing import Any

from kprod.client import Producer, _as_sequence, _moved_to
from kprod.config import ProducerConfig
from kprod.errors import BufferExhaustedError, EventLoopError, KafkaTimeoutError, ProducerClosedError
from kprod.producer.batch import ProducerBatch, RecordFuture
from kprod.producer.memory import MemoryNeeded
from kprod.producer.metadata import MetadataNeeded, PartitionInfo
from kprod.record import Header, ProducerRecord, RecordMetadata

__all__ = ["AsyncProducer", "AsyncRecordFuture"]

log = logging.getLogger("kprod.producer")
_thread_id = threading.get_ident

#: ``callback(metadata, exception)`` run on the loop; may return an awaitable (then run as a task).
AsyncCallback = Callable[[RecordMetadata | None, BaseException | None], Any]


class AsyncProducer:
    """A Kafka producer for asyncio: ``async with AsyncProducer(config) as producer:``.

    ``config`` takes the Java producer's keys, as :class:`kprod.Producer` does.
    The producer belongs to the event loop it is started on; its futures and
    callbacks run there.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        merged = dict(config or {})
        merged.update({key.replace("_", "."): value for key, value in overrides.items()})
        self.config = ProducerConfig(merged)  # bad settings raise ConfigError here, before start()
        self._settings = merged
        self._max_block_s: float = self.config["max.block.ms"] / 1000.0
        self._producer: Producer | None = None
        self._loop: AbstractEventLoop | None = None
        self._send: Callable[..., RecordFuture] = self._not_started
        self._thread = 0  # the loop's thread, and whether the loop runs: what _check_loop() compares
        self._loop_running: Callable[[], bool] = bool
        self._closed = False
        # Loop side of delivery: batch -> what to run on the loop when it settles.
        self._waiting: dict[ProducerBatch, list[Callable[[], Any]]] = {}
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._on_loop_end: AsyncGenerator[None, None] | None = None
        self._close_done: concurrent.futures.Future[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the I/O thread and bind the producer to the running loop (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._producer is not None:
            if loop is not self._loop:
                raise EventLoopError("This AsyncProducer was started on another event loop; create one producer per loop.")
            return
        if self._closed:
            raise ProducerClosedError("Cannot start: the AsyncProducer is closed. Create a new one.")
        producer = Producer(self._settings)
        # Its records' futures are AsyncRecordFutures that know this producer (and so its loop).
        producer._for_asyncio(type("AsyncRecordFuture", (AsyncRecordFuture,), {"__slots__": (), "_owner": self}))
        self._producer, self._loop, self._send = producer, loop, producer.send
        self._thread, self._loop_running = _thread_id(), loop.is_running
        # asyncio.run() / uvloop.run() finalize the loop's async generators before closing it:
        # this one closes the producer then, so records queued when the loop ends are delivered.
        self._on_loop_end = self._close_at_loop_end()
        await self._on_loop_end.__anext__()

    async def close(self, timeout: float | None = None) -> None:
        """Deliver or fail every pending record, then stop the I/O thread.

        Waits up to ``timeout`` seconds (None: as long as it takes); records still
        pending then fail with :class:`~kprod.errors.ProducerClosedError`. Returns once
        their futures are resolved and their callbacks (coroutines included) have run.
        The synchronous close (it joins the I/O thread) runs once, in a thread of its
        own, so the loop keeps running meanwhile; every close() call waits for it. Safe
        to call more than once, and from another loop once the producer's own loop has ended.
        """
        producer = self._producer
        if producer is None:
            self._closed = True
            return
        own_loop = asyncio.get_running_loop() is self._loop and self._loop_running()
        self._closed = True
        if self._close_done is None:
            done = self._close_done = concurrent.futures.Future()

            def close_producer() -> None:
                try:
                    producer.close(timeout)
                    done.set_result(None)
                except BaseException as exc:  # pragma: no cover - Producer.close() does not raise
                    done.set_exception(exc)

            threading.Thread(target=close_producer, name=f"kprod-aio-close | {producer.client_id}", daemon=True).start()
        await asyncio.wrap_future(self._close_done)  # concurrent close() calls all wait for the one close
        # The batches' hooks queued their loop calls before close() returned: let them run.
        await asyncio.sleep(0)
        # Closing from another loop (the producer's own has ended) is allowed: it delivers
        # or fails the records; their futures and callbacks belonged to that loop.
        while own_loop and self._callback_tasks:
            await asyncio.gather(*self._callback_tasks, return_exceptions=True)
        ending, self._on_loop_end = self._on_loop_end, None
        if own_loop and ending is not None:
            await ending.aclose()

    stop = close  # aiokafka's name

    async def _close_at_loop_end(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._on_loop_end is not None:  # not closed yet (close() drops it)
                self._on_loop_end = None
                log.warning("The event loop ended with %r open: closing it (delivering what is queued)", self)
                await self.close()

    async def __aenter__(self) -> AsyncProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "started" if self._producer is not None else "not started"
        return f"<AsyncProducer {self.config['client.id']} {state}>"

    # -- sending ---------------------------------------------------------------------

    async def send(
        self,
        topic: str | ProducerRecord,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: int | None = None,
        headers: Sequence[Header] | None = None,
        callback: AsyncCallback | None = None,
    ) -> AsyncRecordFuture:
        """Queue one record; returns (once queued) a future of its :class:`RecordMetadata`.

        Arguments as :meth:`kprod.Producer.send`. Returns at once when the topic's
        metadata is known and the buffer has room; otherwise waits on the loop up to
        ``max.block.ms``, then raises what ``Producer.send`` raises. ``callback(metadata,
        exception)`` runs on the loop; if it returns an awaitable, that runs as a task.
        """
        if _thread_id() != self._thread or not self._loop_running():  # not getpid() per call, as get_running_loop does
            self._wrong_loop()
        if type(topic) is not str and isinstance(topic, ProducerRecord) and callback is None \
                and value is not None and callable(value):
            callback, value = value, None  # send(record, callback)
        if callback is not None and not callable(callback):
            raise TypeError(f"send()'s callback must be callable (metadata, exception), not {type(callback).__name__}.")
        try:
            record = self._send(topic, value, key, partition, timestamp, headers, None)
        except (MetadataNeeded, MemoryNeeded) as need:
            record = await self._send_later(need, (topic, value, key, partition, timestamp, headers, None))
        if callback is not None:
            record._on_loop(callback)
        return record  # type: ignore[no-any-return]

    async def send_and_wait(
        self,
        topic: str | ProducerRecord,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: int | None = None,
        headers: Sequence[Header] | None = None,
    ) -> RecordMetadata:
        """``await (await send(...))``: queue the record and wait for its metadata (or raise its error)."""
        future = await self.send(topic, value, key, partition, timestamp, headers)
        return await future

    async def send_many(
        self,
        topic: str,
        values: Sequence[Any],
        keys: Sequence[Any] | None = None,
        *,
        partition: int | None = None,
        timestamps: Sequence[int | None] | None = None,
        headers: Sequence[Sequence[Header] | None] | None = None,
        callback: AsyncCallback | None = None,
    ) -> list[AsyncRecordFuture]:
        """Queue many records for one topic (see :meth:`kprod.Producer.send_many`); one future each.

        Bad input raises before anything is queued. When ``buffer.memory`` fills
        part-way, the records queued so far stay queued while the call waits on the
        loop for memory (up to ``max.block.ms`` in all), then goes on with the rest;
        if the wait fails, the rest get futures failed with that error, as
        ``Producer.send_many`` does.
        """
        self._check_loop()
        if callback is not None and not callable(callback):
            raise TypeError(f"send_many()'s callback must be callable (metadata, exception), not {type(callback).__name__}.")
        producer = self._producer
        assert producer is not None
        if type(topic) is str and producer._interceptors:  # send() per record, as Producer.send_many does
            values = _as_sequence("values", values, None)
            return [
                await self.send(topic, values[i], keys[i] if keys is not None else None, partition,
                                timestamps[i] if timestamps is not None else None,
                                headers[i] if headers is not None else None, callback)
                for i in range(len(values))
            ]
        if type(topic) is str:  # sequences, so a call that waits for memory can go on from where it stopped
            values = _as_sequence("values", values, None)
            keys = None if keys is None else _as_sequence("keys", keys, None)
            timestamps = None if timestamps is None else _as_sequence("timestamps", timestamps, None)
            headers = None if headers is None else _as_sequence("headers", headers, None)
        records: list[RecordFuture] = []
        start = 0
        deadline: float | None = None
        while True:
            try:
                records.extend(producer.send_many(
                    topic, values[start:] if start else values,
                    keys[start:] if start and keys is not None else keys, partition=partition,
                    timestamps=timestamps[start:] if start and timestamps is not None else timestamps,
                    headers=headers[start:] if start and headers is not None else headers,
                ))
                break
            except MetadataNeeded as need:
                deadline = self._deadline(deadline)
                await self._await_topic(need.topic, deadline)
            except MemoryNeeded as need:
                deadline = self._deadline(deadline)
                records.extend(need.queued)
                start += len(need.queued)
                try:
                    records.append(await self._reserve_and_resume(need, deadline))
                except (BufferExhaustedError, ProducerClosedError) as error:  # as Producer.send_many does
                    producer._accumulator._fail_unqueued(topic, records, len(values), None, error)
                    break
                start += 1
                if start == len(values):
                    break
        if callback is not None:
            for record in records:
                record._on_loop(callback)  # type: ignore[attr-defined]
        return records  # type: ignore[return-value]

    async def flush(self, timeout: float | None = None) -> None:
        """Send everything queued now and wait until each such record is done.

        Returns after their futures are resolved and their callbacks have run
        (coroutine callbacks included). Raises :class:`~kprod.errors.KafkaTimeoutError`
        if ``timeout`` seconds pass first; the records stay queued.
        """
        self._check_loop()
        producer = self._producer
        assert producer is not None and self._loop is not None
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        pending = producer._accumulator.begin_flush()
        producer._wakeup()
        try:
            while pending:
                batch = pending.pop()
                waiter = loop.create_future()
                self._watch(batch, partial(_resolve, waiter, True))
                if deadline is None:
                    await waiter
                elif not await _wait(loop, waiter, deadline - loop.time()):
                    raise KafkaTimeoutError(
                        f"flush() timed out after {timeout}s with records still pending; "
                        "they stay queued and will still be delivered or failed."
                    )
                pending.extend(_moved_to(batch))
        finally:
            producer._accumulator.end_flush()
        while self._callback_tasks:
            await asyncio.gather(*self._callback_tasks, return_exceptions=True)

    async def partitions_for(self, topic: str) -> list[PartitionInfo]:
        """The partitions of ``topic``, waiting on the loop for its metadata up to ``max.block.ms``."""
        self._check_loop()
        producer = self._producer
        assert producer is not None
        try:
            return producer.partitions_for(topic)
        except MetadataNeeded as need:
            await self._await_topic(need.topic, self._deadline(None))
            return producer.partitions_for(topic)

    # -- waiting on the loop ------------------------------------------------------------

    async def _send_later(self, need: BaseException, args: tuple[Any, ...]) -> RecordFuture:
        """send() once the topic's metadata arrived and memory was reserved (one max.block.ms in all)."""
        deadline = self._deadline(None)
        while True:
            if isinstance(need, MetadataNeeded):
                await self._await_topic(need.topic, deadline)
            else:
                assert isinstance(need, MemoryNeeded)
                return await self._reserve_and_resume(need, deadline)
            try:
                return self._send(*args)
            except (MetadataNeeded, MemoryNeeded) as again:
                need = again

    def _deadline(self, deadline: float | None) -> float:
        assert self._loop is not None
        return self._loop.time() + self._max_block_s if deadline is None else deadline

    async def _await_topic(self, topic: str, deadline: float) -> None:
        """Wait (on the loop) until ``topic`` has metadata; raise as ``Producer.send`` does at ``deadline``."""
        producer = self._producer
        loop = self._loop
        assert producer is not None and loop is not None
        metadata = producer._metadata
        while True:
            waiter = loop.create_future()
            metadata.wake_on_update(self._waker(waiter))  # before the check: no update can slip between
            if metadata.check_topic(topic):
                return
            remaining = deadline - loop.time()
            if producer._closed or remaining <= 0:
                raise producer._topic_timeout_error(topic)
            metadata.request_update()
            producer._wakeup()
            await _wait(loop, waiter, min(remaining, 0.5))  # ask again every 0.5 s, as Producer does

    async def _reserve_and_resume(self, need: MemoryNeeded, deadline: float) -> RecordFuture:
        """Wait (on the loop) for ``need.size`` bytes of ``buffer.memory``, then append the record."""
        producer = self._producer
        loop = self._loop
        assert producer is not None and loop is not None
        pool = producer._accumulator.pool
        pool.add_waiter()  # queued batches go out now, later senders queue behind this one
        producer._wakeup()
        try:
            while True:
                waiter = loop.create_future()
                if pool.reserve_or_wake(need.size, self._waker(waiter)):
                    break
                remaining = deadline - loop.time()
                if pool.closed or remaining <= 0:
                    raise need.timeout_error(self.config["max.block.ms"])
                await _wait(loop, waiter, remaining)
        finally:
            pool.remove_waiter()
        return need.resume()  # type: ignore[no-any-return]

    def _waker(self, waiter: asyncio.Future[Any]) -> Callable[[], None]:
        """A wake-up the I/O thread may call: resolves ``waiter`` on the loop."""
        loop = self._loop
        assert loop is not None

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(_resolve, waiter, True)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        return wake

    # -- delivery on the loop -------------------------------------------------------------

    def _watch(self, batch: ProducerBatch, settled: Callable[[], Any]) -> None:
        """Run ``settled()`` on the loop once ``batch`` settles (one hook per batch, however many watch it)."""
        entries = self._waiting.get(batch)
        if entries is None:
            if not batch.add_hook(self._batch_hook):
                self._loop.call_soon(settled)  # type: ignore[union-attr]
                return
            entries = self._waiting[batch] = []
        entries.append(settled)

    def _batch_hook(self, batch: ProducerBatch) -> None:
        """I/O thread, once per watched batch: hand it to the loop in one call."""
        try:
            self._loop.call_soon_threadsafe(self._batch_settled, batch)  # type: ignore[union-attr]
        except RuntimeError:  # the loop is closed: nobody can await these records any more
            pass

    def _batch_settled(self, batch: ProducerBatch) -> None:
        for settled in self._waiting.pop(batch, ()):
            settled()

    def _run_callback(self, callback: AsyncCallback, metadata: RecordMetadata | None, error: BaseException | None) -> None:
        try:
            result = callback(metadata, error)
            if result is not None and hasattr(result, "__await__"):
                task = asyncio.ensure_future(result, loop=self._loop)
                self._callback_tasks.add(task)
                task.add_done_callback(self._callback_done)
        except Exception:
            log.exception("A send callback raised; the producer goes on")

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("A send callback raised; the producer goes on", exc_info=task.exception())

    # -- checks ----------------------------------------------------------------------------

    def _check_loop(self) -> None:
        """In the loop's thread with the loop running: then it is the running loop (a thread runs one loop at a time)."""
        if _thread_id() != self._thread or not self._loop_running():
            self._wrong_loop()

    def _wrong_loop(self) -> None:
        if self._loop is not None and _get_running_loop() is self._loop:
            return
        if self._loop is None:
            if self._closed:
                raise ProducerClosedError("Cannot send: the AsyncProducer is closed. Create a new one.")
            raise EventLoopError(
                "The AsyncProducer is not started: use 'async with AsyncProducer(...) as producer' "
                "or 'await producer.start()' first."
            )
        raise EventLoopError(
            "This AsyncProducer was started on another event loop (or is used outside one): "
            "use it only from the loop that started it, and create one producer per event loop."
        )

    def _not_started(self, *args: Any) -> RecordFuture:
        self._wrong_loop()
        raise AssertionError("unreachable")


class AsyncRecordFuture(RecordFuture):
    """The delivery of one record: ``await future`` gives its :class:`RecordMetadata` or raises.

    It is the record's :class:`~kprod.producer.batch.RecordFuture` itself (the
    producer creates this subclass for an AsyncProducer, so ``send()`` costs no
    extra object), with the ``asyncio.Future`` interface: ``await``,
    ``asyncio.gather``/``wait``/``wait_for``, ``add_done_callback`` (run on the
    loop), ``result()``/``exception()`` (which do not wait: they raise
    ``asyncio.InvalidStateError`` while the record is pending). Its
    ``asyncio.Future`` is made only when one of those needs it.

    ``cancel()`` cancels this future, not the record: a record handed to the
    producer is still delivered (or failed), and its ``callback=`` still runs.
    """

    # No __slots__: the few records that are awaited or given a callback keep their
    # asyncio state in an instance dict made then; the others read these class defaults
    # (the compiled path fills only RecordFuture's fields).
    _future: asyncio.Future[RecordMetadata] | None = None
    _callback: AsyncCallback | None = None
    _watching = False

    # Makes asyncio.isfuture() true, so gather()/wait() use this object as it is.
    _asyncio_future_blocking = False
    # The AsyncProducer, on the per-producer subclass AsyncProducer.start() makes.
    _owner: AsyncProducer

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        future = self._future
        if future is None:
            if self.done():  # delivered already: no asyncio future needed
                error = self._batch.error
                if error is not None:
                    raise error
                return self._metadata()
            future = self._aio()
        return (yield from future.__await__())

    def _aio(self) -> asyncio.Future[RecordMetadata]:
        """The asyncio future, made (and watched) on first use."""
        future: asyncio.Future[RecordMetadata] | None = self._future
        if future is None:
            owner = self._owner
            future = self._future = owner._loop.create_future()  # type: ignore[union-attr]
            if not self._watching:
                if RecordFuture.done(self):
                    _settle_future(future, self)
                else:
                    self._watching = True
                    owner._watch(self._batch, self._settled)
        return future

    def _on_loop(self, callback: AsyncCallback) -> None:
        """Run ``callback(metadata, exception)`` on the loop once the record is done."""
        previous = self._callback
        if previous is not None:  # a second callback: run both, in order
            self._callback = lambda m, e: (previous(m, e), callback(m, e))[1]
        else:
            self._callback = callback
        if not self._watching:
            self._watching = True
            self._owner._watch(self._batch, self._settled)

    def _settled(self) -> None:
        """On the loop, once the record's batch settled: run the callback, resolve the future."""
        if not RecordFuture.done(self):  # its batch was split: follow the record to its new batch
            self._owner._watch(self._batch, self._settled)
            return
        self._watching = False
        callback = self._callback
        if callback is not None:
            self._callback = None
            error = self._batch.error
            self._owner._run_callback(callback, None if error is not None else self._metadata(), error)
        future = self._future
        if future is not None and not future.done():
            _settle_future(future, self)

    # -- the asyncio.Future interface --------------------------------------------------

    def get_loop(self) -> AbstractEventLoop:
        return self._owner._loop  # type: ignore[return-value]

    def done(self) -> bool:
        future = self._future
        return (future is not None and future.done()) or RecordFuture.done(self)

    def cancelled(self) -> bool:
        future = self._future
        return future is not None and future.cancelled()

    def cancel(self, msg: Any = None) -> bool:
        """Cancel this future (not the record, which is still delivered); False if done."""
        if self._future is None and RecordFuture.done(self):
            return False
        return self._aio().cancel(msg)

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """The record's metadata, or raise its error; does not wait (``timeout`` is ignored:
        ``await`` the future instead)."""
        future = self._future
        if future is not None and future.done():
            return future.result()
        if not RecordFuture.done(self):
            raise asyncio.InvalidStateError("Result is not set: the record is still pending; await the future.")
        error = self._batch.error
        if error is not None:
            raise error
        return self._metadata()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The record's error or None; does not wait (see :meth:`result`)."""
        future = self._future
        if future is not None and future.done():
            return future.exception()
        if not RecordFuture.done(self):
            raise asyncio.InvalidStateError("Exception is not set: the record is still pending; await the future.")
        return self._batch.error  # type: ignore[no-any-return]

    def add_done_callback(self, fn: Callable[[Any], Any], *, context: Context | None = None) -> None:
        """Call ``fn(future)`` on the loop once done (as ``asyncio.Future.add_done_callback``)."""
        if self._future is None and RecordFuture.done(self):  # done already: no asyncio future needed
            self._owner._loop.call_soon(fn, self, context=context)  # type: ignore[union-attr]
        else:
            self._aio().add_done_callback(_Relay(fn, self), context=context)

    def remove_done_callback(self, fn: Callable[[Any], Any]) -> int:
        future = self._future
        return 0 if future is None else future.remove_done_callback(fn)  # _Relay == fn

    def add_callback(self, fn: AsyncCallback) -> None:
        """Call ``fn(metadata, exception)`` on the loop once done (Java's Callback style)."""
        self._on_loop(fn)

    def __repr__(self) -> str:
        batch = self._batch
        state = "cancelled" if self.cancelled() else "done" if self.done() else "pending"
        return f"<AsyncRecordFuture {batch.topic}-{batch.partition} {state}>"


class _Relay:
    """A done callback of the inner asyncio future that calls ``fn`` with the AsyncRecordFuture."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Any], Any], future: AsyncRecordFuture) -> None:
        self.fn = fn
        self.future = future

    def __call__(self, _: object) -> None:
        self.fn(self.future)

    def __eq__(self, other: object) -> bool:
        return other is self or other == self.fn

    def __hash__(self) -> int:
        return hash(self.fn)


def _settle_future(future: asyncio.Future[RecordMetadata], record: RecordFuture) -> None:
    error = record._batch.error
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(record._metadata())


def _resolve(waiter: asyncio.Future[Any], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


async def _wait(loop: AbstractEventLoop, waiter: asyncio.Future[bool], timeout: float) -> bool:
    """Await ``waiter`` up to ``timeout`` s: True if it was woken, False on timeout."""
    timer = loop.call_later(max(0.0, timeout), _resolve, waiter, False)
    try:
        return await waiter
    finally:
        timer.cancel()
