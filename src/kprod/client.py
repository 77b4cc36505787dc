"""``Producer``: the public face of kprod, the Java KafkaProducer in Python.

``send()`` runs on the caller's thread and does only what must be done per
record: serialize, pick the partition, append to the partition's open batch.
Everything else (metadata, connections, requests, retries, callbacks) runs on
the producer's one I/O thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kprod import serializers as _serializers
from kprod.config import ProducerConfig
from kprod.errors import (
    ConfigError,
    ForkedProducerError,
    InterruptError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    KafkaError,
    KafkaTimeoutError,
    ProducerClosedError,
    SerializationError,
)
from kprod.net.address import parse_address
from kprod.net.client import NetworkClient
from kprod.net.security import Security
from kprod.partitioner import Partitioner, murmur2, partitions_for_keys, resolve_partitioner
from kprod.producer.accumulator import RecordAccumulator
from kprod.producer.batch import ProducerBatch, RecordFuture, SendCallback
from kprod.producer.fastpath import SendCore, scan_bytes
from kprod.producer.idempotence import IdempotenceState
from kprod.producer.memory import MemoryPool
from kprod.metrics import MetricConfig, MetricName, Metrics
from kprod.plugins import load_plugins
from kprod.producer.metadata import ClusterMetadata, MetadataNeeded, PartitionInfo
from kprod.producer.metrics import ProducerMetrics
from kprod.producer.recordcheck import (
    check_headers,
    check_partition,
    check_size,
    check_timestamp,
    check_topic,
    check_value_bytes,
)
from kprod.producer.sender import Sender
from kprod.producer.sticky import StickyPartitioner
from kprod.protocol.compression import codec_for_name
from kprod.record import Header, ProducerRecord

__all__ = ["Producer"]

log = logging.getLogger("kprod.producer")

# Producers not closed yet. Strong references: a producer dropped without close() keeps its
# I/O thread and its accepted records, so it must stay reachable for the atexit hook to
# deliver them (as a Java producer that is never closed keeps the JVM's sender thread).
_live_producers: "set[Producer]" = set()
_time_ns = time.time_ns
_monotonic = time.monotonic


def _monotonic_ms() -> float:
    return _monotonic() * 1000.0


class Producer(SendCore):
    """A thread-safe Kafka producer.

    ``Producer({"bootstrap.servers": "host:9092"})``; ``send()`` returns a
    future; use it as a context manager, or call ``close()``, so that every
    accepted record is delivered or failed before the program moves on.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        merged = dict(config or {})
        merged.update({key.replace("_", "."): value for key, value in overrides.items()})
        self.config = cfg = ProducerConfig(merged)
        self._closed = False
        self._forked = False
        self._owner_pid = os.getpid()
        self.client_id: str = cfg["client.id"]
        self._key_serializer = _serializers.resolve_serializer(cfg["key.serializer"])
        self._value_serializer = _serializers.resolve_serializer(cfg["value.serializer"])
        self._key_is_bytes = _serializers.is_default_bytes(self._key_serializer)
        self._value_is_bytes = _serializers.is_default_bytes(self._value_serializer)
        self._partitioner: Partitioner | None = resolve_partitioner(cfg["partitioner.class"], cfg)
        self._ignore_keys: bool = cfg["partitioner.ignore.keys"]
        self._interceptors = _load_interceptors(cfg["interceptor.classes"], cfg)
        # None: never block (see _never_block); the asyncio producer waits on its loop instead.
        self._max_block_ms: int | None = cfg["max.block.ms"]
        self._max_request_size: int = cfg["max.request.size"]
        self._buffer_memory: int = cfg["buffer.memory"]
        bootstrap = [parse_address(address) for address in cfg["bootstrap.servers"]]
        if not bootstrap:
            raise ConfigError("bootstrap.servers is empty: give at least one broker as host:port.")

        self._metadata = ClusterMetadata(
            metadata_max_age_ms=cfg["metadata.max.age.ms"], metadata_max_idle_ms=cfg["metadata.max.idle.ms"]
        )
        # TLS and SASL settings are checked here, so a bad store or missing credentials is a
        # ConfigError now; tokens are fetched later, on the I/O thread.
        security = Security.from_config(cfg, set(cfg.originals))
        network = NetworkClient(
            security=security,
            client_id=self.client_id,
            clock=_monotonic_ms,
            request_timeout_ms=cfg["request.timeout.ms"],
            reconnect_backoff_ms=cfg["reconnect.backoff.ms"],
            reconnect_backoff_max_ms=cfg["reconnect.backoff.max.ms"],
            connection_setup_timeout_ms=cfg["socket.connection.setup.timeout.ms"],
            send_buffer_bytes=cfg["send.buffer.bytes"],
            receive_buffer_bytes=cfg["receive.buffer.bytes"],
        )
        self._wakeup = network.wakeup
        self._metrics_registry = Metrics(
            MetricConfig(cfg["metrics.sample.window.ms"], cfg["metrics.num.samples"]), _monotonic_ms)
        metrics = self._metrics = ProducerMetrics(self._metrics_registry, self.client_id)
        pool = MemoryPool(self._buffer_memory, on_wait=metrics.on_buffer_wait)
        codec = codec_for_name(cfg["compression.type"])
        level_key = {1: "compression.gzip.level", 3: "compression.lz4.level", 4: "compression.zstd.level"}.get(codec)
        self._accumulator = RecordAccumulator(
            batch_size=max(1, cfg["batch.size"]),
            linger_ms=cfg["linger.ms"],
            codec=codec,
            compression_level=cfg[level_key] if level_key else None,
            pool=pool,
            sticky=StickyPartitioner(max(1, cfg["batch.size"]), adaptive=cfg["partitioner.adaptive.partitioning.enable"]),
            clock_ms=_monotonic_ms,
            delivery_timeout_ms=cfg["delivery.timeout.ms"],
            retry_backoff_ms=cfg["retry.backoff.ms"],
            retry_backoff_max_ms=cfg["retry.backoff.max.ms"],
            wakeup=network.wakeup,
        )
        self._idempotence = IdempotenceState() if cfg.idempotence_enabled else None
        self._sender = Sender(
            client=network,
            metadata=self._metadata,
            accumulator=self._accumulator,
            idempotence=self._idempotence,
            clock_ms=_monotonic_ms,
            bootstrap=bootstrap,
            acks=cfg["acks"],
            retries=cfg["retries"],
            request_timeout_ms=cfg["request.timeout.ms"],
            delivery_timeout_ms=cfg["delivery.timeout.ms"],
            max_request_size=self._max_request_size,
            max_in_flight=cfg["max.in.flight.requests.per.connection"],
            retry_backoff_ms=cfg["retry.backoff.ms"],
            retry_backoff_max_ms=cfg["retry.backoff.max.ms"],
            metrics=metrics,
            stats_callback=_stats_callback(cfg["stats.callback"]),
            stats_interval_ms=cfg["statistics.interval.ms"],
        )
        self._add_gauges(pool, network)
        for reporter in load_plugins("metric.reporters", cfg["metric.reporters"], cfg, _JMX_REPORTER):
            self._metrics_registry.add_reporter(reporter)
        self._append_path: Callable[..., RecordFuture | None] | None = None
        self._build_send_path()
        self._send_fallback = type(self)._send_python
        self._thread = threading.Thread(target=self._sender.run, name=f"kprod-network-thread | {self.client_id}", daemon=True)
        self._thread.start()
        _live_producers.add(self)
        log.debug("Producer %s started (idempotence %s)", self.client_id, "on" if self._idempotence else "off")

    # -- sending -------------------------------------------------------------------

    # send(topic, value=None, key=None, partition=None, timestamp=None, headers=None, callback=None)
    # is inherited from SendCore (producer/fastpath.py): the common case (bytes or None key and
    # value, known topic, room in the open batch) is one compiled call, without a Python frame
    # when kprod._speedups is built; everything else comes here.

    def _send_python(
        self,
        topic: str | ProducerRecord,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: int | None = None,
        headers: Sequence[Header] | None = None,
        callback: SendCallback | None = None,
    ) -> RecordFuture:
        """``send()`` for every record its compiled path does not take (the reference)."""
        if self._closed or self._forked:
            self._raise_unusable()
        name: str
        if type(topic) is str:
            name = topic
        elif isinstance(topic, ProducerRecord):
            if callback is None and value is not None and callable(value):
                callback, value = value, None  # send(record, cb) positional form
            name, value, key, partition, timestamp, headers = topic
        else:
            name = check_topic(topic)  # raises: not a str
        if self._interceptors:
            name, value, key, partition, timestamp, headers, callback = self._intercept(
                name, value, key, partition, timestamp, headers, callback
            )
        if type(name) is not str:
            check_topic(name)
        # The record check (producer/recordcheck.py) before anything is waited for, reserved or counted.
        if timestamp is not None:
            check_timestamp(name, timestamp)
        if headers is not None:
            headers = check_headers(name, headers)
        metadata = self._metadata
        num_partitions = metadata.partition_counts.get(name)
        if num_partitions is None:
            num_partitions = self._wait_for_topic(name)

        if self._key_is_bytes and (key is None or type(key) is bytes):
            key_bytes = key
        else:
            key_bytes = self._serialize(self._key_serializer, name, key, "key")
        if self._value_is_bytes and (value is None or type(value) is bytes):
            value_bytes = value
        else:
            value_bytes = self._serialize(self._value_serializer, name, value, "value")

        if partition is None:
            if self._partitioner is not None:
                partition = self._custom_partition(name, key, key_bytes, value, value_bytes, num_partitions)
            elif key_bytes is not None and not self._ignore_keys:
                partition = (murmur2(key_bytes) & 0x7FFFFFFF) % num_partitions
            else:
                partition = -1
        elif type(partition) is not int or not 0 <= partition < num_partitions:
            check_partition(name, partition, num_partitions)  # raises

        if timestamp is None:
            timestamp = _time_ns() // 1_000_000
        check_size(name, (len(key_bytes) if key_bytes else 0) + (len(value_bytes) if value_bytes else 0),
                   self._max_request_size, self._buffer_memory)
        append_path = self._append_path
        if append_path is not None:
            future = append_path(name, value_bytes, key_bytes, None if partition < 0 else partition, timestamp,
                                 headers, callback)
            if future is not None:
                return future
        return self._accumulator.append(
            name, partition, timestamp, key_bytes, value_bytes, headers, callback,
            num_partitions, metadata.available.get(name), self._max_block_ms,
        )

    def send_many(
        self,
        topic: str,
        values: Sequence[Any],
        keys: Sequence[Any] | None = None,
        *,
        partition: int | None = None,
        timestamps: Sequence[int | None] | None = None,
        headers: Sequence[Sequence[Header] | None] | None = None,
        callback: SendCallback | None = None,
    ) -> list[RecordFuture]:
        """Queue many records for one topic; returns one future per record, in order.

        What ``send(topic, values[i], keys[i], partition, timestamps[i], headers[i],
        callback)`` does for every i, with the same guarantees (serializers, Java
        partitioning, idempotence, ``buffer.memory``, a future and callback per
        record), for a fraction of the cost per record: the checks and serializers
        run over the whole call first, then the records are encoded into their
        batches a batch at a time (one compiled call each with ``kprod._speedups``).

        ``keys``, ``timestamps`` (ms since the epoch, None: now) and ``headers`` (per
        record: (str, bytes | None) pairs, or None) are None or as long as
        ``values``; ``partition`` applies to every record. Raises before queuing
        anything for whatever ``send()`` raises for, naming the record's index.
        A record that cannot be queued afterwards (``buffer.memory`` still full
        after ``max.block.ms``, or the producer closed meanwhile) gets, with every
        record after it, a future already failed with that error (their callbacks
        run at once); the records before it are sent as usual. With interceptors
        configured, this is ``send()`` per record after the timestamps and headers
        of all records are checked: a record the interceptors' result makes
        ``send()`` refuse stops the call, and the records before it stay queued.
        """
        if self._closed or self._forked:
            self._raise_unusable()
        if type(topic) is not str:
            raise InvalidArgumentTypeError(f"send_many() takes a topic name (str), not {type(topic).__name__}.",
                                           field="topic")
        values = _as_sequence("values", values, None)
        n = len(values)
        keys = None if keys is None else _as_sequence("keys", keys, n)
        timestamps = None if timestamps is None else _as_sequence("timestamps", timestamps, n)
        headers = None if headers is None else _as_sequence("headers", headers, n)
        # The record check (producer/recordcheck.py) of every record before any is queued.
        if timestamps is not None:
            for index, timestamp in enumerate(timestamps):
                if timestamp is not None:
                    check_timestamp(topic, timestamp, index)
        if headers is not None:
            headers = [None if record_headers is None else check_headers(topic, record_headers, index)
                       for index, record_headers in enumerate(headers)]
        if self._interceptors:
            return [
                self.send(topic, values[i], keys[i] if keys is not None else None, partition,
                          timestamps[i] if timestamps is not None else None,
                          headers[i] if headers is not None else None, callback)
                for i in range(n)
            ]
        if not n:
            return []
        metadata = self._metadata
        num_partitions = metadata.partition_counts.get(topic)
        if num_partitions is None:
            num_partitions = self._wait_for_topic(topic)

        value_bytes, longest_value = self._serialize_many(topic, values, self._value_serializer, self._value_is_bytes, "value")
        key_bytes, longest_key = (None, 0) if keys is None else self._serialize_many(
            topic, keys, self._key_serializer, self._key_is_bytes, "key")
        try:
            check_size(topic, longest_key + longest_value, self._max_request_size, self._buffer_memory)
        except KafkaError:  # some record is too large: name the first
            for index in range(n):
                check_size(topic, (len(key_bytes[index] or b"") if key_bytes is not None else 0)
                           + len(value_bytes[index] or b""), self._max_request_size, self._buffer_memory, index)

        partitions: int | list[int]
        if partition is not None:
            partitions = check_partition(topic, partition, num_partitions)
        elif self._partitioner is not None:
            partitions = [
                self._custom_partition(topic, keys[i] if keys is not None else None,
                                       key_bytes[i] if key_bytes is not None else None,
                                       values[i], value_bytes[i], num_partitions)
                for i in range(n)
            ]
        elif key_bytes is not None and not self._ignore_keys:
            partitions = partitions_for_keys(key_bytes, num_partitions)
        else:
            partitions = -1

        return self._accumulator.append_many(
            topic, partitions, _time_ns() // 1_000_000, timestamps, key_bytes, value_bytes, headers, callback,
            num_partitions, metadata.available.get(topic), self._max_block_ms,
        )

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued now and wait until each such record is done.

        Raises :class:`~kprod.errors.KafkaTimeoutError` if ``timeout`` seconds
        pass first. Records' own failures are reported through their futures.
        """
        if self._forked:
            self._raise_unusable()
        if threading.current_thread() is self._thread:
            raise KafkaError("flush() cannot be called from a send callback: it would wait for itself.")
        pending = self._accumulator.begin_flush()
        self._wakeup()
        deadline = None if timeout is None else _monotonic() + timeout
        try:
            while pending:
                batch = pending.pop()
                if deadline is None:
                    batch.wait()
                elif not batch.wait(max(0.0, deadline - _monotonic())):
                    raise KafkaTimeoutError(
                        f"flush() timed out after {timeout}s with records still pending; "
                        "they stay queued and will still be delivered or failed."
                    )
                pending.extend(_moved_to(batch))  # a split batch: wait for where its records went
        finally:
            self._accumulator.end_flush()

    def close(self, timeout: float | None = None) -> None:
        """Deliver or fail every pending record, then stop the I/O thread.

        Waits up to ``timeout`` seconds (None: as long as it takes); after that,
        records still pending fail with :class:`~kprod.errors.ProducerClosedError`.
        Safe to call more than once; ``send()`` raises afterwards.
        """
        if not self._closed:
            self._closed = True
            self._fast_send = self._append_path = None
            _live_producers.discard(self)
            self._accumulator.close()
            self._metadata.notify_waiters()
        if self._forked:
            return
        if threading.current_thread() is self._thread:
            log.warning("close() called from a send callback: closing without waiting (as Java does)")
            self._sender.force()
            return
        if timeout is not None and timeout <= 0:
            self._sender.force()
        else:
            self._sender.initiate_close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._sender.force()
            self._thread.join()
        self._metrics_registry.close()

    def metrics(self) -> dict[MetricName, float]:
        """Every metric now, by Java's names: ``{MetricName(name, group, tags): value}``.

        Groups ``producer-metrics``, ``producer-topic-metrics`` (tag ``topic``) and
        ``producer-node-metrics`` (tag ``node-id``); see docs/metrics.md. Averages and
        maxima with nothing recorded in their windows are NaN, as in Java.
        """
        return self._metrics_registry.values()

    def statistics(self) -> dict[str, Any]:
        """The metrics nested by group (and topic or node), JSON-ready: what ``stats.callback`` gets."""
        return self._metrics_registry.snapshot()

    def partitions_for(self, topic: str) -> list[PartitionInfo]:
        """The partitions of ``topic`` (waits for metadata up to ``max.block.ms``)."""
        if self._closed or self._forked:
            self._raise_unusable()
        if topic not in self._metadata.partition_counts:
            self._wait_for_topic(topic)
        return list(self._metadata.partitions.get(topic, ()))

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Producer {self.client_id}{' closed' if self._closed else ''}>"

    # -- internals -----------------------------------------------------------------

    def _add_gauges(self, pool: MemoryPool, network: NetworkClient) -> None:
        add, metadata, metrics = self._metrics.add_gauge, self._metadata, self._metrics
        add("buffer-total-bytes", lambda: pool.total)
        add("buffer-available-bytes", lambda: pool.available)
        add("waiting-threads", lambda: pool.waiters)
        add("requests-in-flight", lambda: metrics.requests_in_flight)
        add("connection-count", network.connection_count)
        add("metadata-age", lambda: (_monotonic_ms() - metadata.last_refresh_ms) / 1000.0)

    def _raise_unusable(self) -> None:
        if self._forked or os.getpid() != self._owner_pid:
            self._forked = True
            raise ForkedProducerError(
                "This producer was created in another process (before fork()); its I/O thread does not exist "
                "here. Create a new Producer in the child process."
            )
        raise ProducerClosedError("Cannot send: the producer is closed. Create a new Producer.")

    def _build_send_path(self) -> None:
        # The compiled append (None without kprod._speedups): for serialized records, and
        # straight from send()'s arguments when nothing per-record happens in Python first.
        self._append_path = self._accumulator.send_path(
            self._metadata, keyed=not self._ignore_keys, max_request_size=self._max_request_size,
            buffer_memory=self._buffer_memory,
        )
        plain = (self._key_is_bytes and self._value_is_bytes and self._partitioner is None
                 and not self._interceptors)
        self._fast_send = self._append_path if plain else None

    def _for_asyncio(self, future_type: type[RecordFuture]) -> None:
        """Serve the asyncio producer (kprod.aio), before its first send: records get futures
        of ``future_type`` (its awaitable RecordFuture), and where send(), send_many() and
        partitions_for() would block (a topic's metadata, ``buffer.memory``) they raise
        :class:`MetadataNeeded` / :class:`MemoryNeeded` instead, so the caller can wait on
        its event loop and resume."""
        self._max_block_ms = None
        self._accumulator.future_type = future_type
        self._build_send_path()

    def _wait_for_topic(self, topic: str) -> int:
        check_topic(topic)
        self._metadata.add_topic(topic, _monotonic_ms())
        self._wakeup()
        if self._max_block_ms is None:
            raise MetadataNeeded(topic)
        deadline = _monotonic() + self._max_block_ms / 1000.0
        try:
            count = self._metadata.wait_for_topic(topic, deadline, self._wakeup)
        except KeyboardInterrupt as exc:
            raise InterruptError("Interrupted while waiting for the metadata of topic " + topic) from exc
        if count < 0:
            raise self._topic_timeout_error(topic)
        return count

    def _topic_timeout_error(self, topic: str) -> KafkaError:
        """Why ``topic`` has no metadata after max.block.ms (or the producer closed meanwhile)."""
        if self._closed:
            return ProducerClosedError("The producer was closed while waiting for topic metadata.")
        cause = self._metadata.topic_errors.get(topic)
        reason = f" The cluster said: {cause}" if cause else ""
        brokers = "" if self._metadata.brokers else " No broker answered: check bootstrap.servers and that the cluster runs."
        return KafkaTimeoutError(
            f"Topic {topic} not present in metadata after {self.config['max.block.ms']} ms (max.block.ms).{reason}{brokers} "
            "Create the topic (or enable auto-creation on the brokers), or check its name."
        )

    def _serialize(self, serializer: Any, topic: str, data: Any, what: str, index: int | None = None) -> bytes | None:
        try:
            result = serializer(topic, data)
        except SerializationError as exc:
            if exc.field is None:
                exc.field = what
            if index is not None and exc.index is None:
                exc.index = index
                exc.args = (f"Record {index} of send_many(): {exc} Nothing was sent.",)
            raise
        except Exception as exc:
            where = f"record {index} of send_many() to" if index is not None else "a record for"
            raise SerializationError(
                f"Could not serialize the {what} of {where} topic {topic} "
                f"({type(data).__name__}): {exc}. Check {what}.serializer. Nothing was sent.",
                topic=topic, is_key=what == "key", field=what, index=index,
            ) from exc
        return check_value_bytes(topic, result, what, index)

    def _serialize_many(self, topic: str, items: Sequence[Any], serializer: Any, is_bytes: bool,
                        what: str) -> tuple[Sequence[bytes | None], int]:
        """Serialized ``items`` (the sequence itself when all are bytes or None) and the longest's length."""
        if is_bytes:
            bad, longest = scan_bytes(items)
            if bad < 0:
                return items, longest
        out: list[bytes | None] = []
        longest = 0
        for index, item in enumerate(items):
            if is_bytes and (item is None or type(item) is bytes):
                data = item
            else:
                data = self._serialize(serializer, topic, item, what, index)
            if data is not None and len(data) > longest:
                longest = len(data)
            out.append(data)
        return out, longest

    def _custom_partition(self, topic: str, key: Any, key_bytes: bytes | None, value: Any, value_bytes: bytes | None, num_partitions: int) -> int:
        assert self._partitioner is not None
        partition = self._partitioner.partition(topic, key, key_bytes, value, value_bytes, _ClusterView(self._metadata))
        if type(partition) is not int or not 0 <= partition < num_partitions:
            check_partition(topic, partition, num_partitions, by="partitioner.class")  # raises
        return partition

    def _intercept(self, topic: str, value: Any, key: Any, partition: int | None, timestamp: int | None,
                   headers: Sequence[Header] | None, callback: SendCallback | None) -> tuple[Any, ...]:
        record = ProducerRecord(topic, value, key, partition, timestamp, headers)
        for interceptor in self._interceptors:
            try:
                record = interceptor.on_send(record)
            except Exception:
                log.exception("Interceptor %r failed in on_send; the record goes on unchanged", interceptor)
        interceptors = self._interceptors
        user_callback = callback

        def acknowledged(metadata: Any, exception: BaseException | None) -> None:
            for interceptor in interceptors:
                try:
                    interceptor.on_acknowledgement(metadata, exception)
                except Exception:
                    log.exception("Interceptor %r failed in on_acknowledgement", interceptor)
            if user_callback is not None:
                user_callback(metadata, exception)

        return (*record, acknowledged)


class _ClusterView:
    """What a custom partitioner may ask about the cluster."""

    __slots__ = ("_metadata",)

    def __init__(self, metadata: ClusterMetadata) -> None:
        self._metadata = metadata

    def partition_count(self, topic: str) -> int:
        return self._metadata.partition_counts.get(topic, 0)

    def partitions_for_topic(self, topic: str) -> list[PartitionInfo]:
        return list(self._metadata.partitions.get(topic, ()))

    def available_partitions_for_topic(self, topic: str) -> list[int]:
        return list(self._metadata.available.get(topic, ()))


def _moved_to(batch: ProducerBatch) -> list[ProducerBatch]:
    """The batches a split batch's records moved to (none if it was not split)."""
    if not batch.split:
        return []
    return list({id(f._batch): f._batch for f in batch.futures}.values())


def _as_sequence(name: str, items: Any, length: int | None) -> Sequence[Any]:
    """send_many()'s ``values`` / ``keys`` / ... as a list or tuple (as long as ``values``)."""
    if type(items) is not list and type(items) is not tuple:
        if isinstance(items, (str, bytes, bytearray, memoryview)) or not hasattr(items, "__iter__"):
            raise InvalidArgumentTypeError(
                f"send_many() takes {name} as a sequence with one item per record, not {type(items).__name__}.",
                field=name,
            )
        items = list(items)
    if length is not None and len(items) != length:
        raise InvalidArgumentError(
            f"send_many() got {len(items)} {name} for {length} values: give one per record, or None.", field=name)
    return items  # type: ignore[no-any-return]


_JMX_REPORTER = "org.apache.kafka.common.metrics.JmxReporter"


def _stats_callback(spec: Any) -> Any:
    if spec is not None and not callable(spec):
        raise ConfigError(f"stats.callback must be a callable taking the statistics dict, not {spec!r}.")
    return spec


def _load_interceptors(specs: Sequence[Any], cfg: ProducerConfig) -> list[Any]:
    interceptors = []
    for spec in specs or ():
        if isinstance(spec, str):
            module_name, _, attr = spec.rpartition(".")
            if not module_name:
                raise ConfigError(f"interceptor.classes entry {spec!r}: give 'package.module.ClassName'.")
            try:
                import importlib

                spec = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"interceptor.classes entry {spec!r} could not be loaded: {exc}.") from exc
        interceptor = spec() if isinstance(spec, type) else spec
        if not hasattr(interceptor, "on_send") or not hasattr(interceptor, "on_acknowledgement"):
            raise ConfigError(f"interceptor {interceptor!r} needs on_send(record) and on_acknowledgement(metadata, exception).")
        if hasattr(interceptor, "configure"):
            interceptor.configure(cfg.originals)
        interceptors.append(interceptor)
    return interceptors


def _after_fork_in_child() -> None:
    for producer in list(_live_producers):
        producer._forked = True
        producer._fast_send = producer._append_path = None


def _close_at_exit() -> None:
    for producer in list(_live_producers):
        try:
            producer.close()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            log.exception("Closing %r at exit failed", producer)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_at_exit)
