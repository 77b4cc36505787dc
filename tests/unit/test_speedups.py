"""The compiled accelerator (kprod._speedups) against its pure-Python reference, byte for byte.

Every compiled function is run next to its Python twin on the same inputs (fixed vectors,
varint boundaries, random records) and the outputs are compared: murmur2 and keyed
partitioning, the record encoder (buffer bytes, counters, returned sizes, errors), the
accumulator's append and bulk append, and ``Producer.send``'s compiled path against the
Python path on two offline producers. A subprocess with ``KPROD_NO_SPEEDUPS=1`` checks
that the switch selects the pure-Python code and that it builds the same batch bytes.

Without a built extension these tests are skipped, except under CI (``CI=true``), where a
missing extension fails: the install there has gcc and must build it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from kprod import Producer, ProducerRecord, _native
from kprod.partitioner import _murmur2_py, _partitions_for_keys_py
from kprod.producer import fastpath
from kprod.producer.batch import ProducerBatch, RecordFuture
from kprod.producer.metadata import ClusterMetadata
from kprod.protocol.messages import ApiKey, ErrorCode, response_module
from kprod.protocol.records import RecordBatchBuilder, _RecordsCore, read_batches
from kprod.protocol.responses import metadata_result

try:
    compiled: ModuleType | None = importlib.import_module("kprod._speedups")
except ImportError:
    compiled = None

needs_compiled = pytest.mark.skipif(compiled is None, reason="kprod._speedups is not built (no C compiler?)")
# The producer-level parity needs RecordFuture / RecordBatchBuilder built on the compiled bases.
needs_active = pytest.mark.skipif(_native.speedups is None, reason="kprod._speedups is not in use")

BASE_TS = 1_700_000_000_000
# Lengths around every varint width change (ZigZag: 1 byte up to 63, 2 up to 8191, 3 up to 1048575).
BOUNDARY_LENGTHS = [0, 1, 62, 63, 64, 65, 127, 128, 8190, 8191, 8192, 8193, 16383, 16384, 70000]


def test_the_extension_is_built_under_ci() -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and not _native.disabled_by_env:
        assert compiled is not None, "CI installs with gcc present: kprod._speedups must have been built"
        assert _native.speedups is compiled


# -- murmur2 -----------------------------------------------------------------------------------------


@needs_compiled
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
        (b"", 275646681),
    ],
)
def test_murmur2_java_vectors_in_both(key: bytes, expected: int) -> None:
    assert compiled is not None
    assert compiled.murmur2(key) == _murmur2_py(key) == expected


@needs_compiled
def test_murmur2_every_length_and_buffer_type_matches() -> None:
    assert compiled is not None
    rng = random.Random(7)
    for length in range(0, 600):
        key = rng.randbytes(length)
        expected = _murmur2_py(key)
        assert compiled.murmur2(key) == expected, length
        assert compiled.murmur2(bytearray(key)) == expected
        assert compiled.murmur2(memoryview(key)) == expected
    with pytest.raises(TypeError):
        compiled.murmur2("text")


@needs_compiled
def test_partitions_for_keys_matches_with_null_keys() -> None:
    assert compiled is not None
    rng = random.Random(11)
    keys = [None if rng.random() < 0.2 else rng.randbytes(rng.randrange(0, 40)) for _ in range(3000)]
    for n in (1, 2, 6, 7, 1000):
        expected = _partitions_for_keys_py(keys, n)
        assert compiled.partitions_for_keys(keys, n) == expected
        assert compiled.partitions_for_keys(tuple(keys), n) == expected
    assert expected.count(-1) == keys.count(None) > 0
    for impl in (compiled.partitions_for_keys, _partitions_for_keys_py):
        with pytest.raises(ValueError, match="num_partitions must be at least 1, got 0"):
            impl([b"k"], 0)


@needs_compiled
def test_scan_bytes_matches() -> None:
    assert compiled is not None
    cases: list[list[Any]] = [
        [], [None], [b""], [b"abc", None, b"x" * 300], [b"ab", "text", b"x" * 500], [None, bytearray(b"a")],
        [b"a", 5], [b"x" * 10, b"y" * 20, None],
    ]
    for items in cases:
        assert compiled.scan_bytes(items) == fastpath._scan_bytes_py(items), items


# -- the record encoder ---------------------------------------------------------------------------


Record = tuple[int, "bytes | None", "bytes | None", "list[tuple[str, bytes | None]] | None"]


def _random_record(rng: random.Random, base: int) -> Record:
    def blob() -> bytes | None:
        roll = rng.random()
        if roll < 0.15:
            return None
        if roll < 0.25:
            return b""
        if roll < 0.35:
            return rng.randbytes(rng.choice(BOUNDARY_LENGTHS))
        return rng.randbytes(rng.randrange(0, 300))

    headers: list[tuple[str, bytes | None]] | None = None
    if rng.random() < 0.4:
        headers = []
        for _ in range(rng.choice([0, 1, 2, 3, 9, 70])):
            name = rng.choice(["h", "", "trace-id", "ключ", "x" * rng.choice([1, 63, 64, 200])])
            headers.append((name, None if rng.random() < 0.3 else rng.randbytes(rng.choice([0, 5, 63, 64, 9000]))))
    delta = rng.choice([0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, rng.randrange(-(1 << 40), 1 << 40)])
    return base + delta, blob(), blob(), headers


def _state(core: Any) -> tuple[Any, ...]:
    return (bytes(core._buf), core._count, core._size, core._max_ts, core._base_ts)


def _pair(base: int | None = None, max_size: int | None = None) -> tuple[Any, Any]:
    assert compiled is not None
    return compiled.RecordsCore(base, max_size), _RecordsCore(base, max_size)


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_random_records_encode_to_the_same_bytes(seed: int) -> None:
    rng = random.Random(seed)
    base = rng.choice([BASE_TS, 0, 1 << 50])
    c_core, py_core = _pair(base if seed % 2 else None)
    for _ in range(400):
        timestamp, key, value, headers = _random_record(rng, base)
        assert c_core.append(timestamp, key, value, headers) == py_core.append(timestamp, key, value, headers)
    assert _state(c_core) == _state(py_core)
    assert c_core._count == 400


@needs_compiled
def test_varint_boundaries_of_lengths_and_offset_deltas() -> None:
    c_core, py_core = _pair()
    for length in BOUNDARY_LENGTHS:
        for record in ((BASE_TS, b"k" * length, b"v"), (BASE_TS, None, b"v" * length), (BASE_TS, b"", None)):
            assert c_core.append(*record) == py_core.append(*record)
    # offset deltas cross 63/64 and 8191/8192 (ZigZag of the record count)
    for i in range(8300):
        assert c_core.append(BASE_TS + (i % 3) - 1, None, b"") == py_core.append(BASE_TS + (i % 3) - 1, None, b"")
    assert _state(c_core) == _state(py_core)


@needs_compiled
def test_extreme_timestamp_deltas() -> None:
    for base, later in [(0, (1 << 62)), (1 << 62, 0), (-(1 << 62), (1 << 62) - 1), (5, -(1 << 62))]:
        c_core, py_core = _pair(base)
        assert c_core.append(later, None, b"v") == py_core.append(later, None, b"v")
        assert c_core.append(base, b"k", None) == py_core.append(base, b"k", None)
        assert _state(c_core) == _state(py_core)
    # a delta past a signed 64-bit varlong is refused by both, and changes nothing
    for core in _pair(-(1 << 63)):
        with pytest.raises(ValueError, match="does not fit a Kafka varlong"):
            core.append((1 << 63) - 1, None, b"v")
        assert core._count == 0


@needs_compiled
def test_bytes_like_keys_values_and_header_values() -> None:
    c_core, py_core = _pair()
    for data in (bytearray(b"abc"), memoryview(b"defg"), b"hij"):
        assert c_core.append(BASE_TS, data, data, [("h", data)]) == py_core.append(BASE_TS, data, data, [("h", data)])
    assert c_core.append(BASE_TS, None, None, (("t", None), ["l", b"1"])) == py_core.append(
        BASE_TS, None, None, (("t", None), ["l", b"1"]))
    assert _state(c_core) == _state(py_core)


@needs_compiled
def test_max_size_refusals_match_and_leave_no_trace() -> None:
    for max_size in (61, 61 + 24, 61 + 250, 61 + 1009):
        c_core, py_core = _pair(None, max_size)
        rng = random.Random(max_size)
        for _ in range(30):
            value = rng.randbytes(rng.choice([1, 5, 100, 1000]))
            assert c_core.append(BASE_TS, None, value) == py_core.append(BASE_TS, None, value)
            assert _state(c_core) == _state(py_core)
        assert 1 <= c_core._count < 30


@needs_compiled
@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((None, None, b"v"), TypeError, "record timestamp must be an int"),
        ((1.5, None, b"v"), TypeError, "record timestamp must be an int"),
        ((BASE_TS, None, "text"), TypeError, "record value must be bytes or None, got str"),
        ((BASE_TS, 5, b"v"), TypeError, "record key must be bytes or None, got int"),
        ((BASE_TS, None, b"v", [(b"h", b"v")]), TypeError, "header key must be str, got bytes"),
        ((BASE_TS, None, b"v", [("h", "v")]), TypeError, "value of header 'h' must be bytes or None, got str"),
        ((BASE_TS, None, b"v", ["h"]), TypeError, "each header must be a"),
        ((BASE_TS, None, b"v", [("h", b"v", b"w")]), TypeError, "each header must be a"),
    ],
)
def test_bad_arguments_raise_the_same_errors(args: tuple[Any, ...], error: type[Exception], message: str) -> None:
    for core in _pair():
        core.append(BASE_TS + 7, None, b"first")
        before = _state(core)
        with pytest.raises(error, match=message):
            core.append(*args)
        assert _state(core) == before
    # a failed first append leaves the base timestamp unset in both
    for core in _pair():
        with pytest.raises(error):
            core.append(*args)
        assert core._base_ts is None and core._count == 0


@needs_compiled
def test_closed_core_refuses_appends_in_both() -> None:
    for core in _pair():
        core._buf = None
        with pytest.raises(RuntimeError, match="record batch is closed"):
            core.append(BASE_TS, None, b"v")


@needs_compiled
def test_keyword_arguments_of_append() -> None:
    assert compiled is not None
    c_core, py_core = _pair()
    assert c_core.append(timestamp=BASE_TS, key=b"k", value=b"v", headers=[("a", b"b")]) == py_core.append(
        timestamp=BASE_TS, key=b"k", value=b"v", headers=[("a", b"b")])
    assert _state(c_core) == _state(py_core)
    with pytest.raises(TypeError, match="missing required argument 'value'"):
        c_core.append(BASE_TS, None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        c_core.append(BASE_TS, None, b"v", nope=1)


@needs_compiled
def test_builder_with_compiled_core_round_trips_random_records() -> None:
    rng = random.Random(99)
    records = [_random_record(rng, BASE_TS) for _ in range(300)]
    builder = RecordBatchBuilder()
    for record in records:
        builder.append(*record)
    (batch,) = read_batches(builder.build(7, 1, 40))
    decoded = [(r.timestamp, r.key, r.value, r.headers) for r in batch.records()]
    assert decoded == [(t, k, v, list(h or [])) for t, k, v, h in records]
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (7, 1, 40)


_BUILD_SCRIPT = """
import json, random, sys
from kprod import _native
from kprod.protocol.records import RecordBatchBuilder
assert (_native.speedups is None) == (sys.argv[1] == "off"), _native.speedups
rng = random.Random(5)
out = []
for codec in (0, 1, 3, 4):
    b = RecordBatchBuilder(codec)
    for i in range(500):
        n = rng.choice([0, 1, 63, 64, 100, 8192])
        b.append(1_700_000_000_000 + rng.randrange(-100, 100), None if i % 7 == 0 else rng.randbytes(16),
                 rng.randbytes(n), [("i", b"%d" % i), ("n", None)] if i % 3 == 0 else None)
    out.append(b.build(3, 0, 17).hex())
