"""The ``kprod`` command: ``kprod produce``, ``kprod perf``, ``kprod cluster``.

Dispatch is by the first word, and a command's module (and the producer or
the cluster behind it) is imported only when that command runs, so
``kprod --help`` does not pay for them. Every failure ends as one line,
``kprod <command>: error: <what is wrong and what to do>``, and an exit
status: 2 for bad usage or settings, 1 for a failed run, 130 for Ctrl-C.
Set ``KPROD_DEBUG=1`` to get the traceback of an unexpected error.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from kprod.cli.args import suggest
from kprod.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError

__all__ = ["main"]

#: command -> (module in kprod.cli, one-line summary)
COMMANDS = {
    "produce": ("produce", "send one record per line of stdin or a file (kafka-console-producer)"),
    "perf": ("perf", "measure throughput and latency (kafka-producer-perf-test)"),
    "cluster": ("cluster_cmd", "run an embedded Kafka-protocol cluster: a development and test tool, not a production broker"),
}

USAGE = "usage: kprod [--version] [--help] <command> [options]"


def _help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        USAGE,
        "",
        "kprod: a Kafka producer for Python, with Kafka's console producer and perf tool.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()),
        "",
        "Without --bootstrap-server, produce and perf start an embedded 3-broker cluster for the run.",
        "Run 'kprod <command> --help' for a command's options.",
    ]
    return "\n".join(lines)


def _version() -> str:
    from kprod._version import __version__

    return f"kprod {__version__} (Python {sys.version.split()[0]})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kprod`` command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(_help(), file=sys.stderr)
        return EXIT_USAGE
    first = args[0]
    if first in ("-h", "--help", "help"):
        print(_help())
        return 0
    if first in ("-V", "--version"):
        print(_version())
        return 0
    if first not in COMMANDS:
        what = "option" if first.startswith("-") else "command"
        print(
            f"kprod: error: unknown {what} '{first}'{suggest(first, COMMANDS)}"
            f" (commands: {', '.join(COMMANDS)}; see 'kprod --help')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    prog = f"kprod {first}"
    try:
        if first != "cluster":  # the cluster configures its own logging (--log-level)
            _quiet_logging(prog)
        module = importlib.import_module(f"kprod.cli.{COMMANDS[first][0]}")
        status: int = module.run(args[1:], prog=prog)
        return status
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{prog}: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an unforeseen failure: still one line, unless debugging
        if os.environ.get("KPROD_DEBUG"):
            raise
        from kprod.errors import KafkaError

        if isinstance(exc, KafkaError):
            print(f"{prog}: error: {exc}", file=sys.stderr)
        else:
            print(
                f"{prog}: error: unexpected {type(exc).__name__}: {exc}"
                " (set KPROD_DEBUG=1 for the traceback, and please report it)",
                file=sys.stderr,
            )
        return EXIT_FAILED


def _quiet_logging(prog: str) -> None:
    """Show the producer's warnings as ``kprod perf: warning: ...`` lines, each distinct one once."""
    import logging

    if logging.root.handlers:
        return
    seen: set[str] = set()

    class _Once(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            text = record.getMessage()
            if text in seen:
                return False
            seen.add(text)
            return True

    class _Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"{prog}: {record.levelname.lower()}: {record.getMessage()}"

    handler = logging.StreamHandler()
    handler.addFilter(_Once())
    handler.setFormatter(_Formatter())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.WARNING)
