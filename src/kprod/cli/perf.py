"""``kprod perf``: Kafka's ``kafka-producer-perf-test``, with kprod's producer.

Same options and the same output lines as the Java tool, so numbers can be
compared side by side; plus ``--json`` for scripts, a progress bar on a
terminal, and an embedded cluster when no bootstrap server is given.

The send loop is the benchmark's own overhead, so it is kept to one
``send()`` call per record: payloads are prepared before the clock starts
(a pool of random A-Z payloads, as Java's tool generates), every record
shares one callback (see :mod:`kprod.cli.perfstats`), and throttling
sleeps rather than spins.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kprod.cli.args import CommandParser, add_producer_options, positive_int, producer_config, throughput
from kprod.cli.errors import CliError, UsageError
from kprod.cli.runtime import Console, await_topic, check_config, embedded_cluster, finish, open_producer, records_in_topic

if TYPE_CHECKING:
    import argparse

    from kprod import Producer
    from kprod.cli.perfstats import PerfStats
    from kprod.cluster import EmbeddedCluster

__all__ = ["build_parser", "run"]

#: The topic ``perf`` creates on the embedded cluster: like a production topic
#: (replicated 3 ways, min.insync.replicas 2, acks=all), spread over every broker.
EMBEDDED_PARTITIONS = 6
EMBEDDED_REPLICATION = 3
#: Payload pool: distinct random payloads cycled through, at most this many and this many bytes.
POOL_RECORDS = 1024
POOL_BYTES = 8 << 20
#: Chunk of random payload-file picks drawn at once.
PICK_CHUNK = 4096
#: Throttling sleeps only when ahead of schedule by at least this much (Java's throttler: 2 ms).
MIN_SLEEP_SECONDS = 0.002
#: A–Z for every byte value, to turn random bytes into Java's random uppercase payload.
_LETTERS = bytes(65 + i % 26 for i in range(256))

DESCRIPTION = """\
Measure producer throughput and latency, as Kafka's kafka-producer-perf-test does
and with its output format: a line every 5 seconds, then the totals with latency
percentiles. Latency is from send() to the acknowledgement, per record.