print(json.dumps(out))
"""


@needs_compiled
def test_whole_batches_built_with_and_without_the_extension_are_identical() -> None:
    outputs = {}
    for mode in ("on", "off"):
        env = dict(os.environ)
        env.pop("KPROD_NO_SPEEDUPS", None)
        if mode == "off":
            env["KPROD_NO_SPEEDUPS"] = "1"
        done = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, mode], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        outputs[mode] = json.loads(done.stdout)
    assert outputs["on"] == outputs["off"]
    assert len(outputs["on"]) == 4


# -- the accumulator's appends -----------------------------------------------------------------------


def _batch() -> ProducerBatch:
    return ProducerBatch("t", 0, RecordBatchBuilder(), 0.0, 0)


def _future_fields(futures: list[Any]) -> list[tuple[Any, ...]]:
    return [(f._index, f._timestamp, f._key_size, f._value_size) for f in futures]


def _batch_state(batch: ProducerBatch) -> tuple[Any, ...]:
    callbacks = [(f._index, cb, java) for f, cb, java in batch.callbacks or []]
    return (bytes(batch.builder._buf), batch.builder._size, batch.full, _future_fields(batch.futures), callbacks)


@needs_active
def test_append_record_matches_its_twin() -> None:
    assert compiled is not None
    rng = random.Random(3)

    def callback(metadata: Any, error: Any) -> None:
        pass

    for limit in (200, 1000, 5000):
        c_batch, py_batch = _batch(), _batch()
        for batch in (c_batch, py_batch):  # the first record goes in with builder.append, as _append_new does
            batch.builder.append(BASE_TS, None, b"first")
            batch.futures.append(RecordFuture(batch, 0, BASE_TS, -1, 5))
        results = []
        while not c_batch.full and len(results) < 200:
            timestamp, key, value, headers = _random_record(rng, BASE_TS)
            cb = callback if rng.random() < 0.5 else None
            c_future = compiled.append_record(RecordFuture, c_batch, timestamp, key, value, headers, cb, limit)
            py_future = fastpath._append_record_py(RecordFuture, py_batch, timestamp, key, value, headers, cb, limit)
            assert (c_future is None) == (py_future is None)
            results.append(c_future is None)
            assert _batch_state(c_batch) == _batch_state(py_batch)
            if c_future is not None:
                assert c_future._batch is c_batch and c_future is c_batch.futures[-1]
        assert True in results or c_batch.full


@needs_active
def test_append_many_matches_its_twin() -> None:
    assert compiled is not None
    rng = random.Random(21)
    for round_ in range(40):
        n = rng.randrange(1, 300)
        partitions_count = rng.choice([1, 3, 6])
        values = [rng.choice([None, b"", rng.randbytes(rng.randrange(0, 400))]) for _ in range(n)]
        keys = None if rng.random() < 0.3 else [rng.choice([None, rng.randbytes(8)]) for _ in range(n)]
        timestamps = None if rng.random() < 0.5 else [rng.choice([None, BASE_TS + rng.randrange(-50, 50)]) for _ in range(n)]
        headers = None if rng.random() < 0.6 else [rng.choice([None, [("h", b"x")], [("k", None)]]) for _ in range(n)]
        partitions: int | list[int] = (rng.choice([-1, 0]) if rng.random() < 0.5
                                       else [rng.randrange(-1, partitions_count) for _ in range(n)])
        limit = rng.choice([300, 2000, 20000])
        budget = rng.choice([1, 500, 100000])
        sticky = rng.randrange(partitions_count)
        callback = (lambda m, e: None) if rng.random() < 0.3 else None
        missing = [rng.random() < 0.2 for _ in range(partitions_count)]
        outcomes = []
        for impl in (compiled.append_many, fastpath._append_many_py):
            batches: list[ProducerBatch | None] = []
            for p in range(partitions_count):
                batch = None
                if not missing[p]:
                    batch = _batch()
                    batch.builder.append(BASE_TS, None, b"seed")
                    batch.futures.append(RecordFuture(batch, 0, BASE_TS, -1, 4))
                batches.append(batch)
            out: list[Any] = []
            result = impl(RecordFuture, batches, values, keys, timestamps, headers, partitions, callback, 0,
                          BASE_TS, sticky, budget, limit, out)
            outcomes.append(([None if b is None else _batch_state(b) for b in batches], result, _future_fields(out),
                             [batches.index(f._batch) for f in out]))
        assert outcomes[0] == outcomes[1], round_


# -- Producer.send: the compiled path against the Python path -----------------------------------------


@pytest.fixture(scope="module")
def dead_address() -> Iterator[str]:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{placeholder.getsockname()[1]}"


def _inject_metadata(producer: Producer, leaders: dict[str, list[int]]) -> None:
    """Give an offline producer metadata for ``leaders`` (topic -> leader per partition)."""
    m = response_module(ApiKey.METADATA, 12)
    response = m.MetadataResponse(
        throttle_time=timedelta(0),
        brokers=tuple(m.MetadataResponseBroker(node_id=b, host="127.0.0.1", port=9, rack=None) for b in (1, 2, 3)),
        cluster_id="c",
        controller_id=1,
        topics=tuple(
            m.MetadataResponseTopic(
                error_code=ErrorCode(0), name=topic, topic_id=uuid.uuid4(), is_internal=False,
                partitions=tuple(
                    m.MetadataResponsePartition(
                        error_code=ErrorCode(0), partition_index=p, leader_id=leader, leader_epoch=0,
                        replica_nodes=(1, 2, 3), isr_nodes=(1, 2, 3), offline_replicas=(),
                    )
                    for p, leader in enumerate(partition_leaders)
                ),
                topic_authorized_operations=-2147483648,
            )
            for topic, partition_leaders in leaders.items()
        ),
    )
    fresh = ClusterMetadata(metadata_max_age_ms=300_000, metadata_max_idle_ms=300_000)
    fresh.update(metadata_result(response), 0.0)
    metadata = producer._metadata
    metadata.partitions, metadata.leaders = fresh.partitions, fresh.leaders
    metadata.available, metadata.partition_counts = fresh.available, fresh.partition_counts


def _offline(address: str, compiled_path: bool, **config: Any) -> Producer:
    """A producer with metadata and no broker: records stay queued. Adaptive partitioning is
    off, as the I/O thread's queue-size reports would make the sticky draws timing-dependent."""
    producer = Producer({"bootstrap.servers": address, "linger.ms": 600_000, "delivery.timeout.ms": 900_000,
                         "request.timeout.ms": 30_000, "reconnect.backoff.ms": 60_000,
                         "reconnect.backoff.max.ms": 60_000, "acks": 1,
                         "partitioner.adaptive.partitioning.enable": False, **config})
    if not compiled_path:
        producer._fast_send = producer._append_path = None
    producer._accumulator.sticky._random.seed(1234)
    _inject_metadata(producer, {"a": [1, 2, 3, 1, 2, 3], "b": [1, 2]})
    return producer


