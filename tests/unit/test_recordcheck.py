"""The one record check (producer/recordcheck.py): what send() and send_many() refuse, with which
kprod error naming which field (and record index), and that a refused call changes nothing.

Every test runs on an offline producer (records stay in the accumulator) twice: with the
compiled send path and bulk append (kprod._speedups), and on the Python path with the
pure-Python appends. "Changes nothing" is checked on everything a send can change: the
queued batches (record bytes, futures, callbacks), the memory pool, the sticky partitioner,
the incomplete set and the topics in metadata; before each refusal the producer holds open
batches and a drawn sticky partition, so a change would show.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from record_cases import BASE_TS, offline_producer, state

from kprod import Producer, _native
from kprod.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidTopicError,
    InvalidTopicNameError,
    KafkaError,
    RecordTooLargeError,
    SerializationError,
)
from kprod.producer import accumulator as accumulator_module
from kprod.producer import fastpath
from kprod.producer.batch import ProducerBatch, RecordFuture
from kprod.producer.sticky import StickyPartitioner
from kprod.protocol.records import RecordBatchBuilder, read_batches

needs_active = pytest.mark.skipif(_native.speedups is None, reason="kprod._speedups is not in use")


@pytest.fixture(scope="module")
def dead_address() -> Iterator[str]:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{placeholder.getsockname()[1]}"


@pytest.fixture(params=["compiled", "python"])
def producer(request: pytest.FixtureRequest, dead_address: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Producer]:
    """An offline producer with open batches on a-0, a-1 and a drawn sticky partition for a and b."""
    monkeypatch.setattr("kprod.client._time_ns", lambda: BASE_TS * 1_000_000)
    if request.param == "compiled" and _native.speedups is None:
        pytest.skip("kprod._speedups is not in use")
    p = offline_producer(dead_address)
    if request.param == "python":
        p._fast_send = p._append_path = None
        monkeypatch.setattr(accumulator_module, "_append_many", fastpath._append_many_py)
        monkeypatch.setattr(accumulator_module, "_append_record", fastpath._append_record_py)
    try:
        for partition in (0, 1):
            p.send("a", b"open", partition=partition)
        p.send("a", b"sticky")
        p.send_many("b", [b"x", b"y"])
        assert len(state(p)["queues"]) >= 3 and state(p)["sticky"][0].keys() == {"a", "b"}
        yield p
    finally:
        p.close(0)


SEND_REFUSALS: list[tuple[dict[str, Any], type[KafkaError], str, tuple[type[Exception], ...]]] = [
    ({"topic": 5}, InvalidArgumentTypeError, "topic", (TypeError, ValueError)),
    ({"topic": b"a"}, InvalidArgumentTypeError, "topic", (TypeError,)),
    ({"topic": ""}, InvalidTopicNameError, "topic", (ValueError, InvalidTopicError)),
    ({"topic": "bad topic"}, InvalidTopicNameError, "topic", (ValueError, InvalidTopicError)),
    ({"topic": "x" * 250}, InvalidTopicNameError, "topic", (ValueError, InvalidTopicError)),
    ({"value": "text"}, SerializationError, "value", ()),
    ({"value": 5}, SerializationError, "value", ()),
    ({"key": 5}, SerializationError, "key", ()),
    ({"key": "k"}, SerializationError, "key", ()),
    # defect 1: the int header value was accepted once a bytearray came before it (b"\0" * 5 on the wire)
    ({"headers": [("a", bytearray(b"x")), ("b", 5)]}, SerializationError, "headers", ()),
    ({"headers": [("a", memoryview(b"x")), ("b", "text")]}, SerializationError, "headers", ()),
    # defect 1: a header key 7 raised a bare TypeError ("object of type 'int' has no len()")
    ({"headers": [("a", bytearray(b"x")), (7, b"x")]}, SerializationError, "headers", ()),
    ({"headers": [(7, b"x")]}, SerializationError, "headers", ()),
    ({"headers": [("\ud800", b"x")]}, SerializationError, "headers", ()),
    ({"headers": [("h",)]}, SerializationError, "headers", ()),
    ({"headers": {"h": b"x"}}, SerializationError, "headers", ()),
    ({"headers": "hv"}, SerializationError, "headers", ()),
    ({"partition": 6}, InvalidArgumentError, "partition", (ValueError,)),
    ({"partition": -1}, InvalidArgumentError, "partition", (ValueError,)),
    ({"partition": True}, InvalidArgumentTypeError, "partition", (ValueError, TypeError)),
    ({"partition": 1.0}, InvalidArgumentTypeError, "partition", (ValueError,)),
    ({"partition": 2**64}, InvalidArgumentError, "partition", (ValueError,)),
    # defect 2: 2**63 was accepted by the pure-Python path and then killed the I/O thread
    ({"timestamp": 2**63}, InvalidArgumentError, "timestamp", (ValueError,)),
    ({"timestamp": -1}, InvalidArgumentError, "timestamp", (ValueError,)),
    ({"timestamp": True}, InvalidArgumentTypeError, "timestamp", (ValueError,)),
    ({"timestamp": 1.5}, InvalidArgumentTypeError, "timestamp", (ValueError,)),
    ({"value": b"x" * 30_000}, RecordTooLargeError, "", ()),
]


@pytest.mark.parametrize(("change", "error", "field", "also"), SEND_REFUSALS,
                         ids=[f"{c}"[:40] for c, *_ in SEND_REFUSALS])
@pytest.mark.parametrize("callback", [False, True])
def test_send_refuses_each_bad_field_and_changes_nothing(
        producer: Producer, change: dict[str, Any], error: type[KafkaError], field: str,
        also: tuple[type[Exception], ...], callback: bool) -> None:
    kwargs: dict[str, Any] = {"topic": "a", "value": b"v", **change}
    if callback:
        kwargs["callback"] = lambda metadata, exception: None
    before = state(producer)
    with pytest.raises(error) as info:
        producer.send(**kwargs)
    assert type(info.value) is error
    assert all(isinstance(info.value, kind) for kind in also)
    if field:
        assert info.value.field == field  # type: ignore[attr-defined]
        assert info.value.index is None  # type: ignore[attr-defined]
    assert state(producer) == before


MANY_REFUSALS: list[tuple[dict[str, Any], type[KafkaError], str, int | None]] = [
    ({"topic": 5}, InvalidArgumentTypeError, "topic", None),
    ({"topic": "bad topic"}, InvalidTopicNameError, "topic", None),
    ({"values": [b"a", "s", b"c"]}, SerializationError, "value", 1),
    ({"keys": [b"k", b"k", 5]}, SerializationError, "key", 2),
    ({"headers": [None, [("a", bytearray(b"x")), ("b", 5)], None]}, SerializationError, "headers", 1),
    ({"headers": [[(7, b"x")], None, None]}, SerializationError, "headers", 0),
    ({"partition": 6}, InvalidArgumentError, "partition", None),
    ({"partition": True}, InvalidArgumentTypeError, "partition", None),
    ({"timestamps": [None, None, 2**63]}, InvalidArgumentError, "timestamp", 2),
    ({"timestamps": [None, -1, None]}, InvalidArgumentError, "timestamp", 1),
    ({"timestamps": [1.5, None, None]}, InvalidArgumentTypeError, "timestamp", 0),
    ({"values": [b"a", b"b", b"x" * 30_000]}, RecordTooLargeError, "", 2),
]


@pytest.mark.parametrize(("change", "error", "field", "index"), MANY_REFUSALS,
                         ids=[f"{c}"[:40] for c, *_ in MANY_REFUSALS])
def test_send_many_refuses_each_bad_field_naming_the_record_and_changes_nothing(
        producer: Producer, change: dict[str, Any], error: type[KafkaError], field: str, index: int | None) -> None:
    kwargs: dict[str, Any] = {"topic": "a", "values": [b"a", b"b", b"c"], "keys": [b"1", None, b"3"], **change}
    before = state(producer)
    with pytest.raises(error) as info:
        producer.send_many(**kwargs)
    assert type(info.value) is error
    if field:
        assert info.value.field == field  # type: ignore[attr-defined]
        assert info.value.index == index  # type: ignore[attr-defined]
    if index is not None:
        assert f"record {index} of send_many()" in str(info.value).lower()
    assert state(producer) == before


def _records_of(batch: ProducerBatch) -> list[Any]:
    copy = RecordBatchBuilder()
    copy._buf = bytearray(batch.builder._buf)  # read the open batch without closing it
    copy._count = batch.builder._count
    copy._size = batch.builder._size
    copy._base_ts = batch.builder._base_ts
    copy._max_ts = batch.builder._max_ts
    return next(read_batches(copy.build())).records()


def test_bytes_like_header_values_are_copied_to_bytes_and_edge_timestamps_are_accepted(producer: Producer) -> None:
    value = bytearray(b"x")
    producer.send("a", b"v1", partition=2, headers=[("a", value), ["b", memoryview(b"yz")], ("c", None)],
                  timestamp=2**63 - 1)
    producer.send("a", b"v2", partition=2, timestamp=0)
    producer.send_many("a", [b"v3"], partition=2, headers=[[("d", bytearray(b"w"))]], timestamps=[BASE_TS])
    value[0] = ord("!")  # a later change by the caller does not reach the queued record
    records = _records_of(producer._accumulator._partitions["a"][2].queue[-1])
    assert [(r.value, r.timestamp, r.headers) for r in records] == [
        (b"v1", 2**63 - 1, [("a", b"x"), ("b", b"yz"), ("c", None)]),
        (b"v2", 0, []),
        (b"v3", BASE_TS, [("d", b"w")]),
    ]


# -- the compiled path: all or nothing (defect 4) ------------------------------------------------------


class _RefusingBatch(ProducerBatch):
    """A batch whose callback list cannot be read once armed: a step of the append that fails."""

    __slots__ = ("_callbacks", "armed")

    def __init__(self) -> None:
        self.armed = False
        super().__init__("t", 0, RecordBatchBuilder(), 0.0, 0)

    @property  # type: ignore[override]
    def callbacks(self) -> Any:
        if self.armed:
            raise RuntimeError("cannot read the callbacks")
        return self._callbacks

    @callbacks.setter
    def callbacks(self, value: Any) -> None:
        self._callbacks = value


def _batch_state(batch: ProducerBatch) -> tuple[Any, ...]:
    return (bytes(batch.builder._buf), batch.builder._count, batch.builder._size, batch.builder._max_ts,
            batch.builder._base_ts, [(f._index, f._timestamp) for f in batch.futures],
            None if batch.callbacks is None else [(f._index, java) for f, _, java in batch.callbacks], batch.full)


@pytest.mark.parametrize("append", [fastpath.append_record, fastpath._append_record_py], ids=["in use", "python"])
def test_an_append_whose_callback_cannot_be_registered_raises_and_changes_nothing(append: Callable[..., Any]) -> None:
    """Defect 4: the compiled append encoded the record and made its future before it looked at the
    callback list, so an error there reached the caller with the record still in the batch."""
    batch = _RefusingBatch()
    batch.builder.append(BASE_TS, None, b"first")
    batch.futures.append(RecordFuture(batch, 0, BASE_TS, -1, 5))
    assert append(RecordFuture, batch, BASE_TS + 1, None, b"a" * 10, None, print, 10_000) is not None
    batch.armed = True
    before = (bytes(batch.builder._buf), batch.builder._count, batch.builder._size, len(batch.futures))
    with pytest.raises(RuntimeError, match="cannot read the callbacks"):
        append(RecordFuture, batch, BASE_TS + 2, b"k", b"b" * 900, [("h", b"x")], print, 10_000)
    assert (bytes(batch.builder._buf), batch.builder._count, batch.builder._size, len(batch.futures)) == before
    batch.armed = False
    future = append(RecordFuture, batch, BASE_TS + 2, b"k", b"b" * 900, [("h", b"x")], print, 10_000)
    assert future is not None and future._index == 2 and batch.callbacks[-1][0] is future


@pytest.mark.parametrize("append", [fastpath.append_record, fastpath._append_record_py], ids=["in use", "python"])
def test_an_append_to_a_completed_batch_raises_and_changes_nothing(append: Callable[..., Any]) -> None:
    batch = ProducerBatch("t", 0, RecordBatchBuilder(), 0.0, 0)
    batch.builder.append(BASE_TS, None, b"first")
    batch.futures.append(RecordFuture(batch, 0, BASE_TS, -1, 5))
    batch.callbacks = None  # completing: no callback can be added any more
    before = _batch_state(batch)
    with pytest.raises(RuntimeError, match="already complete"):
        append(RecordFuture, batch, BASE_TS, None, b"v", None, print, 10_000)
    assert _batch_state(batch) == before


class _ArmedSticky(StickyPartitioner):
    """Raises from ``_next`` (drawing the next sticky partition) once armed."""

    __slots__ = ("armed",)

    def _next(self, topic: str, num_partitions: int, available: tuple[int, ...] | None, previous: int) -> int:
        if getattr(self, "armed", False):
            raise RuntimeError("cannot draw the next sticky partition")
        return super()._next(topic, num_partitions, available, previous)


@needs_active
def test_the_compiled_send_path_is_all_or_nothing_around_the_sticky_draw(dead_address: str) -> None:
    """Defect 4: the compiled path drew the next sticky partition after the record was in the batch, and
    when that raised, the caller got the exception with the record queued (a retry sends it twice).
    Now the record is taken out again and the partitioner's entries put back."""
    producer = offline_producer(dead_address)
    try:
        accumulator = producer._accumulator
        sticky = _ArmedSticky(1000, adaptive=False)  # its budget ends before the batch (batch.size 4096) fills
        sticky._random.seed(1)
        accumulator.sticky = sticky
        path = accumulator.send_path(producer._metadata, keyed=True, max_request_size=20_000, buffer_memory=1 << 25)
        producer.send("a", b"open")  # the Python path draws the sticky partition and opens its batch
        sticky.armed = True
        accepted = 0
        while True:
            before = state(producer)
            try:
                future = path("a", b"v" * 300, None, None, BASE_TS, None, None)
            except RuntimeError as exc:
                assert str(exc) == "cannot draw the next sticky partition"
                assert state(producer) == before, "the compiled path raised with the record queued"
                break
            assert future is not None and state(producer) != before
            accepted += 1
            assert accepted < 10, "the sticky budget was never reached"
        assert accepted == 2  # 36 + 3 * 332 estimated bytes reach the 1000-byte budget
        sticky.armed = False
        current = sticky._current["a"]
        future = path("a", b"v" * 300, None, None, BASE_TS, None, None)
        assert future is not None and future._batch.partition == current and sticky._produced["a"] == 0
    finally:
        producer.close(0)
