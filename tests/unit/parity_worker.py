"""Runs record cases on the pure-Python code for test_record_parity.py (started with KPROD_NO_SPEEDUPS=1).

Reads length-prefixed pickles of (bootstrap address, ops) from stdin and answers each with a
length-prefixed pickle of ``record_cases.run_ops``'s result on a fresh offline producer.
"""

from __future__ import annotations

import pickle
import struct
import sys

import record_cases

from kprod import _native, client


def main() -> None:
    assert _native.speedups is None, "run me with KPROD_NO_SPEEDUPS=1"
    client._time_ns = lambda: record_cases.BASE_TS * 1_000_000  # type: ignore[assignment]
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        address, ops = pickle.loads(stdin.read(struct.unpack(">I", head)[0]))
        producer = record_cases.offline_producer(address)
        try:
            result = record_cases.run_ops(producer, ops)
        finally:
            producer.close(0)
        data = pickle.dumps(result)
        stdout.write(struct.pack(">I", len(data)) + data)
        stdout.flush()


if __name__ == "__main__":
    main()