def _queues(producer: Producer) -> dict[tuple[str, int], list[tuple[Any, ...]]]:
    accumulator = producer._accumulator
    with accumulator.lock:
        return {
            (topic, partition): [
                (bytes(b.builder._buf), b.builder._count, b.full, b.memory, _future_fields(b.futures),
                 [(f._index, java) for f, _, java in b.callbacks or []])
                for b in queue
            ]
            for topic, queues in accumulator._queues.items()
            for partition, queue in enumerate(queues)
        }


def _workload(rng: random.Random) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    def callback(metadata: Any, error: Any) -> None:
        pass

    for i in range(6000):
        topic = "a" if rng.random() < 0.8 else "b"
        value = rng.choice([None, b"", rng.randbytes(rng.choice([10, 100, 1000, 9000]))])
        key = None if rng.random() < 0.6 else rng.randbytes(rng.choice([0, 4, 16]))
        kwargs: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.1:
            kwargs["partition"] = rng.randrange(2)
        if rng.random() < 0.2:
            kwargs["timestamp"] = BASE_TS + rng.randrange(-1000, 1000)
        if rng.random() < 0.05:
            kwargs["headers"] = [("h", rng.choice([None, b"x"]))]
        if rng.random() < 0.1:
            kwargs["callback"] = callback
        yield (topic, value, key), kwargs


