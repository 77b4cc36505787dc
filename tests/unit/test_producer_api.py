"""The public Producer API where no broker is needed: configuration errors, the accepted
value forms, client.id, lifecycle after close(), argument checks and the record future.

Producers here point at a loopback port nobody listens on; they never get metadata.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kprod import Producer, ProducerRecord, RecordFuture, RecordMetadata
from kprod.errors import ConfigError, KafkaTimeoutError, ProducerClosedError
from kprod.producer.batch import ProducerBatch
from kprod.protocol.records import RecordBatchBuilder


@pytest.fixture(scope="module")
def dead_address() -> Iterator[str]:
    """host:port of a bound, non-listening socket: connections are refused at once."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{placeholder.getsockname()[1]}"


@pytest.fixture
def producer(dead_address: str) -> Iterator[Producer]:
    p = Producer({"bootstrap.servers": dead_address, "max.block.ms": 300})
    yield p
    p.close(timeout=5)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "keys", "message"),
    [
        ({"lingr.ms": 5}, ("lingr.ms",), "Did you mean 'linger.ms'"),
        ({"acks": "most"}, ("acks",), "expected all, -1, 0 or 1"),
        ({"acks": 2}, ("acks",), "acks=2"),
        ({"linger.ms": "abc"}, ("linger.ms",), "expected an integer"),
        ({"batch.size": -1}, ("batch.size",), "batch.size=-1"),
        ({"compression.type": "brotli"}, ("compression.type",), "none, gzip, snappy, lz4, zstd"),
        ({"enable.idempotence": True, "acks": 1}, ("enable.idempotence", "acks"), "needs acks=all"),
        ({"enable.idempotence": "true", "retries": 0}, ("enable.idempotence", "retries"), "retries"),
        (
            {"enable.idempotence": True, "max.in.flight.requests.per.connection": 6},
            ("enable.idempotence", "max.in.flight.requests.per.connection"),
            "at most 5",
        ),
        (
            {"delivery.timeout.ms": 1000, "linger.ms": 500, "request.timeout.ms": 600},
            ("delivery.timeout.ms", "linger.ms", "request.timeout.ms"),
            "must be at least linger.ms + request.timeout.ms",
        ),
        ({"key.serializer": "nope"}, ("key.serializer",), "serializer"),
        ({"bootstrap.servers": ""}, ("bootstrap.servers",), "bootstrap.servers is required"),
        ({"bootstrap.servers": "nohostport"}, ("bootstrap.servers",), "host:port"),
        ({"max.block.ms": -5}, ("max.block.ms",), "max.block.ms=-5"),
        ({"ssl.engine.factory.class": "com.example.F"}, ("ssl.engine.factory.class",), "not supported"),
        ({"security.protocol": "SSL", "ssl.keystore.location": "/nonexistent/k.pem"}, ("ssl.keystore.location",), "cannot be read"),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}, ("sasl.username", "sasl.password", "sasl.jaas.config"), "needs a user name"),
    ],
)
def test_bad_config_raises_config_error_naming_the_keys(
    dead_address: str, config: dict[str, Any], keys: tuple[str, ...], message: str
) -> None:
    conf: dict[str, Any] = {"bootstrap.servers": dead_address}
    conf.update(config)
    threads = threading.active_count()
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        Producer(conf)
    assert info.value.keys == keys
    assert isinstance(info.value, ValueError)
    assert threading.active_count() == threads, "a failed constructor left an I/O thread behind"


def test_missing_config_raises() -> None:
    with pytest.raises(ConfigError, match="bootstrap.servers is required"):
        Producer()


def test_properties_file_strings_and_python_values_are_both_accepted(dead_address: str) -> None:
    with Producer({"bootstrap.servers": dead_address, "acks": "1", "linger.ms": "7", "retries": "3",
                   "enable.idempotence": "false", "compression.type": "zstd"}) as p:
        assert (p.config["acks"], p.config["linger.ms"], p.config["retries"]) == (1, 7, 3)
        assert p.config["enable.idempotence"] is False and p._idempotence is None
    with Producer({"bootstrap.servers": [dead_address], "acks": -1, "linger.ms": 7}) as p:
        assert p.config["acks"] == -1 and p._idempotence is not None


def test_keyword_overrides_use_underscores(dead_address: str) -> None:
    with Producer({"bootstrap.servers": dead_address}, linger_ms=9, batch_size=1234) as p:
        assert (p.config["linger.ms"], p.config["batch.size"]) == (9, 1234)


def test_idempotence_defaults_on_and_turns_off_silently_for_a_conflicting_key(dead_address: str) -> None:
    with Producer({"bootstrap.servers": dead_address}) as p:
        assert p.config["acks"] == -1 and p._idempotence is not None
    for conflict in ({"acks": 1}, {"acks": "0"}, {"retries": 0}):
        with Producer({"bootstrap.servers": dead_address, **conflict}) as p:
            assert p._idempotence is None, conflict
    # Kafka 4.x made this one an error even when idempotence is only defaulted.
    with pytest.raises(ConfigError, match="enable.idempotence is true by default") as info:
        Producer({"bootstrap.servers": dead_address, "max.in.flight.requests.per.connection": 6})
    assert "max.in.flight.requests.per.connection" in info.value.keys
    with Producer({"bootstrap.servers": dead_address, "max.in.flight.requests.per.connection": 6,
                   "enable.idempotence": False}) as p:
        assert p._idempotence is None


