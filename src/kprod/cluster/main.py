"""``python -m kprod.cluster`` / ``kprod cluster``: run an embedded cluster in the foreground.

Prints the bootstrap address as the first line of standard output (so a
script can read it), serves until Ctrl-C or SIGTERM, then stops the brokers
and exits 0. ``run(argv)`` is what the ``kprod cluster`` command calls.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from kprod.cluster.embedded import EmbeddedCluster
from kprod.cluster.exceptions import ClusterError

__all__ = ["build_parser", "run"]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _topic(text: str) -> tuple[str, int, int]:
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected NAME[:PARTITIONS[:REPLICATION_FACTOR]], got {text!r}")
    try:
        numbers = [int(p) for p in parts[1:]]
    except ValueError:
        raise argparse.ArgumentTypeError(f"partitions and replication factor must be integers in {text!r}") from None
    partitions = numbers[0] if numbers else 1
    replication = numbers[1] if len(numbers) > 1 else 1
    return parts[0], partitions, replication


def build_parser(prog: str = "python -m kprod.cluster") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run kprod's embedded Kafka-protocol cluster in the foreground: a development and test"
            " tool, not a production broker. Prints the bootstrap address, stops on Ctrl-C."
        ),
    )
    parser.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    parser.add_argument(
        "--port", type=int, default=0, help="port of broker 0; the others follow (default: free ports)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)")
    parser.add_argument(
        "--config",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="Kafka broker setting, e.g. num.partitions=6 or min.insync.replicas=2 (repeatable)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        type=_topic,
        default=[],
        metavar="NAME[:PARTITIONS[:RF]]",
        help="create a topic at start (repeatable)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level of the brokers (default WARNING)")
    return parser


def run(argv: Sequence[str] | None = None, *, prog: str = "python -m kprod.cluster") -> int:
    """Parse ``argv``, serve until interrupted; returns the exit status."""
    options = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cluster = EmbeddedCluster(
            options.brokers,
            port=options.port or None,
            host=options.host,
            config=dict(options.config),
        )
        cluster.start()
    except ClusterError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _on_signal)
    try:
        for name, partitions, replication in options.topic:
            cluster.create_topic(name, partitions, replication)
        print(cluster.bootstrap_servers, flush=True)
        print(
            f"kprod embedded cluster: {options.brokers} brokers on {cluster.bootstrap_servers}."
            " A development and test tool, NOT a production broker: data lives in memory and is"
            " lost on exit. Press Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    except ClusterError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    finally:
        cluster.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("kprod embedded cluster stopped.", file=sys.stderr, flush=True)
    return 0