@needs_active
@pytest.mark.parametrize("config", [{}, {"partitioner.ignore.keys": True}, {"batch.size": 3000}])
def test_compiled_send_path_queues_exactly_what_the_python_path_queues(
        dead_address: str, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kprod.client._time_ns", lambda: BASE_TS * 1_000_000)  # the Python path's clock
    fast = _offline(dead_address, True, **config)
    slow = _offline(dead_address, False, **config)
    try:
        assert fast._fast_send is not None and slow._fast_send is None
        fast._fast_send = _FixedClock(fast._fast_send)  # the compiled path reads the clock itself
        for producer in (fast, slow):
            rng = random.Random(77)
            for args, kwargs in _workload(rng):
                future = producer.send(*args, **kwargs)
                assert isinstance(future, RecordFuture)
        fast_queues, slow_queues = _queues(fast), _queues(slow)
        assert fast_queues == slow_queues
        assert sum(len(batches) for batches in fast_queues.values()) > 6
        assert fast._accumulator.sticky._produced == slow._accumulator.sticky._produced
        assert fast._accumulator.sticky._current == slow._accumulator.sticky._current
    finally:
        fast.close(0)
        slow.close(0)


class _FixedClock:
    """Calls the compiled path with the record's timestamp set, as if its clock read BASE_TS."""

    def __init__(self, path: Callable[..., Any]) -> None:
        self.path = path

    def __call__(self, topic: Any, value: Any, key: Any, partition: Any, timestamp: Any, headers: Any,
                 callback: Any) -> Any:
        return self.path(topic, value, key, partition, BASE_TS if timestamp is None else timestamp, headers, callback)


@needs_active
def test_compiled_send_path_returns_none_and_changes_nothing_for_the_python_path(dead_address: str) -> None:
    producer = _offline(dead_address, True, **{"max.request.size": 2000})
    try:
        path = producer._fast_send
        assert path is not None
        producer.send("a", b"v", partition=0)  # opens partition 0's batch
        before = _queues(producer)
        for args in [
            ("nope", b"v", None, None, None, None, None),  # no metadata for the topic
            ("a", "str", None, None, None, None, None),  # not serialized
            ("a", b"v", 5, None, None, None, None),  # a key to serialize
            ("a", b"v", None, 6, None, None, None),  # partition out of range
            ("a", b"v", None, True, None, None, None),  # not an int partition
            ("a", b"v", None, 0, -1, None, None),  # negative timestamp
            ("a", b"v", None, 0, 1.5, None, None),
            ("a", b"x" * 5000, None, 0, None, None, None),  # over max.request.size
            ("a", b"v", None, 1, None, None, None),  # partition 1 has no open batch
            (b"a", b"v", None, 0, None, None, None),  # topic not a str
        ]:
            assert path(*args) is None, args
        assert _queues(producer) == before
        future = path("a", b"v", None, 0, None, None, None)
        assert future is not None and future._index == 1 and future._batch.partition == 0
        producer._accumulator.close()
        assert path("a", b"v", None, 0, None, None, None) is None
    finally:
        producer.close(0)


@needs_active
def test_completed_batches_and_their_futures_are_freed_without_the_cycle_collector(dead_address: str) -> None:
    import gc

    producer = _offline(dead_address, True)
    try:
        for _ in range(50):
            producer.send("a", b"v", partition=0)
        futures = producer.send_many("a", [b"w"] * 50, partition=0)
        batch = futures[0]._batch
        assert all(f._batch is batch for f in futures) and batch.record_count == 100
        assert not gc.is_tracked(futures[-1]), "compiled futures are not tracked by the cycle collector"
        accumulator = producer._accumulator
        with accumulator.lock:
            accumulator._queues["a"][0].clear()
        accumulator.incomplete.discard(batch)
        batch.succeed(10, -1)
        assert batch.record_count == 100 and batch.futures == []
        assert futures[3].result(0).offset == 10 + 53
        # the futures are now the only references to the batch: no cycle is left behind
        assert sys.getrefcount(batch) == 2 + len(futures)  # + the local name and getrefcount's argument
        del futures
        assert sys.getrefcount(batch) == 2
    finally:
        producer.close(0)


def test_env_switch_selects_the_pure_python_code() -> None:
    script = (
        "from kprod import _native; from kprod.partitioner import murmur2, _murmur2_py;"
        "from kprod.protocol.records import RecordBatchBuilder, _RecordsCore;"
        "from kprod.producer import fastpath;"
        "assert _native.speedups is None and _native.disabled_by_env;"
        "assert murmur2 is _murmur2_py and RecordBatchBuilder.__mro__[1] is _RecordsCore;"
        "assert fastpath.append_many is fastpath._append_many_py; print('ok')"
    )
    env = dict(os.environ, KPROD_NO_SPEEDUPS="1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# -- SendCore: Producer.send without a Python frame ------------------------------------------------

_SEND_CORES = [fastpath._SendCorePy] + ([compiled.SendCore] if compiled is not None else [])


def _probe(core: type, fast: Callable[..., Any] | None) -> Any:
    class Probe(core):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self._fast_send = fast
            self.python_calls: list[tuple[Any, ...]] = []

        def _send_python(self, *args: Any) -> Any:
            self.python_calls.append(args)
            return "python path"

    return Probe()


SEND_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("t",), {}),
    (("t", b"v"), {}),
    (("t", b"v", b"k", 2, 123, None, print), {}),
    (("t",), {"value": b"v", "key": b"k", "partition": 1, "timestamp": 5, "callback": print}),
    ((), {"topic": "t", "value": b"v"}),
    (("t", b"v"), {"headers": [("h", b"x")]}),
    (("t", b"v"), {"headers": None}),
    ((ProducerRecord("t", b"v"), print), {}),
]