Without --bootstrap-server (or bootstrap.servers in the producer settings) it
starts an embedded 3-broker cluster in a child process and creates the topic
with 6 partitions, replication factor 3 and min.insync.replicas 2."""

EPILOG = """\
examples:
  kprod perf --topic perf --num-records 1000000 --record-size 100
  kprod perf --topic perf --num-records 500000 --record-size 1000 --throughput 20000 \\
      --bootstrap-server broker1:9092 --producer-prop acks=1 linger.ms=10 compression.type=lz4
  kprod perf --topic perf --num-records 100000 --record-size 100 --json"""


def build_parser(prog: str = "kprod perf") -> CommandParser:
    parser = CommandParser(prog, DESCRIPTION, EPILOG)
    parser.add_argument("--topic", required=True, help="the topic to produce to")
    parser.add_argument(
        "--num-records", required=True, type=positive_int("--num-records"), metavar="N", help="records to send"
    )
    payload = parser.add_mutually_exclusive_group(required=True)
    payload.add_argument(
        "--record-size", type=positive_int("--record-size"), metavar="BYTES", help="value size of each record"
    )
    payload.add_argument(
        "--payload-file",
        metavar="FILE",
        help="send values picked at random from this file, split at --payload-delimiter",
    )
    parser.add_argument(
        "--payload-delimiter",
        default="\\n",
        metavar="TEXT",
        help="what separates the payloads of --payload-file (default: \\n, a newline)",
    )
    parser.add_argument(
        "--throughput",
        type=throughput,
        default=-1.0,
        metavar="RECORDS_PER_SEC",
        help="send at most about this many records per second (default -1: as fast as possible)",
    )
    add_producer_options(parser)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON summary object on stdout instead of the text lines"
    )
    parser.add_argument(
        "--print-metrics", action="store_true",
        help="print the producer's metrics at the end, as Kafka's perf tool does (see docs/metrics.md)",
    )
    return parser


def run(argv: list[str], prog: str = "kprod perf") -> int:
    """Run ``kprod perf`` with ``argv``; returns the exit status."""
    options = build_parser(prog).parse(argv)
    console = Console(prog)
    payloads = _payloads(options, console)
    config = producer_config(options, {"client.id": "kprod-perf"})
    check_config(config)
    if config.get("bootstrap.servers"):
        return _run(options, config, payloads, console, None)
    with embedded_cluster(console, options.topic, EMBEDDED_PARTITIONS, EMBEDDED_REPLICATION) as cluster:
        config["bootstrap.servers"] = cluster.bootstrap_servers
        return _run(options, config, payloads, console, cluster)


def _payloads(options: argparse.Namespace, console: Console) -> list[bytes]:
    if options.record_size is not None:
        size = options.record_size
        count = max(1, min(POOL_RECORDS, POOL_BYTES // size))
        data = random.Random(0).randbytes(count * size).translate(_LETTERS)
        return [data[i * size : (i + 1) * size] for i in range(count)]
    path = Path(options.payload_file)
    delimiter = options.payload_delimiter.replace("\\n", "\n").replace("\\t", "\t").encode()
    if not delimiter:
        raise UsageError("--payload-delimiter must not be empty")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"--payload-file: no such file: {path}") from None
    except OSError as exc:
        raise UsageError(f"--payload-file: cannot read {path}: {exc.strerror or exc}") from None
    payloads = [piece for piece in data.split(delimiter) if piece]
    if not payloads:
        raise UsageError(f"--payload-file: {path} holds no payloads (it is empty, or only delimiters)")
    console.note(f"Read {len(payloads)} payloads from {path.resolve()}.")
    return payloads


def _chunks(options: argparse.Namespace, payloads: list[bytes], total: int) -> Iterator[list[bytes]]:
    """The values to send, in lists: the pool cycled, or random picks from the payload file."""
    remaining = total
    if options.record_size is not None:
        while remaining:
            chunk = payloads if remaining >= len(payloads) else payloads[:remaining]
            remaining -= len(chunk)
            yield chunk
    else:
        pick = random.Random(0).choices
        while remaining:
            chunk = pick(payloads, k=min(PICK_CHUNK, remaining))
            remaining -= len(chunk)
            yield chunk


def _send_all(producer: Producer, options: argparse.Namespace, payloads: list[bytes], stats: PerfStats) -> None:
    """Hand ``--num-records`` records to ``send()``, throttled if asked; raises on a fatal send error."""
    from kprod.errors import RecordTooLargeError

    send = producer.send
    topic = options.topic
    callback = stats.callback
    fixed = options.record_size is not None
    chunks = _chunks(options, payloads, options.num_records)
    if options.throughput < 0:
        for chunk in chunks:
            for value in chunk:
                try:
                    send(topic, value, None, None, None, None, callback)
                except RecordTooLargeError as exc:
                    if fixed:
                        raise  # every record has this size: stop at the first
                    stats.record_failure(exc)
        return
    interval = 1.0 / options.throughput
    monotonic = time.monotonic
    sleep = time.sleep
    start = monotonic()
    sent = 0
    for chunk in chunks:
        for value in chunk:
            ahead = start + sent * interval - monotonic()
            if ahead >= MIN_SLEEP_SECONDS:
                sleep(ahead)
            try:
                send(topic, value, None, None, None, None, callback)
            except RecordTooLargeError as exc:
                if fixed:
                    raise
                stats.record_failure(exc)
            sent += 1


def _run(
    options: argparse.Namespace,
    config: dict[str, str],
    payloads: list[bytes],
    console: Console,
    cluster: EmbeddedCluster | None,
) -> int:
    from kprod.cli.perfstats import PerfStats, now_ms
    from kprod.cli.progress import ProgressBar
    from kprod.errors import InterruptError, KafkaError

    prog = console.prog
    producer = open_producer(config)
    interrupted = False
    bar: ProgressBar | None = None
    try:
        await_topic(console, producer, options.topic, config["bootstrap.servers"])
        stats = PerfStats(
            now_ms(),
            on_window=None if options.json else console.print,
            on_error=lambda message: console.note(f"{prog}: a record failed: {message}"),
        )
        if console.err.isatty():
            bar = ProgressBar(console, options.num_records, stats.acknowledged, stats.failed).start()
        try:
            _send_all(producer, options, payloads, stats)
        except (KeyboardInterrupt, InterruptError):
            interrupted = True
        except KafkaError as exc:
            raise CliError(str(exc)) from None
        producer.flush()
        end = now_ms()
        metrics = producer.metrics() if options.print_metrics else None
    except BaseException:
        if bar is not None:
            bar.stop()
        producer.close(0)  # fail whatever is still pending at once
        raise
    producer.close()  # every callback has run once the I/O thread is gone
    if bar is not None:
        bar.stop()
    summary = stats.summary(end)
    held = records_in_topic(cluster, options.topic, EMBEDDED_PARTITIONS) if cluster is not None else None
    if options.json:
        report = _json(options, config, summary.as_dict(), stats, cluster, held)
        if metrics is not None:
            report["metrics"] = {str(name): None if math.isnan(value) else value
                                 for name, value in sorted(metrics.items(), key=lambda item: str(item[0]))}
        console.print(json.dumps(report))
    else:
        console.print(summary.line())
        if metrics is not None:
            console.print(_metrics_table(metrics))
    return finish(console, prog, topic=options.topic, held=held, failed=summary.records_failed,
                  total=options.num_records, interrupted=interrupted)


def _metrics_table(metrics: Mapping[Any, float]) -> str:
    """Kafka's perf tool's closing table: ``group:name:{tags} : value``, sorted by name."""
    rows = sorted((str(name), value) for name, value in metrics.items())
    width = max(len("Metric Name"), *(len(name) for name, _ in rows))
    lines = [f"{'Metric Name':<{width}}   Value"]
    lines += [f"{name:<{width}} : {value:.3f}" for name, value in rows]
    return "\n".join(lines)


def _json(
    options: argparse.Namespace,
    config: dict[str, str],
    totals: dict[str, Any],
    stats: PerfStats,
    cluster: EmbeddedCluster | None,
    held: int | None,
) -> dict[str, Any]:
    return {
        "topic": options.topic,
        "num_records": options.num_records,
        "record_size": options.record_size,
        "payload_file": options.payload_file,
        "throughput_limit": options.throughput if options.throughput > 0 else None,
        "bootstrap_servers": config["bootstrap.servers"],
        "embedded_cluster": cluster is not None,
        **totals,
        "records_in_topic": held,
        "errors": [{"error": message, "records": count} for message, count in stats.errors.items()],
    }
