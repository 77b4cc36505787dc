"""Command-line parsing shared by the commands: one-line errors, numbers, properties.

argparse prints a usage block and exits from inside ``parse_args``; here a bad
command line raises :class:`UsageError` with one line that names the option
and, for a misspelt one, the option meant. Producer settings come the Java
tools' way: a ``.properties`` file (``--producer.config``) overridden by
``KEY=VALUE`` pairs (``--producer-prop``), overridden by ``--bootstrap-server``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kprod.cli.errors import UsageError

__all__ = [
    "CommandParser",
    "add_producer_options",
    "key_value",
    "load_properties",
    "parse_properties",
    "positive_int",
    "producer_config",
    "suggest",
    "throughput",
]


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` (one line) instead of exiting."""

    def __init__(self, prog: str, description: str, epilog: str | None = None) -> None:
        super().__init__(
            prog=prog,
            description=description,
            epilog=epilog,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse ``argv``; an unknown option is reported with the closest known one."""
        options, extra = self.parse_known_args(list(argv))
        if extra:
            word = extra[0]
            if word.startswith("-"):
                name = word.partition("=")[0]
                known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
                raise UsageError(f"unknown option '{name}'{suggest(name, known)} (see '{self.prog} --help')")
            raise UsageError(f"unexpected argument '{word}' (see '{self.prog} --help')")
        return options


def suggest(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def positive_int(option: str) -> Any:
    """An argparse ``type`` for ``option`` accepting integers >= 1 (``1_000_000`` and ``1e6`` too)."""

    def parse(text: str) -> int:
        value: float | int
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = math.nan
        if not (isinstance(value, int) or (math.isfinite(value) and value == int(value))) or value < 1:
            raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
        return int(value)

    return parse


def throughput(text: str) -> float:
    """``--throughput``: records per second > 0, or any negative number for no limit (Java's -1)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value == 0:
        raise argparse.ArgumentTypeError(
            f"must be a number of records per second above 0, or -1 for no limit, not {text!r}"
        )
    return value if value > 0 else -1.0


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may itself contain ``=``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_producer_options(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-server``, ``--producer-prop`` and ``--producer.config``, as in Kafka's tools."""
    parser.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="the Kafka cluster to produce to; without it (and without bootstrap.servers in the producer"
        " settings) kprod starts an embedded 3-broker development cluster for the run",
    )
    for option in ("--producer-prop", "--producer-props", "--producer-property", "--command-property"):
        parser.add_argument(
            option,
            dest="producer_props",
            action="extend",
            nargs="+",
            type=key_value,
            default=[],
            metavar="KEY=VALUE",
            help=(
                "a producer setting with its Java key, e.g. acks=1 linger.ms=10 compression.type=lz4"
                " (repeatable; overrides --producer.config; Kafka's spellings --producer-props,"
                " --producer-property and --command-property work too)"
            )
            if option == "--producer-prop"
            else argparse.SUPPRESS,
        )
    parser.add_argument(
        "--producer.config",
        "--command-config",
        dest="producer_config",
        metavar="FILE",
        help="a Java .properties file of producer settings, e.g. security.protocol, ssl.* and sasl.*"
        " (Kafka 4.2+ tools call it --command-config); secrets in it are never printed",
    )


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java ``.properties`` text: ``key=value``, ``key: value`` or ``key value``;
    ``#``/``!`` comments; a trailing backslash continues the line; ``\\t \\n \\uXXXX`` escapes."""
    result: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            logical += line[:-1]
            continue
        logical += line
        key, value = _split_property(logical)
        result[key] = value
        logical = ""
    if logical:
        key, value = _split_property(logical)
        result[key] = value
    return result


def _split_property(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line) and line[i] not in "=: \t\f":
        i += 2 if line[i] == "\\" else 1
    key = line[:i]
    rest = line[i:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(key), _unescape(rest)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and i + 6 <= len(text):
            try:
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            except ValueError:
                pass
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
        i += 2
    return "".join(out)


def load_properties(path: str) -> dict[str, str]:
    """Read a ``.properties`` file; a missing or unreadable file is a :class:`UsageError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--producer.config: no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--producer.config: cannot read {path}: {exc}") from None
    return parse_properties(text)


def producer_config(options: argparse.Namespace, defaults: dict[str, str]) -> dict[str, str]:
    """Merge ``defaults`` < ``--producer.config`` < ``--producer-prop`` < ``--bootstrap-server``."""
    config = dict(defaults)
    if options.producer_config:
        config.update(load_properties(options.producer_config))
    config.update(dict(options.producer_props))
    if options.bootstrap_server is not None:
        if not options.bootstrap_server.strip():
            raise UsageError("--bootstrap-server is empty: give host:port of at least one broker")
        config["bootstrap.servers"] = options.bootstrap_server
    return config
