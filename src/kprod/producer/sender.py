"""The producer's I/O thread: metadata, producer id, drain, send, retry, expire.

One :meth:`Sender.run_once` is one turn of Java's ``Sender.runOnce``: it
looks at the clock once, decides everything it can without blocking, then
waits in the network client's poll for the first of: a response, a batch
becoming sendable (linger, backoff), a wake-up from ``send()``. Tests drive
it step by step with a manual clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from kprod.errors import (
    KafkaError,
    ProducerClosedError,
    RetriableError,
    UnsupportedVersionError,
    error_for_code,
)
from kprod.producer.accumulator import RecordAccumulator, timeout_error
from kprod.producer.batch import ProducerBatch
from kprod.producer.idempotence import IdempotenceState
from kprod.metrics.registry import Metrics
from kprod.metrics.stats import MetricConfig
from kprod.producer.metadata import ClusterMetadata
from kprod.producer.metrics import ProducerMetrics
from kprod.producer.partition_state import ErrorAction
from kprod.protocol.messages import ApiKey
from kprod.protocol.records import RecordBatchBuilder, read_batches
from kprod.protocol.produce import ProduceRequest
from kprod.protocol.requests import init_producer_id_request, metadata_request
from kprod.protocol.responses import ProduceResult, init_producer_id_result, metadata_result, produce_results

__all__ = ["Sender", "Network"]

log = logging.getLogger("kprod.producer")

_NONE = 0

_MAX_POLL_MS = 1000.0


class Network(Protocol):
    """What the sender needs of :class:`kprod.net.client.NetworkClient`."""

    on_disconnect: Callable[[int], None] | None

    def set_node(self, node_id: int, host: str, port: int) -> None: ...
    def remove_node(self, node_id: int) -> None: ...
    def ready(self, node_id: int, now: float) -> bool: ...
    def is_ready(self, node_id: int) -> bool: ...
    def in_flight(self, node_id: int) -> int: ...
    def version(self, node_id: int, api_key: int) -> int | None: ...
    def least_loaded_node(self, now: float) -> int | None: ...
    def connection_delay(self, node_id: int, now: float) -> float: ...
    def send(self, node_id: int, request: Any, handler: Callable[[Any, BaseException | None], None], *, expect_response: bool = True) -> None: ...
    def poll(self, timeout_ms: float) -> None: ...
    def wakeup(self) -> None: ...
    def close(self) -> None: ...


class Sender:
    """Moves batches from the accumulator to the brokers and completes them."""

    def __init__(
        self,
        *,
        client: Network,
        metadata: ClusterMetadata,
        accumulator: RecordAccumulator,
        idempotence: IdempotenceState | None,
        clock_ms: Callable[[], float],
        bootstrap: list[tuple[str, int]],
        acks: int,
        retries: int,
        request_timeout_ms: int,
        delivery_timeout_ms: int,
        max_request_size: int,
        max_in_flight: int,
        retry_backoff_ms: int,
        retry_backoff_max_ms: int,
        transactional_id: str | None = None,
        metrics: ProducerMetrics | None = None,
        stats_callback: Callable[[dict[str, Any]], Any] | None = None,
        stats_interval_ms: int = 0,
    ) -> None:
        self.client = client
        self.metadata = metadata
        self.accumulator = accumulator
        self.idempotence = idempotence
        self.clock_ms = clock_ms
        self.acks = acks
        self.retries = retries
        self.request_timeout_ms = request_timeout_ms
        self.delivery_timeout_ms = delivery_timeout_ms
        self.max_request_size = max_request_size
        self.max_in_flight = max_in_flight
        self.retry_backoff_ms = retry_backoff_ms
        self.retry_backoff_max_ms = retry_backoff_max_ms
        self.transactional_id = transactional_id
        self.metrics = metrics if metrics is not None else ProducerMetrics(
            Metrics(MetricConfig(), clock_ms), "kprod-sender")
        self._stats_callback = stats_callback if stats_interval_ms > 0 else None
        self._stats_interval_ms = stats_interval_ms
        self._next_stats_ms = clock_ms() + stats_interval_ms
        self.bootstrap_ids: list[int] = []
        client.on_disconnect = self._on_disconnect
        if hasattr(client, "on_auth_failure"):  # issue 12: refused credentials fail fast
            setattr(client, "on_auth_failure", self._on_auth_failure)
            setattr(client, "on_authenticated", self._on_authenticated)
        for index, (host, port) in enumerate(bootstrap):
            node_id = -(index + 1)
            client.set_node(node_id, host, port)
            self.bootstrap_ids.append(node_id)
        self.in_flight: dict[ProducerBatch, int] = {}
        self._metadata_in_flight = False
        self._metadata_retry_at = 0.0
        self._metadata_failures = 0
        self._pid_in_flight = False
        self._pid_retry_at = 0.0
        self._pid_attempts = 0
        self.running = True
        self.force_close = False
        self.closed_event = threading.Event()
        self.fatal_error: BaseException | None = None

    # -- the loop ------------------------------------------------------------------

    def run(self) -> None:
        """The I/O thread's body: loop until closed, then drain what is left."""
        try:
            while self.running:
                self.run_once()
            # Graceful close: keep sending until nothing is queued or in flight.
            while not self.force_close and (self.accumulator.has_queued() or self.in_flight):
                self.run_once()
            if self.force_close or self.accumulator.has_queued() or self.in_flight:
                self._abort_everything(ProducerClosedError(
                    "The producer was closed before this record was acknowledged (close timeout passed)."))
        except BaseException:
            log.exception("The producer's I/O thread failed; failing every pending record")
            self._abort_everything(KafkaError("The producer's I/O thread failed unexpectedly; see the log."))
            raise
        finally:
            self.client.close()
            self.closed_event.set()

    def run_once(self, now: float | None = None) -> None:
        """One turn: plan with the clock at ``now``, then poll the network."""
        if now is None:
            now = self.clock_ms()
        timeout = self._plan(now)
        self.client.poll(timeout)

    def wakeup(self) -> None:
        self.client.wakeup()

    def initiate_close(self) -> None:
        self.running = False
        self.client.wakeup()

    def force(self) -> None:
        self.running = False
        self.force_close = True
        self.client.wakeup()

    def _plan(self, now: float) -> float:
        timeout = _MAX_POLL_MS
        idempotence = self.idempotence
        if idempotence is not None:
            if idempotence.maybe_unresolved:
                idempotence.settle(self.accumulator.partition_states())
            if idempotence.fatal_error is not None:
                self._fail_queued(idempotence.fatal_error)
            elif idempotence.bump_needed and not self.in_flight:
                if not idempotence.bump(self.accumulator.queued_by_partition()):
                    log.info("Producer epoch exhausted; requesting a new producer id")
            if not idempotence.has_producer_id and idempotence.fatal_error is None:
                timeout = min(timeout, self._maybe_init_producer_id(now))
        if self.metadata.auth_error is not None:
            self._fail_queued(self.metadata.auth_error)
        timeout = min(timeout, self._maybe_update_metadata(now))
        self._expire(now)
        check = self.accumulator.ready(self.metadata, now, idempotence)
        if check.unknown_leader_topics:
            self.metadata.request_update()
        nodes = check.nodes
        if nodes:
            for node in list(nodes):
                if not self.client.ready(node, now):
                    nodes.discard(node)
                    delay = self.client.connection_delay(node, now)
                    if delay > 0:
                        timeout = min(timeout, delay)
                elif self.client.in_flight(node) >= self.max_in_flight:
                    nodes.discard(node)
            drained = self.accumulator.drain(self.metadata, nodes, self.max_request_size, now, idempotence)
            for node, batches in drained.items():
                self._send_produce(node, batches, now)
            if drained:
                # More may be ready right away (up to max.in.flight per node): look again
                # without sleeping, so a busy application thread cannot starve the sends.
                return 0.0
        if check.next_check_ms < timeout:
            timeout = check.next_check_ms
        if self._stats_callback is not None:
            timeout = min(timeout, self._maybe_emit_statistics(now))
        return max(0.0, timeout)

    def _maybe_emit_statistics(self, now: float) -> float:
        """Call ``stats.callback`` every ``statistics.interval.ms``; ms until the next call."""
        if now >= self._next_stats_ms:
            self._next_stats_ms = now + self._stats_interval_ms
            try:
                self._stats_callback(self.metrics.registry.snapshot())  # type: ignore[misc]
            except Exception:
                log.exception("stats.callback raised; statistics go on at the next interval")
        return self._next_stats_ms - now

    def _send_request(self, node: int, request: Any, handler: Callable[[Any, BaseException | None], None],
                      now: float, *, expect_response: bool = True) -> None:
        """Send ``request`` to ``node``, counting it (and its answer) in the metrics."""
        metrics = self.metrics
        metrics.on_request(node, now, expect_response)
        if expect_response:
            clock_ms = self.clock_ms

            def answered(response: Any, error: BaseException | None) -> None:
                metrics.on_response(node, now, clock_ms(), answered=error is None)
                handler(response, error)

            self.client.send(node, request, answered)
        else:
            self.client.send(node, request, handler, expect_response=False)

    # -- producer id -------------------------------------------------------------------

    def _maybe_init_producer_id(self, now: float) -> float:
        if self._pid_in_flight:
            return _MAX_POLL_MS
        if now < self._pid_retry_at:
            return self._pid_retry_at - now
        node = self.client.least_loaded_node(now)
        if node is None:
            return self.retry_backoff_ms
        if not self.client.ready(node, now):
            return max(1.0, self.client.connection_delay(node, now))
        version = self.client.version(node, ApiKey.INIT_PRODUCER_ID)
        if version is None:
            assert self.idempotence is not None
            self.idempotence.fatal_error = UnsupportedVersionError(
                "The broker does not support InitProducerId, so the idempotent producer cannot run; "
                "set enable.idempotence=false or upgrade the brokers.")
            return 0.0
        request = init_producer_id_request(version, transactional_id=self.transactional_id)
        self._pid_in_flight = True
        self._send_request(node, request, self._on_init_producer_id, now)
        return _MAX_POLL_MS

    def _on_init_producer_id(self, response: Any, error: BaseException | None) -> None:
        self._pid_in_flight = False
        idempotence = self.idempotence
        assert idempotence is not None
        now = self.clock_ms()
        if error is None:
            result = init_producer_id_result(response)
            code = result.error_code
            if code == _NONE:
                self._pid_attempts = 0
                idempotence.set_producer_id(result.producer_id, result.producer_epoch,
                                            self.accumulator.partition_states())
                return
            error = error_for_code(code)
            if not isinstance(error, RetriableError):
                log.error("InitProducerId failed: %s", error)
                idempotence.fatal_error = error
                return
        self._pid_attempts += 1
        self._pid_retry_at = now + self._backoff(self._pid_attempts)
        log.debug("InitProducerId will be retried: %s", error)

    # -- metadata ------------------------------------------------------------------

    def _maybe_update_metadata(self, now: float) -> float:
        metadata = self.metadata
        if self._metadata_in_flight:
            return _MAX_POLL_MS
        if not metadata.needs_update(now):
            return metadata.time_to_next_update(now)
        if now < self._metadata_retry_at:
            return self._metadata_retry_at - now
        node = self.client.least_loaded_node(now)
        if node is None:
            return self.retry_backoff_ms
        if not self.client.ready(node, now):
            delay = self.client.connection_delay(node, now)
            return delay if delay > 0 else _MAX_POLL_MS
        version = self.client.version(node, ApiKey.METADATA)
        if version is None:
            self.client.remove_node(node)
            return 0.0
        topics = metadata.topics_to_fetch(now)
        request = metadata_request(version, topics, allow_auto_topic_creation=True)
        self._metadata_in_flight = True
        self._send_request(node, request, self._on_metadata, now)
        return _MAX_POLL_MS

    def _on_metadata(self, response: Any, error: BaseException | None) -> None:
        self._metadata_in_flight = False
        now = self.clock_ms()
        if error is not None:
            self._metadata_failures += 1
            self._metadata_retry_at = now + self._backoff(self._metadata_failures)
            log.debug("Metadata request failed: %s", error)
            return
        self._metadata_failures = 0
        self.metadata.update(metadata_result(response), now)
        for node_id, (host, port) in self.metadata.brokers.items():
            self.client.set_node(node_id, host, port)
        if self.metadata.brokers and self.bootstrap_ids:
            for node_id in self.bootstrap_ids:
                self.client.remove_node(node_id)
            self.bootstrap_ids = []
        self._metadata_retry_at = now + self.retry_backoff_ms

    def _on_auth_failure(self, node_id: int, error: KafkaError) -> None:
        """A broker refused our credentials or certificate: what waits fails now, not at
        delivery.timeout.ms; the connection is retried (the credentials may be fixed)."""
        self.metadata.set_auth_error(error)
        self._fail_queued(error)

    def _on_authenticated(self, node_id: int) -> None:
        if self.metadata.auth_error is not None:
            self.metadata.set_auth_error(None)

    def _on_disconnect(self, node_id: int) -> None:
        if node_id >= 0:
            self.metadata.request_update()

    # -- produce ---------------------------------------------------------------------

    def _send_produce(self, node: int, batches: list[ProducerBatch], now: float) -> None:
        version = self.client.version(node, ApiKey.PRODUCE)
        idempotence = self.idempotence
        topic_data: dict[str, list[tuple[int, bytes]]] = {}
        state_of = self.accumulator.state_of
        built: list[ProducerBatch] = []
        for batch in batches:
            if idempotence is not None:
                state_of(batch).stamp(batch, idempotence.producer_id, idempotence.producer_epoch)
            try:
                batch.payload = batch.builder.build(batch.producer_id, batch.producer_epoch, batch.base_sequence)
            except Exception as exc:  # nothing a caller passed may stop the I/O thread: this batch fails alone
                self._fail(batch, _build_error(batch, exc))
                continue
            topic_data.setdefault(batch.topic, []).append((batch.partition, batch.payload))
            self.in_flight[batch] = node
            built.append(batch)
        batches = built
        if not batches:
            return
        if version is None:
            error = UnsupportedVersionError(
                f"Broker {node} supports no Produce version kprod speaks (v3+); upgrade the broker.")
            for batch in batches:
                self._fail(batch, error)
            return
        request = ProduceRequest(version, self.acks, self.request_timeout_ms, topic_data, self.transactional_id)
        expect_response = self.acks != 0
        self.metrics.on_batches_sent(batches, now)

        def handle(response: Any, error: BaseException | None) -> None:
            self._on_produce(node, batches, response, error)

        self._send_request(node, request, handle, now, expect_response=expect_response)

    def _on_produce(self, node: int, batches: list[ProducerBatch], response: Any, error: BaseException | None) -> None:
        now = self.clock_ms()
        if error is not None:
            self.metadata.request_update()
            for batch in batches:
                self._on_batch_error(batch, error, now)
            return
        if response is None:  # acks=0: done once written to the socket
            for batch in batches:
                self._succeed(batch, -1, -1)
            return
        produced = produce_results(response)
        self.metrics.on_throttle(produced.throttle_time_ms, now)
        results = produced.partitions
        if produced.node_endpoints:
            self.metadata.add_brokers(produced.node_endpoints)
        for batch in batches:
            result = results.get((batch.topic, batch.partition))
            if result is None:
                self._on_batch_error(batch, error_for_code(
                    -1, "The broker's Produce response left this partition out.", topic=batch.topic,
                    partition=batch.partition), now)
                continue
            code = result.error_code
            if code == _NONE:
                self._succeed(batch, result.base_offset, result.log_append_time)
                continue
            message = result.error_message
            record_errors = result.record_errors
            if record_errors:
                details = "; ".join(f"record {e.batch_index}: {e.batch_index_error_message}" for e in record_errors)
                message = f"{message or ''} ({details})".strip()
            self._on_batch_error(batch, error_for_code(code, message, topic=batch.topic, partition=batch.partition),
                                 now, result)

    def _on_batch_error(self, batch: ProducerBatch, error: BaseException, now: float,
                        result: ProduceResult | None = None) -> None:
        """A produce of ``batch`` failed (``result``: the partition's response, if any): ask its
        partition's state what that means, and do it."""
        idempotence = self.idempotence
        state = self.accumulator.state_of(batch)
        expired = now - batch.created_ms >= self.delivery_timeout_ms
        action = state.error_action(batch, error, idempotent=idempotence is not None,
                                    retries_left=batch.attempts < self.retries, expired=expired)
        if action is ErrorAction.ALREADY_WRITTEN:
            assert result is not None
            self._succeed(batch, result.base_offset, result.log_append_time)
            return
        if result is not None:
            leader = result.current_leader
            if leader.leader_id >= 0:
                self.metadata.update_leader(batch.topic, batch.partition, leader.leader_id, leader.leader_epoch, now)
        if batch.done:  # already failed by expiry while in flight
            self.in_flight.pop(batch, None)
            if idempotence is not None:
                state.resolved(batch, acked=False)
                state.lost(batch, error, idempotence)
            return
        if action is ErrorAction.SPLIT:
            self._split(batch, now)
        elif action is ErrorAction.FATAL:
            assert idempotence is not None
            idempotence.fatal_error = error
            self._fail(batch, error)
        elif action is ErrorAction.FAIL_BATCH:
            self._fail(batch, error)
        elif action is ErrorAction.EXPIRE:
            self._fail(batch, timeout_error(batch, now, self.delivery_timeout_ms, error))
        else:  # RETRY, RETRY_AFTER_METADATA, BUMP_EPOCH
            if action is ErrorAction.BUMP_EPOCH:
                assert idempotence is not None
                idempotence.request_bump(f"{error}", state)
            elif action is ErrorAction.RETRY_AFTER_METADATA:
                self.metadata.request_update()
            log.debug("Retrying %r (attempt %d): %s", batch, batch.attempts + 1, error)
            self.metrics.on_retry(batch.topic, batch.record_count, now)
            batch.last_error = error  # the cause, should delivery.timeout.ms expire it while queued
            self.in_flight.pop(batch, None)
            if idempotence is not None:
                state.resolved(batch, acked=False, retrying=True)
            self.accumulator.reenqueue(batch, now)

    def _split(self, batch: ProducerBatch, now: float) -> None:
        """MESSAGE_TOO_LARGE for a multi-record batch: resend its records in halves."""
        self.in_flight.pop(batch, None)
        if self.idempotence is not None:
            state = self.accumulator.state_of(batch)
            state.resolved(batch, acked=False)
            if batch.has_sequence:
                self.idempotence.request_bump(f"split of a too-large batch for {batch.topic}-{batch.partition}", state)
        assert batch.payload is not None
        records = next(read_batches(batch.payload)).records()
        half = (len(records) + 1) // 2
        parts: list[ProducerBatch] = []
        for start in range(0, len(records), half):
            chunk = records[start:start + half]
            builder = RecordBatchBuilder(self.accumulator.codec, self.accumulator.compression_level)
            part = ProducerBatch(batch.topic, batch.partition, builder, batch.created_ms, 0)
            part.full = True
            part.attempts = batch.attempts
            for offset, record in enumerate(chunk):
                builder.append(record.timestamp, record.key, record.value, record.headers)
                future = batch.futures[start + offset]
                future._batch = part
                future._index = offset
                part.futures.append(future)
            parts.append(part)
        # Callbacks follow their futures, in the same order.
        with_callbacks = batch.callbacks or []
        part_of = {id(f): p for p in parts for f in p.futures}
        for future, callback, java_style in with_callbacks:
            part_of[id(future)].callbacks.append((future, callback, java_style))  # type: ignore[union-attr]
        parts[0].memory = batch.memory
        batch.memory = 0
        self.metrics.on_split(now)
        log.info("Split a too-large batch of %d records for %s-%d into %d batches",
                 batch.record_count, batch.topic, batch.partition, len(parts))
        self.accumulator.requeue_split(batch, parts)
        batch.mark_split()

    def _succeed(self, batch: ProducerBatch, base_offset: int, log_append_time: int) -> None:
        self.in_flight.pop(batch, None)
        if self.idempotence is not None and batch.has_sequence:
            self.accumulator.state_of(batch).resolved(batch, acked=True)
        if not batch.done:
            self.accumulator.completed(batch)
            batch.succeed(base_offset, log_append_time)

    def _fail(self, batch: ProducerBatch, error: BaseException) -> None:
        self.in_flight.pop(batch, None)
        idempotence = self.idempotence
        if idempotence is not None and batch.has_sequence:
            state = self.accumulator.state_of(batch)
            state.resolved(batch, acked=False)
            state.lost(batch, error, idempotence)
        if not batch.done:
            self.accumulator.completed(batch)
            self.metrics.on_error(batch.topic, batch.record_count, self.clock_ms())
            batch.fail(error)

    def _expire(self, now: float) -> None:
        for batch in self.accumulator.expired(now):
            self._fail(batch, timeout_error(batch, now, self.delivery_timeout_ms))
        if self.in_flight:
            limit = self.delivery_timeout_ms
            for batch in [b for b in self.in_flight if now - b.created_ms >= limit and not b.done]:
                # Stays in self.in_flight until its response or disconnect arrives.
                self.accumulator.completed(batch)
                self.metrics.on_error(batch.topic, batch.record_count, now)
                batch.fail(timeout_error(batch, now, limit))

    def _fail_queued(self, error: BaseException) -> None:
        for batch in self.accumulator.abort_queued():
            self._fail(batch, error)

    def _abort_everything(self, error: BaseException) -> None:
        for batch in self.accumulator.abort_queued():
            self._fail(batch, error)
        for batch in list(self.in_flight):
            self._fail(batch, error)
        for batch in list(self.accumulator.incomplete):
            self._fail(batch, error)

    def _backoff(self, attempts: int) -> float:
        return min(self.retry_backoff_max_ms, self.retry_backoff_ms * (2 ** max(0, attempts - 1)))


def _build_error(batch: ProducerBatch, cause: BaseException) -> KafkaError:
    """The error of a batch whose request bytes could not be built (its records fail, the rest go on)."""
    error = KafkaError(
        f"Could not build the record batch of {batch.record_count} record(s) for {batch.topic}-{batch.partition}: "
        f"{type(cause).__name__}: {cause}. Its records were not sent; the producer goes on.",
        topic=batch.topic, partition=batch.partition)
    error.__cause__ = cause
    return error

