"""``kprod produce``: Kafka's ``kafka-console-producer``, one record per line.

Lines come from stdin or ``--file``; ``--property`` says how to find a key
and headers in a line (see :mod:`kprod.cli.linereader`). A line that cannot
be parsed or sent is reported on stderr with its line number and the rest
go on; the exit status is 1 if any record failed. Without ``--sync``,
records are sent in the background as lines arrive, and every one is
delivered or reported before the command exits.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from kprod.cli.args import CommandParser, add_producer_options, key_value, producer_config
from kprod.cli.errors import CliError, UsageError
from kprod.cli.linereader import LineError, LineParser
from kprod.cli.runtime import Console, await_topic, check_config, embedded_cluster, finish, open_producer, plural, records_in_topic

if TYPE_CHECKING:
    import argparse

    from kprod import Producer
    from kprod.cluster import EmbeddedCluster

__all__ = ["build_parser", "run"]

#: The topic ``produce`` creates on the embedded cluster: one partition keeps the lines' order.
EMBEDDED_PARTITIONS = 1
EMBEDDED_REPLICATION = 3

DESCRIPTION = """\
Send one record per line of standard input (or --file), as Kafka's
kafka-console-producer does. --property parse.key=true reads KEY<key.separator>VALUE;
--property parse.headers=true reads H1:V1,H2:V2<headers.delimiter> in front.

Without --bootstrap-server (or bootstrap.servers in the producer settings) it
starts an embedded 3-broker cluster for the run, with the topic created
(1 partition, replication factor 3); its records are discarded when it exits."""

EPILOG = """\
line properties (--property NAME=VALUE, defaults as in Kafka):
  parse.key=false  key.separator=<tab>  parse.headers=false  headers.delimiter=<tab>
  headers.separator=,  headers.key.separator=:  ignore.error=false  null.marker=<none>

examples:
  echo 'hello' | kprod produce --topic greetings --bootstrap-server localhost:9092
  kprod produce --topic orders --bootstrap-server localhost:9092 \\
      --property parse.key=true --property key.separator=: --file orders.txt
  printf 'trace:abc\\tuser-1\\t{"total": 12}\\n' | kprod produce --topic orders \\
      --bootstrap-server localhost:9092 --property parse.headers=true --property parse.key=true"""


def build_parser(prog: str = "kprod produce") -> CommandParser:
    parser = CommandParser(prog, DESCRIPTION, EPILOG)
    parser.add_argument("--topic", required=True, help="the topic to produce to")
    parser.add_argument(
        "--property",
        dest="properties",
        action="append",
        type=key_value,
        default=[],
        metavar="NAME=VALUE",
        help="how to read a line: parse.key, key.separator, parse.headers, ... (repeatable; see below)",
    )
    add_producer_options(parser)
    parser.add_argument(
        "--sync", action="store_true", help="send each record and wait for its acknowledgement before the next"
    )
    parser.add_argument("--file", metavar="FILE", help="read lines from this file instead of standard input")
    return parser


def run(argv: list[str], prog: str = "kprod produce") -> int:
    """Run ``kprod produce`` with ``argv``; returns the exit status."""
    options = build_parser(prog).parse(argv)
    console = Console(prog)
    lines = LineParser(dict(options.properties))
    config = producer_config(options, {"client.id": "kprod-console-producer"})
    check_config(config)
    stream = _open_input(options.file)
    try:
        if config.get("bootstrap.servers"):
            return _run(options, config, lines, stream, console, None)
        with embedded_cluster(console, options.topic, EMBEDDED_PARTITIONS, EMBEDDED_REPLICATION) as cluster:
            config["bootstrap.servers"] = cluster.bootstrap_servers
            return _run(options, config, lines, stream, console, cluster)
    finally:
        if options.file:
            stream.close()


def _open_input(path: str | None) -> BinaryIO:
    if path is None:
        return sys.stdin.buffer
    try:
        return Path(path).open("rb")
    except FileNotFoundError:
        raise UsageError(f"--file: no such file: {path}") from None
    except OSError as exc:
        raise UsageError(f"--file: cannot read {path}: {exc.strerror or exc}") from None


class _Failures:
    """Counts failed records and reports each on stderr (main thread and I/O thread)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self.count = 0

    def report(self, message: str) -> None:
        with self._lock:
            self.count += 1
        self._console.note(f"{self._console.prog}: {message}")

    def callback(self, number: int) -> Any:
        """The send callback of the record read from line ``number``."""

        def done(metadata: Any, exception: BaseException | None) -> None:
            if exception is not None:
                self.report(f"line {number} not sent: {type(exception).__name__}: {exception}")

        return done


def _run(
    options: argparse.Namespace,
    config: dict[str, str],
    lines: LineParser,
    stream: BinaryIO,
    console: Console,
    cluster: EmbeddedCluster | None,
) -> int:
    from kprod.errors import InterruptError, KafkaError

    producer = open_producer(config)
    failures = _Failures(console)
    interrupted = False
    read = 0
    try:
        await_topic(console, producer, options.topic, config["bootstrap.servers"])
        try:
            read = _send_lines(producer, options, lines, stream, console, failures)
        except (KeyboardInterrupt, InterruptError):
            interrupted = True  # stop reading; what was read is still delivered below
        except KafkaError as exc:
            raise CliError(str(exc)) from None
    except BaseException:
        producer.close(0)
        raise
    producer.close()  # delivers (or reports) every record read; all callbacks have run after it
    held = records_in_topic(cluster, options.topic, EMBEDDED_PARTITIONS) if cluster is not None else None
    return finish(console, console.prog, topic=options.topic, held=held, failed=failures.count, total=read,
                  interrupted=interrupted, interrupted_detail=f"; the {plural(read, 'line')} read before were sent")


def _send_lines(
    producer: Producer,
    options: argparse.Namespace,
    lines: LineParser,
    stream: BinaryIO,
    console: Console,
    failures: _Failures,
) -> int:
    """Send a record per line until end of input; returns how many lines were read."""
    from kprod.errors import KafkaError, KafkaTimeoutError, ProducerClosedError

    topic = options.topic
    send = producer.send
    prompt = options.file is None and stream.isatty()
    number = 0
    while True:
        if prompt:
            console.err.write(">")
            console.err.flush()
        raw = stream.readline()
        if not raw:
            return number
        number += 1
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            key, value, headers = lines.parse(line, number)
        except LineError as exc:
            failures.report(str(exc))
            continue
        try:
            future = send(topic, value, key, None, None, headers, None if options.sync else failures.callback(number))
        except (KafkaTimeoutError, ProducerClosedError):
            raise  # no metadata or no buffer space within max.block.ms: every next line would wait and fail too
        except (KafkaError, ValueError, TypeError) as exc:  # this record only (too large, bad header...)
            failures.report(f"line {number} not sent: {type(exc).__name__}: {exc}")
            continue
        if options.sync:
            try:
                future.result()
            except KafkaError as exc:
                failures.report(f"line {number} not sent: {type(exc).__name__}: {exc}")
