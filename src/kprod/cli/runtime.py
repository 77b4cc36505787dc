"""What ``produce`` and ``perf`` share at run time: output, the cluster, the producer.

* :class:`Console` serialises lines from the main thread, the producer's I/O
  thread (callbacks) and the progress bar, so a line never lands in the
  middle of the bar, and a closed stdout (``kprod perf | head``) is not an error.
* :func:`embedded_cluster` starts the development cluster when no bootstrap
  server is given: in a child process, so the brokers do not compete with
  the producer for the GIL.
* :func:`open_producer` and :func:`await_topic` turn the producer's errors
  into one-line CLI errors, and say so when the first contact is slow.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from kprod.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, CliError, UsageError

if TYPE_CHECKING:
    from kprod import Producer
    from kprod.cluster import EmbeddedCluster

__all__ = ["Console", "await_topic", "check_config", "embedded_cluster", "finish", "open_producer", "plural", "records_in_topic"]

#: How long the first metadata request may take before the CLI says it is waiting.
WAIT_NOTICE_SECONDS = 5.0
EMBEDDED_BROKERS = 3


def plural(count: int, noun: str) -> str:
    """``"1 record"``, ``"2 records"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class Console:
    """Line output to stdout and stderr, safe from several threads."""

    def __init__(self, prog: str, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.prog = prog
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.lock = threading.Lock()
        #: Set by a progress bar while it occupies the last line of stderr.
        self.clear_line: str = ""
        self._out_broken = False

    def print(self, line: str) -> None:
        """A line on stdout (results)."""
        with self.lock:
            self._clear()
            if self._out_broken:
                return
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                self._out_broken = True  # the reader went away; keep running, stay quiet

    def note(self, line: str) -> None:
        """A line on stderr (what the tool is doing, warnings, errors)."""
        with self.lock:
            self._clear()
            try:
                self.err.write(line + "\n")
                self.err.flush()
            except (BrokenPipeError, ValueError):
                pass

    def _clear(self) -> None:
        if self.clear_line:
            try:
                self.err.write(self.clear_line)
                self.err.flush()
            except (BrokenPipeError, ValueError):
                pass
            self.clear_line = ""  # the bar redraws itself on its next tick


@contextmanager
def embedded_cluster(
    console: Console, topic: str, partitions: int, replication_factor: int
) -> Iterator[EmbeddedCluster]:
    """A 3-broker embedded cluster in a child process with ``topic`` created, for one run."""
    from kprod.cluster import ClusterError, EmbeddedCluster

    cluster = EmbeddedCluster(brokers=EMBEDDED_BROKERS, process=True)
    try:
        cluster.start()
    except ClusterError as exc:
        raise CliError(f"could not start the embedded cluster: {exc}") from None
    try:
        try:
            cluster.create_topic(
                topic, partitions, replication_factor, {"min.insync.replicas": str(min(2, replication_factor))}
            )
        except ClusterError as exc:
            raise UsageError(f"could not create topic {topic!r} on the embedded cluster: {exc}") from None
        console.note(
            f"Started an embedded {EMBEDDED_BROKERS}-broker cluster at {cluster.bootstrap_servers}"
            f" (a development cluster, not for production); topic {topic}: {plural(partitions, 'partition')},"
            f" replication factor {replication_factor}."
        )
        yield cluster
    finally:
        cluster.stop()


def records_in_topic(cluster: EmbeddedCluster, topic: str, partitions: int) -> int:
    """How many records the embedded cluster holds for ``topic`` (the sum of end offsets)."""
    return sum(cluster.end_offset(topic, partition) for partition in range(partitions))


def finish(
    console: Console, prog: str, *, topic: str, held: int | None, failed: int, total: int,
    interrupted: bool, interrupted_detail: str = "",
) -> int:
    """The closing lines every producing command prints, and its exit status."""
    if held is not None:
        console.note(
            f"The embedded cluster holds {plural(held, 'record')} in topic {topic};"
            " it stops now and its data is discarded."
        )
    if failed:
        console.note(f"{prog}: {failed} of {plural(total, 'record')} failed.")
    if interrupted:
        console.note(f"{prog}: interrupted{interrupted_detail}.")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else 0


def check_config(config: Mapping[str, Any]) -> None:
    """Reject bad producer settings before an embedded cluster is started for nothing."""
    from kprod.config import ProducerConfig
    from kprod.errors import ConfigError

    try:
        ProducerConfig({**config, "bootstrap.servers": config.get("bootstrap.servers") or "127.0.0.1:9092"})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def open_producer(config: Mapping[str, Any]) -> Producer:
    """``Producer(config)``; a bad setting becomes a :class:`UsageError` naming the key."""
    from kprod import Producer
    from kprod.errors import ConfigError

    try:
        return Producer(dict(config))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def await_topic(console: Console, producer: Producer, topic: str, bootstrap: str) -> int:
    """Fetch the topic's metadata (waiting up to ``max.block.ms``); its partition count.

    Says on stderr when this takes more than a few seconds, so an unreachable
    cluster is not a silent minute-long hang.
    """
    from kprod.errors import InterruptError, KafkaError

    max_block_ms = producer.config["max.block.ms"]
    notice = threading.Timer(
        WAIT_NOTICE_SECONDS,
        console.note,
        (
            f"{console.prog}: waiting for the metadata of topic {topic} from {bootstrap}"
            f" (up to max.block.ms={max_block_ms} ms; lower it with --producer-prop max.block.ms=...)",
        ),
    )
    notice.daemon = True
    notice.start()
    try:
        return len(producer.partitions_for(topic))
    except InterruptError:
        raise KeyboardInterrupt from None  # Ctrl-C: end as an interruption, not as a failure
    except KafkaError as exc:
        raise CliError(str(exc)) from None
    finally:
        notice.cancel()
