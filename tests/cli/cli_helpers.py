"""Helpers for the command-line tests: run ``python -m kprod`` and check what it printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["SUMMARY", "WINDOW", "Run", "assert_one_line_error", "kprod_command", "run_kprod"]

RUN_TIMEOUT = 180.0

#: Kafka's final perf line, as kprod prints it.
SUMMARY = re.compile(
    r"^(?P<count>\d+) records sent, (?P<rate>\d+\.\d) records/sec \((?P<mb>\d+\.\d\d) MB/sec\),"
    r" (?P<avg>\d+\.\d\d) ms avg latency, (?P<max>\d+\.\d\d) ms max latency,"
    r" (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th\.$"
)
#: Kafka's 5-second perf line.
WINDOW = re.compile(
    r"^(?P<count>\d+) records sent, (?P<rate>\d+\.\d) records/sec \((?P<mb>\d+\.\d\d) MB/sec\),"
    r" (?P<avg>\d+\.\d) ms avg latency, (?P<max>\d+\.\d) ms max latency\.$"
)


@dataclass
class Run:
    """A finished ``kprod`` process."""

    args: list[str]
    status: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"kprod {' '.join(self.args)} -> exit {self.status}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def kprod_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kprod", *args]


def run_kprod(*args: str, stdin: bytes | None = None, timeout: float = RUN_TIMEOUT) -> Run:
    """Run ``python -m kprod ARGS`` to completion."""
    done = subprocess.run(
        kprod_command(*args),
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "KPROD_DEBUG": ""},
    )
    return Run(list(args), done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))


def assert_one_line_error(run: Run, status: int, *fragments: str) -> str:
    """The run failed with ``status`` and said so in one ``error:`` line holding every fragment."""
    assert run.status == status, str(run)
    assert "Traceback" not in run.err, str(run)
    errors = [line for line in run.err.splitlines() if ": error: " in line]
    assert len(errors) == 1, str(run)
    for fragment in fragments:
        assert fragment in errors[0], str(run)
    return errors[0]
