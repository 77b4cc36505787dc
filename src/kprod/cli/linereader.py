"""Turn a line of input into a record's headers, key and value, as kafka-console-producer does.

The properties and their defaults are Java's ``LineMessageReader``'s:
``parse.key`` (false), ``key.separator`` (tab), ``parse.headers`` (false),
``headers.delimiter`` (tab), ``headers.separator`` (``,``),
``headers.key.separator`` (``:``), ``ignore.error`` (false), ``null.marker``
(none). A line with headers and a key reads
``h1:v1,h2:v2<headers.delimiter>key<key.separator>value``.

Lines stay bytes: keys and values are sent exactly as read (any encoding);
only header keys, which Kafka defines as strings, must be UTF-8. Two
deliberate differences from Java: ``headers.separator`` is plain text, not
a regular expression, and an empty headers part means no headers rather
than an error.
"""

from __future__ import annotations

from collections.abc import Mapping

from kprod.cli.args import suggest
from kprod.cli.errors import UsageError

__all__ = ["LineError", "LineParser", "PROPERTIES"]

#: Every property ``--property`` accepts, with its default.
PROPERTIES: dict[str, str | None] = {
    "parse.key": "false",
    "key.separator": "\t",
    "parse.headers": "false",
    "headers.delimiter": "\t",
    "headers.separator": ",",
    "headers.key.separator": ":",
    "ignore.error": "false",
    "null.marker": None,
}

_SEPARATORS = ("key.separator", "headers.delimiter", "headers.separator", "headers.key.separator")

Headers = list[tuple[str, bytes | None]]


class LineError(ValueError):
    """A line does not have the shape the properties describe (the record is not sent)."""


def _boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise UsageError(f"--property {name}={value!r}: give true or false")
    return lowered == "true"


def _shown(line: bytes, limit: int = 80) -> str:
    text = line.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


class LineParser:
    """Parses lines per the console producer's properties; :meth:`parse` is called once per line."""

    def __init__(self, properties: Mapping[str, str]) -> None:
        for name in properties:
            if name not in PROPERTIES:
                raise UsageError(
                    f"unknown --property {name!r}{suggest(name, PROPERTIES)}"
                    f" (known: {', '.join(PROPERTIES)})"
                )
        settings = {**PROPERTIES, **properties}
        self.parse_key = _boolean("parse.key", settings["parse.key"] or "")
        self.parse_headers = _boolean("parse.headers", settings["parse.headers"] or "")
        self.ignore_error = _boolean("ignore.error", settings["ignore.error"] or "")
        for name in _SEPARATORS:
            if not settings[name]:
                raise UsageError(f"--property {name} must not be empty")
        marker = settings["null.marker"]
        self.null_marker: bytes | None = marker.encode() if marker is not None else None
        self.key_separator = (settings["key.separator"] or "").encode()
        self.headers_delimiter = (settings["headers.delimiter"] or "").encode()
        self.headers_separator = (settings["headers.separator"] or "").encode()
        self.headers_key_separator = (settings["headers.key.separator"] or "").encode()
        self._check_distinct(settings)

    def _check_distinct(self, settings: Mapping[str, str | None]) -> None:
        pairs = [
            ("headers.delimiter", "headers.separator"),
            ("headers.delimiter", "headers.key.separator"),
            ("headers.separator", "headers.key.separator"),
        ]
        if settings["null.marker"] is not None:
            pairs += [("null.marker", name) for name in _SEPARATORS]
        for first, second in pairs:
            if settings[first] == settings[second]:
                raise UsageError(f"--property {first} and {second} may not be equal ({settings[first]!r})")

    def parse(self, line: bytes, number: int) -> tuple[bytes | None, bytes | None, Headers | None]:
        """``(key, value, headers)`` of one line (without its line ending)."""
        start = 0
        header_part: bytes | None = None
        if self.parse_headers:
            index = line.find(self.headers_delimiter)
            if index >= 0:
                header_part = line[:index]
                start = index + len(self.headers_delimiter)
            elif not self.ignore_error:
                raise LineError(
                    f"no headers delimiter {self.headers_delimiter.decode()!r} on line {number}: {_shown(line)}"
                )
        key: bytes | None = None
        if self.parse_key:
            index = line.find(self.key_separator, start)
            if index >= 0:
                key = line[start:index]
                start = index + len(self.key_separator)
            elif not self.ignore_error:
                raise LineError(f"no key separator {self.key_separator.decode()!r} on line {number}: {_shown(line)}")
        value: bytes | None = line[start:] if start else line
        marker = self.null_marker
        if marker is not None:
            if key == marker:
                key = None
            if value == marker:
                value = None
        headers = None
        if header_part and header_part != marker:
            headers = self._headers(header_part, number)
        return key, value, headers

    def _headers(self, part: bytes, number: int) -> Headers:
        headers: Headers = []
        separator = self.headers_key_separator
        marker = self.null_marker
        for pair in part.split(self.headers_separator):
            index = pair.find(separator)
            if index < 0:
                if not self.ignore_error:
                    raise LineError(
                        f"no header key separator {separator.decode()!r} in header {_shown(pair)} on line {number}"
                    )
                raw_key, raw_value = pair, None
            else:
                raw_key, raw_value = pair[:index], pair[index + len(separator) :]
            if marker is not None and raw_key == marker:
                raise LineError(f"a header key equals the null marker on line {number}: header keys cannot be null")
            try:
                header_key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                raise LineError(f"header key {raw_key!r} on line {number} is not UTF-8 text") from None
            headers.append((header_key, None if raw_value == marker and marker is not None else raw_value))
        return headers