@pytest.mark.parametrize("core", _SEND_CORES, ids=lambda c: c.__module__)
@pytest.mark.parametrize("call", range(len(SEND_CALLS)))
def test_send_core_hands_every_call_on_with_send_s_seven_arguments(core: type, call: int) -> None:
    args, kwargs = SEND_CALLS[call]
    seen: list[tuple[Any, ...]] = []

    def fast(*record: Any) -> Any:
        seen.append(record)
        return None  # "not for me": the Python path follows

    probe = _probe(core, fast)
    assert probe.send(*args, **kwargs) == "python path"
    bound = inspect.signature(fastpath._SendCorePy.send).bind(None, *args, **kwargs)
    bound.apply_defaults()
    expected = tuple(bound.arguments.values())[1:]
    assert probe.python_calls == [expected]
    # The compiled path is asked first, unless there are headers (it never takes them).
    assert seen == ([] if expected[5] is not None else [expected])


@pytest.mark.parametrize("core", _SEND_CORES, ids=lambda c: c.__module__)
def test_send_core_returns_what_the_compiled_path_queued_without_the_python_path(core: type) -> None:
    probe = _probe(core, lambda *record: ("queued", record))
    assert probe.send("t", b"v", key=b"k") == ("queued", ("t", b"v", b"k", None, None, None, None))
    assert probe.python_calls == []
    probe._fast_send = None
    assert probe.send("t", b"v") == "python path"


