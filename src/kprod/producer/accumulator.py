"""The record accumulator: per-partition queues of batches waiting to be sent.

Each partition's queue is the ``queue`` of its :class:`PartitionState` (the
partition's one state object, see :mod:`kprod.producer.partition_state`);
``_partitions`` maps a topic to the list of its partitions' states.
Application threads append records under one short lock (encode into the
open batch of the partition; open a new batch when it is full). The I/O
thread asks which leaders have sendable batches (:meth:`ready`), takes them
(:meth:`drain`), puts retries back in order (:meth:`reenqueue`) and expires
batches past ``delivery.timeout.ms``. Compression and record futures'
completion happen outside the lock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from functools import partial

from kprod import _native
from kprod.errors import BufferExhaustedError, KafkaTimeoutError, ProducerClosedError
from kprod.producer.batch import ProducerBatch, RecordFuture, SendCallback
from kprod.producer.fastpath import RECORD_OVERHEAD, REASON_FULL, REASON_NEED_BATCH, record_estimate
from kprod.producer.fastpath import append_many as _append_many
from kprod.producer.fastpath import append_record as _append_record
from kprod.producer.idempotence import IdempotenceState
from kprod.producer.memory import MemoryNeeded, MemoryPool
from kprod.producer.metadata import ClusterMetadata
from kprod.producer.partition_state import PartitionState, RetryBackoff
from kprod.producer.recordcheck import MAX_PARTITIONS, MAX_TIMESTAMP
from kprod.producer.sticky import StickyPartitioner
from kprod.protocol.records import BATCH_HEADER_SIZE, RecordBatchBuilder

__all__ = ["RecordAccumulator", "ReadyCheck"]

class ReadyCheck:
    """What :meth:`RecordAccumulator.ready` found."""

    __slots__ = ("nodes", "next_check_ms", "unknown_leader_topics")

    def __init__(self) -> None:
        self.nodes: set[int] = set()
        self.next_check_ms = float("inf")
        self.unknown_leader_topics: set[str] = set()


class RecordAccumulator:
    """Batches per topic-partition, shared by ``send()`` callers and the I/O thread."""

    def __init__(
        self,
        *,
        batch_size: int,
        linger_ms: int,
        codec: int,
        compression_level: int | None,
        pool: MemoryPool,
        sticky: StickyPartitioner,
        clock_ms: Callable[[], float],
        delivery_timeout_ms: int,
        retry_backoff_ms: int,
        retry_backoff_max_ms: int,
        wakeup: Callable[[], None],
        future_type: type[RecordFuture] = RecordFuture,
    ) -> None:
        self.batch_size = batch_size
        # The record futures' class: RecordFuture, or the asyncio producer's subclass of it.
        self.future_type = future_type
        self.linger_ms = linger_ms
        self.codec = codec
        self.compression_level = compression_level
        self.pool = pool
        self.sticky = sticky
        self.clock_ms = clock_ms
        self.delivery_timeout_ms = delivery_timeout_ms
        self.backoff = RetryBackoff(retry_backoff_ms, retry_backoff_max_ms)
        self.wakeup = wakeup
        self.lock = threading.Lock()
        # topic -> its partitions' states, by partition; a list only grows (replaced, so a
        # state once created stays the state of its partition).
        self._partitions: dict[str, list[PartitionState]] = {}
        self.incomplete: set[ProducerBatch] = set()
        self._flushes = 0
        self.closed = False
        self._drain_start: dict[int, int] = {}
        self._created = itertools.count(1)
        # No queued batch can pass delivery.timeout.ms before this (ms): expired() skips the scan.
        self._next_expiry_ms = 0.0

    # -- application threads --------------------------------------------------

    def append(
        self,
        topic: str,
        partition: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        callback: SendCallback | None,
        num_partitions: int,
        available: tuple[int, ...] | None,
        max_block_ms: int | None,
    ) -> RecordFuture:
        """Add one serialized record; ``partition`` -1 picks the sticky partition.

        With ``max_block_ms`` None it never waits for ``buffer.memory``: it raises
        :class:`~kprod.producer.memory.MemoryNeeded` instead (the asyncio producer).
        """
        sticky = partition < 0
        with self.lock:
            if self.closed:
                raise ProducerClosedError("Cannot send: the producer is closed.")
            if sticky:
                partition = self.sticky.partition(topic, num_partitions, available)
            # Fast path: room in the partition's open batch (one call, compiled when built).
            states = self._partitions.get(topic)
            if states is not None and partition < len(states):
                queue = states[partition].queue
                if queue:
                    batch = queue[-1]
                    if not batch.full:
                        future = _append_record(self.future_type, batch, timestamp, key, value, headers, callback, self.batch_size)
                        if future is not None:
                            if batch.full:
                                self.wakeup()
                            if sticky:
                                estimate = (RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
                                            if not headers else record_estimate(key, value, headers))
                                self.sticky.on_append(topic, partition, estimate, num_partitions, available)
                            return future
                        batch.full = True
                        self.wakeup()
            estimate = record_estimate(key, value, headers)
            memory = max(self.batch_size, estimate + BATCH_HEADER_SIZE)
            if self.pool.try_reserve(memory):
                previous = self._previous_to_compress(topic, partition)
                try:
                    future = self._append_new(topic, partition, timestamp, key, value, headers, callback, memory,
                                              num_partitions)
                except BaseException:  # nothing was queued: give the memory back
                    self.pool.release(memory)
                    raise
                if sticky:
                    self.sticky.on_append(topic, partition, estimate, num_partitions, available)
                self.wakeup()
            else:
                future = None
        if future is not None:
            if previous is not None:
                previous.builder.close()
            return future
        # The buffer is full: wait for memory outside the lock (the I/O thread frees it).
        self.wakeup()
        if max_block_ms is None:  # the caller must not block (asyncio): it waits and resumes
            raise MemoryNeeded(
                memory,
                partial(self._append_reserved, memory, topic, partition, timestamp, key, value, headers, callback,
                        num_partitions, available, sticky, estimate),
                partial(self._memory_error, memory, topic, partition),
            )
        if not self.pool.reserve(memory, max_block_ms / 1000.0):
            raise self._memory_error(memory, topic, partition, max_block_ms)
        return self._append_reserved(memory, topic, partition, timestamp, key, value, headers, callback,
                                     num_partitions, available, sticky, estimate)

    def _memory_error(self, memory: int, topic: str, partition: int, max_block_ms: int) -> KafkaTimeoutError | ProducerClosedError:
        """Why ``memory`` bytes could not be reserved within ``max_block_ms``."""
        if self.closed:
            return ProducerClosedError("Cannot send: the producer was closed while waiting for buffer memory.")
        return BufferExhaustedError(
            f"Failed to allocate {memory} bytes within max.block.ms ({max_block_ms} ms) for a record "
            f"to {topic}-{partition}: buffer.memory ({self.pool.total} bytes) is full. Records are produced "
            "faster than the cluster takes them; raise buffer.memory or max.block.ms, or slow down."
        )

    def _append_reserved(
        self, memory: int, topic: str, partition: int, timestamp: int, key: bytes | None, value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None, callback: SendCallback | None, num_partitions: int,
        available: tuple[int, ...] | None, sticky: bool, estimate: int,
    ) -> RecordFuture:
        """:meth:`append` once ``memory`` bytes are reserved for the record (given back if unused)."""
        with self.lock:
            if self.closed:
                self.pool.release(memory)
                raise ProducerClosedError("Cannot send: the producer is closed.")
            previous = None
            future = self._try_append(topic, partition, timestamp, key, value, headers, callback)
            if future is not None:
                self.pool.release(memory)
            else:
                previous = self._previous_to_compress(topic, partition)
                try:
                    future = self._append_new(topic, partition, timestamp, key, value, headers, callback, memory,
                                              num_partitions)
                except BaseException:
                    self.pool.release(memory)
                    raise
            if sticky:
                self.sticky.on_append(topic, partition, estimate, num_partitions, available)
        self.wakeup()
        if previous is not None:
            previous.builder.close()
        return future

    def append_many(
        self,
        topic: str,
        partitions: int | list[int],
        now: int,
        timestamps: Sequence[int | None] | None,
        keys: Sequence[bytes | None] | None,
        values: Sequence[bytes | None],
        headers: Sequence[Sequence[tuple[str, bytes | None]] | None] | None,
        callback: SendCallback | None,
        num_partitions: int,
        available: tuple[int, ...] | None,
        max_block_ms: int | None,
    ) -> list[RecordFuture]:
        """Add many serialized records in order; one future per record.

        ``partitions``: one for all records or one per record, -1 for the sticky
        partition; a None timestamp (or ``timestamps`` None) is ``now``. Records go
        into the open batches under the lock, one compiled call per run of records
        (until a batch fills or the sticky partition moves on); a record that needs a
        new batch goes through :meth:`append`, which reserves its memory and may wait
        up to ``max_block_ms`` outside the lock. If that fails (buffer exhausted,
        producer closed), the records not queued yet get futures failed with that
        error (their callbacks run now), and the queued ones go on.
        """
        out: list[RecordFuture] = []
        n = len(values)
        fixed = partitions if type(partitions) is int else None
        uses_sticky = fixed < 0 if fixed is not None else -1 in partitions  # type: ignore[operator]
        sticky = self.sticky
        limit = self.batch_size
        i = 0
        while i < n:
            with self.lock:
                if self.closed:
                    break
                batches = [queue[-1] if (queue := state.queue) and not queue[-1].full else None
                           for state in self._states(topic, num_partitions)]
                sticky_partition = sticky.partition(topic, num_partitions, available) if uses_sticky else -1
                budget = sticky.remaining(topic) if uses_sticky else 0
                i, used, reason = _append_many(
                    self.future_type, batches, values, keys, timestamps, headers, partitions, callback, i, now,
                    sticky_partition, budget, limit, out,
                )
                if used:
                    sticky.on_append(topic, sticky_partition, used, num_partitions, available)
            if reason & REASON_FULL:
                self.wakeup()
            if reason & 3 == REASON_NEED_BATCH:
                timestamp = timestamps[i] if timestamps is not None else None
                try:
                    out.append(self.append(
                        topic, fixed if fixed is not None else partitions[i],  # type: ignore[index]
                        now if timestamp is None else timestamp, keys[i] if keys is not None else None, values[i],
                        headers[i] if headers is not None else None, callback, num_partitions, available, max_block_ms,
                    ))
                except (BufferExhaustedError, ProducerClosedError) as exc:
                    self._fail_unqueued(topic, out, n, callback, exc)
                    return out
                except MemoryNeeded as wait:  # max_block_ms None: the caller waits, then resumes
                    wait.queued = out
                    raise
                i += 1
        if len(out) < n:
            self._fail_unqueued(topic, out, n, callback, ProducerClosedError("Cannot send: the producer is closed."))
        return out

    def _fail_unqueued(
        self, topic: str, out: list[RecordFuture], n: int, callback: SendCallback | None, error: BaseException,
    ) -> None:
        """Futures, failed with ``error``, for the records of a send_many() not queued (out[len(out):n])."""
        batch = ProducerBatch(topic, -1, RecordBatchBuilder(self.codec, self.compression_level), self.clock_ms(), 0)
        futures = batch.futures
        for index in range(n - len(out)):
            future = self.future_type(batch, index, -1, -1, -1)
            futures.append(future)
            if callback is not None:
                batch.callbacks.append((future, callback, True))  # type: ignore[union-attr]
        out.extend(futures)
        batch.fail(error)

    def send_path(
        self, metadata: ClusterMetadata, *, keyed: bool, max_request_size: int, buffer_memory: int,
    ) -> Callable[..., RecordFuture | None] | None:
        """``Producer.send``'s common case compiled into one call; None without ``kprod._speedups``.

        ``path(topic, value, key, partition, timestamp, headers, callback)`` takes
        a record whose key and value are bytes or None (``partition`` None: murmur2
        of the key if ``keyed``, else sticky), appends it to its partition's open
        batch under the lock and returns its future; or returns None, having changed
        nothing, when the record needs the Python path (no metadata, an argument to
        reject, no open batch with room, no sticky partition drawn, closed).
        :meth:`append` and ``Producer.send`` are its reference; the sticky byte
        count mirrors :meth:`StickyPartitioner.on_append`.
        """
        speedups = _native.speedups
        if speedups is None:
            return None
        sticky = self.sticky
        return speedups.SendPath(  # type: ignore[no-any-return]
            accumulator=self, queues=self._partitions, lock=self.lock,
            sticky_current=sticky._current, sticky_produced=sticky._produced, sticky_next=sticky._next,
            sticky_batch_size=sticky.batch_size, wakeup=self.wakeup, future_type=self.future_type,
            batch_size=self.batch_size, metadata=metadata, keyed=keyed,
            max_request_size=max_request_size, buffer_memory=buffer_memory,
            max_timestamp=MAX_TIMESTAMP, max_partitions=MAX_PARTITIONS,
        )

    def _states(self, topic: str, num_partitions: int) -> list[PartitionState]:
        """The states of ``topic``'s partitions, made up to ``num_partitions`` if missing (under the lock)."""
        states = self._partitions.get(topic)
        if states is None or len(states) < num_partitions:
            have = len(states) if states is not None else 0
            states = (states or []) + [PartitionState(topic, p) for p in range(have, num_partitions)]
            self._partitions[topic] = states
        return states

    def _state(self, topic: str, partition: int, num_partitions: int) -> PartitionState:
        return self._states(topic, max(num_partitions, partition + 1))[partition]

    def state_of(self, batch: ProducerBatch) -> PartitionState:
        """The state of the partition ``batch`` belongs to (made when the batch was queued)."""
        states = self._partitions.get(batch.topic)
        if states is not None and batch.partition < len(states):
            return states[batch.partition]
        with self.lock:
            return self._state(batch.topic, batch.partition, batch.partition + 1)

    def partition_states(self) -> list[PartitionState]:
        """Every partition's state (a copy of the index)."""
        with self.lock:
            return [state for states in self._partitions.values() for state in states]

    def queued_by_partition(self) -> list[tuple[PartitionState, list[ProducerBatch]]]:
        """Every partition's state with a copy of its queue."""
        with self.lock:
            return [(state, list(state.queue)) for states in self._partitions.values() for state in states]

    def _try_append(
        self, topic: str, partition: int, timestamp: int, key: bytes | None, value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None, callback: SendCallback | None,
    ) -> RecordFuture | None:
        """Append to the partition's open batch if it has room; else mark it full (under the lock)."""
        states = self._partitions.get(topic)
        if states is None or partition >= len(states):
            return None
        queue = states[partition].queue
        if not queue:
            return None
        batch = queue[-1]
        if batch.full:
            return None
        future = _append_record(self.future_type, batch, timestamp, key, value, headers, callback, self.batch_size)
        if future is None or batch.full:
            batch.full = True
            self.wakeup()
        return future

    def _previous_to_compress(self, topic: str, partition: int) -> ProducerBatch | None:
        """The full batch a new one is about to follow, when batches are compressed.

        The caller compresses it (``builder.close()``) once the lock is released:
        like Java, which compresses as records are appended, the thread that sends
        the records pays for their compression, and the I/O thread, which shares the
        GIL with it, does not fall behind (it still compresses batches drained before
        they filled). Should the I/O thread take the batch meanwhile, both may
        compress it: the results are equal and either is used.
        """
        if not self.codec:
            return None
        states = self._partitions.get(topic)
        if states is None or partition >= len(states) or not states[partition].queue:
            return None
        return states[partition].queue[-1]

    def _append_new(
        self, topic: str, partition: int, timestamp: int, key: bytes | None, value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None, callback: SendCallback | None,
        memory: int, num_partitions: int,
    ) -> RecordFuture:
        builder = RecordBatchBuilder(self.codec, self.compression_level)
        batch = ProducerBatch(topic, partition, builder, self.clock_ms(), memory)
        batch.order = (next(self._created), 0)
        builder.append(timestamp, key, value, headers)
        future = self.future_type(batch, 0, timestamp, -1 if key is None else len(key), -1 if value is None else len(value))
        batch.futures.append(future)
        if callback is not None:
            batch.callbacks.append((future, callback, True))  # type: ignore[union-attr]
        if builder.size_in_bytes >= self.batch_size:
            batch.full = True
        self._state(topic, partition, num_partitions).queue.append(batch)
        self.incomplete.add(batch)
        return future

    def begin_flush(self) -> list[ProducerBatch]:
        """Make every queued batch sendable now; the batches a flush must wait for."""
        with self.lock:
            self._flushes += 1
            return list(self.incomplete)

    def end_flush(self) -> None:
        with self.lock:
            self._flushes -= 1

    # -- I/O thread -------------------------------------------------------------

    def ready(self, metadata: ClusterMetadata, now: float, idempotence: IdempotenceState | None) -> ReadyCheck:
        """Which leader nodes have a batch to send now, and when to look again."""
        check = ReadyCheck()
        linger = self.linger_ms
        send_all = self._flushes > 0 or self.closed or self.pool.has_waiters
        leaders_by_topic = metadata.leaders
        report = self.sticky.adaptive
        # Idempotence: may anything be sent (an id, no bump pending), and at which epoch.
        blocked = idempotence is not None and not idempotence.sending
        epoch = idempotence.producer_epoch if idempotence is not None else -1
        with self.lock:
            for topic, states in self._partitions.items():
                leaders = leaders_by_topic.get(topic)
                sizes: dict[int, int] | None = {} if report and leaders is not None else None
                for partition, state in enumerate(states):
                    queue = state.queue
                    if sizes is not None:
                        sizes[partition] = len(queue)
                    if not queue:
                        continue
                    leader = leaders[partition] if leaders is not None and partition < len(leaders) else -1
                    if leader < 0:
                        check.unknown_leader_topics.add(topic)
                        continue
                    if leader in check.nodes:
                        continue
                    batch = queue[0]
                    if batch.attempts and now < batch.retry_at_ms:
                        check.next_check_ms = min(check.next_check_ms, batch.retry_at_ms - now)
                        continue
                    if idempotence is not None and (blocked or not state.can_send(batch, epoch)):
                        continue
                    if send_all or batch.full or len(queue) > 1 or batch.attempts:
                        check.nodes.add(leader)
                        continue
                    waited = now - batch.created_ms
                    if waited >= linger:
                        check.nodes.add(leader)
                    else:
                        check.next_check_ms = min(check.next_check_ms, linger - waited)
                if sizes is not None and leaders is not None:
                    self.sticky.report_queue_sizes(topic, sizes, {p for p, leader in enumerate(leaders) if leader < 0})
        return check

    def drain(
        self,
        metadata: ClusterMetadata,
        nodes: set[int],
        max_request_size: int,
        now: float,
        idempotence: IdempotenceState | None,
    ) -> dict[int, list[ProducerBatch]]:
        """Take at most one batch per partition for each ready node, up to ``max.request.size``."""
        drained: dict[int, list[ProducerBatch]] = {}
        if not nodes:
            return drained
        by_node: dict[int, list[PartitionState]] = {node: [] for node in nodes}
        leaders_by_topic = metadata.leaders
        blocked = idempotence is not None and not idempotence.sending
        epoch = idempotence.producer_epoch if idempotence is not None else -1
        with self.lock:
            for topic, states in self._partitions.items():
                leaders = leaders_by_topic.get(topic)
                if leaders is None:
                    continue
                for partition, state in enumerate(states):
                    if state.queue and partition < len(leaders):
                        candidates = by_node.get(leaders[partition])
                        if candidates is not None:
                            candidates.append(state)
            for node, candidates in by_node.items():
                if not candidates:
                    continue
                start = self._drain_start.get(node, 0) % len(candidates)
                size = 0
                batches: list[ProducerBatch] = []
                for i in range(len(candidates)):
                    state = candidates[(start + i) % len(candidates)]
                    queue = state.queue
                    batch = queue[0]
                    if batch.attempts and now < batch.retry_at_ms:
                        continue
                    if idempotence is not None and (blocked or not state.can_send(batch, epoch)):
                        continue
                    batch_size = batch.builder.size_in_bytes
                    if batches and size + batch_size > max_request_size:
                        break
                    queue.popleft()
                    batch.full = True
                    batch.in_flight = True
                    batch.drained_ms = now
                    size += batch_size
                    batches.append(batch)
                self._drain_start[node] = start + 1
                if batches:
                    drained[node] = batches
        return drained

    def reenqueue(self, batch: ProducerBatch, now: float) -> None:
        """Put a batch back for a retry, in send order, after a backoff."""
        batch.attempts += 1
        batch.retry_at_ms = now + self.backoff.delay_ms(batch.attempts)
        batch.in_flight = False
        with self.lock:
            self._next_expiry_ms = 0.0  # an older batch is queued again
            self._state(batch.topic, batch.partition, batch.partition + 1).insert_in_order(batch)

    def requeue_split(self, batch: ProducerBatch, parts: list[ProducerBatch]) -> None:
        """Replace a too-large batch by smaller ones, where it stood in send order."""
        creation, first = batch.order
        with self.lock:
            self._next_expiry_ms = 0.0
            state = self._state(batch.topic, batch.partition, batch.partition + 1)
            for part in parts:
                part.order = (creation, first)
                first += part.record_count
                state.insert_in_order(part)
                self.incomplete.add(part)
            self.incomplete.discard(batch)

    def expired(self, now: float) -> list[ProducerBatch]:
        """Remove and return queued batches older than ``delivery.timeout.ms``.

        Runs on every turn of the I/O thread, so it skips the scan (and the lock)
        until the oldest queued batch can have expired. Batches are queued in
        creation order, so a queue's head is its oldest; a batch created later
        expires no earlier than ``now + delivery.timeout.ms``.
        """
        if now < self._next_expiry_ms:
            return []
        limit = self.delivery_timeout_ms
        expired: list[ProducerBatch] = []
        next_expiry = now + limit
        with self.lock:
            for states in self._partitions.values():
                for state in states:
                    queue = state.queue
                    if queue and now - queue[0].created_ms >= limit:
                        keep = [b for b in queue if now - b.created_ms < limit]
                        expired.extend(b for b in queue if now - b.created_ms >= limit)
                        queue.clear()
                        queue.extend(keep)
                    if queue:
                        next_expiry = min(next_expiry, queue[0].created_ms + limit)
            self._next_expiry_ms = next_expiry
        return expired

    def queued_batches(self) -> list[ProducerBatch]:
        """Every batch still waiting in a queue (not in flight)."""
        with self.lock:
            return [b for states in self._partitions.values() for state in states for b in state.queue]

    def abort_queued(self) -> list[ProducerBatch]:
        """Remove every queued batch (on a forced close); the caller fails them."""
        with self.lock:
            batches = [b for states in self._partitions.values() for state in states for b in state.queue]
            for states in self._partitions.values():
                for state in states:
                    state.queue.clear()
            return batches

    def has_queued(self) -> bool:
        with self.lock:
            return any(state.queue for states in self._partitions.values() for state in states)

    def completed(self, batch: ProducerBatch) -> None:
        """Return a finished batch's memory (I/O thread).

        Without the accumulator lock: ``set.discard`` is atomic under the GIL and
        the readers copy the set under the lock, and taking the lock here, once
        per batch, made the I/O thread queue behind ``send()`` for it.
        """
        self.incomplete.discard(batch)
        if batch.memory:
            self.pool.release(batch.memory)
            batch.memory = 0

    def close(self) -> None:
        """Refuse new records; queued ones are still sent."""
        with self.lock:
            self.closed = True
        self.pool.close()


def timeout_error(batch: ProducerBatch, now: float, delivery_timeout_ms: int, cause: BaseException | None = None) -> KafkaTimeoutError:
    """The error of a batch past ``delivery.timeout.ms``, naming the partition and why."""
    age = int(now - batch.created_ms)
    if cause is None:
        cause = batch.last_error
    reason = f" Last error: {cause}" if cause is not None else ""
    error = KafkaTimeoutError(
        f"Expiring {batch.record_count} record(s) for {batch.topic}-{batch.partition}: {age} ms has passed since "
        f"batch creation, over delivery.timeout.ms ({delivery_timeout_ms} ms).{reason} Check that the partition "
        "has a leader and enough in-sync replicas, or raise delivery.timeout.ms."
    )
    error.__cause__ = cause
    return error