def test_client_id_defaults_to_a_numbered_producer_name_and_can_be_set(dead_address: str) -> None:
    with Producer({"bootstrap.servers": dead_address}) as first, Producer({"bootstrap.servers": dead_address}) as second:
        assert first.client_id.rsplit("-", 1)[0] in ("producer", "kprod-producer")
        numbers = [int(p.client_id.rsplit("-", 1)[1]) for p in (first, second)]
        assert numbers[1] > numbers[0]
        assert first.client_id in repr(first)
    with Producer({"bootstrap.servers": dead_address, "client.id": "billing"}) as named:
        assert named.client_id == "billing" and named.config["client.id"] == "billing"


# -- lifecycle ------------------------------------------------------------------------------------


def test_send_after_close_raises_at_once(producer: Producer) -> None:
    producer.close()
    assert not producer._thread.is_alive()
    begin = time.monotonic()
    with pytest.raises(ProducerClosedError, match="closed"):
        producer.send("t", b"v")
    with pytest.raises(ProducerClosedError):
        producer.send(ProducerRecord("t", b"v"))
    with pytest.raises(ProducerClosedError):
        producer.partitions_for("t")
    assert time.monotonic() - begin < 0.1
    producer.close()  # again: harmless
    producer.flush()  # nothing pending: returns
    assert "closed" in repr(producer)


def test_context_manager_closes(dead_address: str) -> None:
    with Producer({"bootstrap.servers": dead_address}) as p:
        thread = p._thread
        assert thread.is_alive()
    assert not thread.is_alive()
    with pytest.raises(ProducerClosedError):
        p.send("t", b"v")


def test_close_with_a_timeout_returns_promptly_when_nothing_is_pending(dead_address: str) -> None:
    p = Producer({"bootstrap.servers": dead_address})
    begin = time.monotonic()
    p.close(timeout=0)
    assert time.monotonic() - begin < 2.0 and not p._thread.is_alive()


def test_unknown_topic_without_any_broker_times_out_after_max_block_ms(producer: Producer) -> None:
    begin = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match=r"Topic orders not present in metadata after 300 ms.*No broker answered"):
        producer.send("orders", b"v")
    assert 0.29 <= time.monotonic() - begin < 3.0
    with pytest.raises(KafkaTimeoutError, match="orders"):
        producer.partitions_for("orders")


def test_bad_arguments_are_refused_before_anything_is_queued(producer: Producer) -> None:
    with pytest.raises(TypeError, match="topic name"):
        producer.send(123, b"v")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid topic '': a topic name is 1 to 249 characters"):
        producer.send("", b"v")
    assert producer._accumulator.queued_batches() == []


def test_flush_with_nothing_sent_returns_at_once(producer: Producer) -> None:
    begin = time.monotonic()
    producer.flush(timeout=1)
    assert time.monotonic() - begin < 0.5


# -- the record future ---------------------------------------------------------------------------------


def _batch(records: int) -> tuple[ProducerBatch, list[RecordFuture]]:
    builder = RecordBatchBuilder()
    batch = ProducerBatch("t", 2, builder, 0.0, 0)
    for i in range(records):
        builder.append(1000 + i, b"k", b"value")
        batch.futures.append(RecordFuture(batch, i, 1000 + i, 1, 5))
    return batch, batch.futures


def test_record_future_behaves_like_a_concurrent_future() -> None:
    batch, (first, second) = _batch(2)
    assert not first.done() and first.running() and not first.cancelled()
    assert first.cancel() is False
    with pytest.raises(TimeoutError, match="t-2 was not acknowledged within 0.01s"):
        first.result(timeout=0.01)
    seen: list[Any] = []
    first.add_done_callback(seen.append)
    second.add_callback(lambda md, exc: seen.append((md, exc)))
    waiter_result: list[RecordMetadata] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(second.result()))
    waiter.start()
    batch.succeed(500, -1)
    waiter.join(5)
    assert first.done() and not first.running()
    assert first.result(0) == RecordMetadata("t", 2, 500, 1000, 1, 5)
    assert waiter_result == [RecordMetadata("t", 2, 501, 1001, 1, 5)]
    assert first.exception(0) is None
    assert seen == [first, (RecordMetadata("t", 2, 501, 1001, 1, 5), None)]
    late: list[Any] = []
    first.add_done_callback(late.append)  # already done: runs now
    assert late == [first]


def test_record_future_of_a_failed_batch_raises_its_error() -> None:
    batch, (future,) = _batch(1)
    error = KafkaTimeoutError("expired")
    calls: list[Any] = []
    future.add_callback(lambda md, exc: calls.append((md, exc)))
    batch.fail(error)
    assert future.exception(0) is error
    with pytest.raises(KafkaTimeoutError, match="expired"):
        future.result(0)
    assert calls == [(None, error)]
    future.add_callback(lambda md, exc: calls.append((md, exc)))
    assert calls[-1] == (None, error)


def test_log_append_time_replaces_the_create_time_in_metadata() -> None:
    batch, (future,) = _batch(1)
    batch.succeed(7, 1_700_000_000_123)
    assert future.result(0).timestamp == 1_700_000_000_123