@pytest.mark.parametrize("core", _SEND_CORES, ids=lambda c: c.__module__)
def test_send_core_raises_the_compiled_path_s_errors(core: type) -> None:
    def fast(*record: Any) -> Any:
        raise ValueError("from the compiled path")

    with pytest.raises(ValueError, match="from the compiled path"):
        _probe(core, fast).send("t", b"v")


@pytest.mark.parametrize("core", _SEND_CORES, ids=lambda c: c.__module__)
@pytest.mark.parametrize(("args", "kwargs", "names"), [
    ((), {}, "topic"),
    (("t",), {"vlue": b"v"}, "vlue"),
    (("t", b"v"), {"value": b"w"}, "value"),
    (("t", 1, 2, 3, 4, 5, 6, 7), {}, "positional"),
])
def test_send_core_rejects_what_send_s_signature_rejects(core: type, args: tuple[Any, ...], kwargs: dict[str, Any],
                                                          names: str) -> None:
    probe = _probe(core, lambda *record: pytest.fail("must not be called"))
    with pytest.raises(TypeError, match=names):
        probe.send(*args, **kwargs)
    assert probe.python_calls == []


def test_producer_send_is_the_compiled_core_when_built() -> None:
    expected = compiled.SendCore if _native.speedups is not None else fastpath._SendCorePy  # type: ignore[union-attr]
    assert Producer.__mro__[1] is expected
    assert list(inspect.signature(Producer.send).parameters) == [
        "self", "topic", "value", "key", "partition", "timestamp", "headers", "callback"]
