"""Random send() / send_many() calls give the same outcome with and without the accelerator.

Hypothesis draws calls (types, sizes, unicode, headers, timestamps, partitions, bad and good),
which run on an offline producer here (compiled path, kprod._speedups) and in a worker process
under KPROD_NO_SPEEDUPS=1 (the pure-Python code): each call must be refused with the same error
class, field and record index, or accepted into the same batches with the same record bytes,
futures, callbacks, reserved memory and sticky-partitioner state.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from record_cases import BASE_TS, MV, offline_producer, run_ops

from kprod import _native, client

pytestmark = pytest.mark.skipif(_native.speedups is None, reason="compares the compiled code with the pure-Python code")


@pytest.fixture(scope="module")
def dead_address() -> Iterator[str]:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{placeholder.getsockname()[1]}"


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ, KPROD_NO_SPEEDUPS="1")
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("parity_worker.py"))],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def run(self, address: str, ops: list[Any]) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        data = pickle.dumps((address, ops))
        self.process.stdin.write(struct.pack(">I", len(data)) + data)
        self.process.stdin.flush()
        head = self.process.stdout.read(4)
        assert len(head) == 4, "the pure-Python worker died"
        return pickle.loads(self.process.stdout.read(struct.unpack(">I", head)[0]))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(60)


@pytest.fixture(scope="module")
def worker() -> Iterator[_Worker]:
    w = _Worker()
    try:
        yield w
    finally:
        w.close()


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` about nine times in ten, else ``invalid``: most calls get through to the batches."""
    return st.sampled_from(range(10)).flatmap(lambda roll: invalid if roll == 9 else valid)


blobs = st.one_of(
    st.binary(max_size=60), st.binary(min_size=1000, max_size=6000), st.binary(max_size=60).map(bytearray),
    st.binary(max_size=60).map(MV),
)
values = mostly(st.one_of(st.none(), blobs), st.one_of(st.text(max_size=10), st.integers(-5, 5), st.floats()))
keys = mostly(st.one_of(st.none(), st.binary(max_size=20)), st.one_of(st.text(max_size=5), st.integers(0, 3)))
partitions = mostly(st.one_of(st.none(), st.integers(0, 1)),
                    st.one_of(st.integers(-2, 7), st.booleans(), st.just(1.0), st.just("1"), st.just(2**63),
                              st.just(2**32 + 1)))
timestamps = mostly(
    st.one_of(st.none(), st.integers(0, 2**63 - 1), st.sampled_from([0, 2**63 - 1, BASE_TS])),
    st.one_of(st.sampled_from([-1, 2**63, 2**64]), st.integers(-(2**70), 2**70), st.booleans(), st.just(1.5),
              st.just("5")),
)
header_keys = mostly(st.one_of(st.text(max_size=8), st.sampled_from(["h", "é", "日本"])),
                     st.one_of(st.just("\ud800"), st.integers(0, 9), st.binary(max_size=3)))
header_values = mostly(st.one_of(st.none(), st.binary(max_size=30), st.binary(max_size=30).map(bytearray),
                                 st.binary(max_size=30).map(MV)),
                       st.one_of(st.integers(0, 9), st.text(max_size=3)))
header = mostly(st.tuples(header_keys, header_values),
                st.one_of(st.lists(header_keys, min_size=2, max_size=2), st.tuples(header_keys), st.just("h")))
headers = mostly(st.one_of(st.none(), st.lists(header, max_size=3),
                           st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8)), max_size=3).map(tuple)),
                 st.one_of(st.just({"h": b"x"}), st.just("hv")))
topics = mostly(st.sampled_from(["a", "a", "a", "b"]), st.sampled_from(["", "bad topic", "x" * 250, ".", 5, b"a"]))


@st.composite
def send_op(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kwargs: dict[str, Any] = {"topic": draw(topics), "value": draw(values)}
    for name, strategy in (("key", keys), ("partition", partitions), ("timestamp", timestamps),
                           ("headers", headers)):
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    kwargs["callback"] = draw(st.booleans())
    return "send", kwargs


@st.composite
def send_many_op(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    n = draw(st.integers(1, 6))
    kwargs: dict[str, Any] = {"topic": draw(topics), "values": draw(st.lists(values, min_size=n, max_size=n))}
    if draw(st.booleans()):
        kwargs["keys"] = draw(st.lists(keys, min_size=n, max_size=n))
    if draw(st.booleans()):
        kwargs["timestamps"] = draw(st.lists(timestamps, min_size=n, max_size=n))
    if draw(st.booleans()):
        kwargs["headers"] = draw(st.lists(headers, min_size=n, max_size=n))
    if draw(st.booleans()):
        kwargs["partition"] = draw(partitions)
    kwargs["callback"] = draw(st.booleans())
    return "send_many", kwargs


ops = st.lists(st.one_of(send_op(), send_op(), send_many_op()), min_size=1, max_size=12)


@settings(max_examples=int(os.environ.get("KPROD_PARITY_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(calls=ops)
def test_random_calls_have_the_same_outcome_with_and_without_the_accelerator(
        calls: list[tuple[str, dict[str, Any]]], worker: _Worker, dead_address: str) -> None:
    saved = client._time_ns
    client._time_ns = lambda: BASE_TS * 1_000_000  # the Python path's clock, as in the worker
    producer = offline_producer(dead_address)
    try:
        assert producer._fast_send is not None
        compiled = run_ops(producer, calls)
    finally:
        client._time_ns = saved
        producer.close(0)
    pure = worker.run(dead_address, calls)
    assert compiled[0] == pure[0], "a call's outcome differs"
    assert compiled[1] == pure[1], "the queued records differ"
