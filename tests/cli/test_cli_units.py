"""The CLI's pure parts in-process: .properties parsing, line parsing, perf statistics."""

from __future__ import annotations

import io
import time

import pytest

from kprod.cli.args import parse_properties
from kprod.cli.errors import UsageError
from kprod.cli.linereader import LineError, LineParser
from kprod.cli.perfstats import HISTOGRAM_MS, PerfStats, percentiles, window_line
from kprod.cli.progress import ProgressBar
from kprod.cli.runtime import Console
from kprod.record import RecordMetadata

# -- .properties files --------------------------------------------------------------------------


def test_properties_separators_comments_and_whitespace() -> None:
    text = "# comment\n! also a comment\n\n  acks = all\nlinger.ms:5\nclient.id kprod\nempty=\nk=v=w\n"
    assert parse_properties(text) == {"acks": "all", "linger.ms": "5", "client.id": "kprod", "empty": "", "k": "v=w"}


def test_properties_continuation_and_escapes() -> None:
    text = "bootstrap.servers=a:9092,\\\n    b:9092\nkey\\=with\\:seps=x\ntab=a\\tb\nuni=\\u00e9\nslash=c:\\\\dir\n"
    assert parse_properties(text) == {
        "bootstrap.servers": "a:9092,b:9092",
        "key=with:seps": "x",
        "tab": "a\tb",
        "uni": "\u00e9",
        "slash": "c:\\dir",
    }


# -- console producer lines ----------------------------------------------------------------------


def test_plain_lines_are_values() -> None:
    parser = LineParser({})
    assert parser.parse(b"a\tb:c", 1) == (None, b"a\tb:c", None)
    assert parser.parse(b"", 2) == (None, b"", None)


def test_key_and_headers_with_java_defaults() -> None:
    parser = LineParser({"parse.key": "true", "parse.headers": "TRUE"})
    assert parser.parse(b"h1:v1,h2:v2\tkey\tvalue\twith tab", 1) == (
        b"key",
        b"value\twith tab",
        [("h1", b"v1"), ("h2", b"v2")],
    )
    assert parser.parse(b"h:a:b\tk\tv", 2) == (b"k", b"v", [("h", b"a:b")])  # first ':' splits


@pytest.mark.parametrize(
    ("properties", "line", "message"),
    [
        ({"parse.key": "true"}, b"novalue", "no key separator '\\t' on line 7: 'novalue'"),
        ({"parse.headers": "true"}, b"noheaders", "no headers delimiter '\\t' on line 7: 'noheaders'"),
        ({"parse.headers": "true"}, b"bad\tv", "no header key separator ':' in header 'bad' on line 7"),
        ({"parse.headers": "true"}, b"\xff:1\tv", "header key b'\\xff' on line 7 is not UTF-8 text"),
        (
            {"parse.headers": "true", "null.marker": "N"},
            b"N:1\tv",
            "a header key equals the null marker on line 7: header keys cannot be null",
        ),
    ],
)
def test_malformed_lines(properties: dict[str, str], line: bytes, message: str) -> None:
    with pytest.raises(LineError) as caught:
        LineParser(properties).parse(line, 7)
    assert str(caught.value) == message


def test_ignore_error_keeps_the_line() -> None:
    parser = LineParser({"parse.key": "true", "parse.headers": "true", "ignore.error": "true"})
    assert parser.parse(b"plain", 1) == (None, b"plain", None)
    assert parser.parse(b"flag\tk\tv", 2) == (b"k", b"v", [("flag", None)])


def test_long_lines_are_shortened_in_errors() -> None:
    with pytest.raises(LineError) as caught:
        LineParser({"parse.key": "true"}).parse(b"x" * 500, 1)
    assert str(caught.value) == f"no key separator '\\t' on line 1: '{'x' * 80}...'"


def test_null_marker_equal_to_a_separator_is_refused() -> None:
    with pytest.raises(UsageError, match="null.marker and headers.separator may not be equal"):
        LineParser({"null.marker": ","})


# -- perf statistics -----------------------------------------------------------------------------


def _metadata(timestamp: int, size: int = 100) -> RecordMetadata:
    return RecordMetadata("t", 0, 0, timestamp, -1, size)


def test_percentiles_follow_javas_rank_rule() -> None:
    histogram = [0] * 100
    for latency in range(1, 11):  # latencies 1..10, once each
        histogram[latency] = 1
    # Java: sorted[int(p * count)] -> p50 -> index 5 -> 6; p95 -> 9 -> 10; p99, p99.9 -> 9 -> 10
    assert percentiles(histogram, [], 10, (0.5, 0.95, 0.99, 0.999)) == [6, 10, 10, 10]
    assert percentiles(histogram, [], 0, (0.5,)) == [0]


def test_percentiles_reach_into_the_overflow() -> None:
    histogram = [0] * 10
    histogram[1] = 2
    assert percentiles(histogram, [500, 200], 4, (0.25, 0.5, 0.75)) == [1, 200, 500]


def test_window_line_format() -> None:
    assert window_line(5000, 500000, 5000, 12500, 40) == (
        "5000 records sent, 1000.0 records/sec (0.10 MB/sec), 2.5 ms avg latency, 40.0 ms max latency."
    )


def test_stats_count_latency_bytes_and_failures() -> None:
    start = time.time_ns() // 1_000_000
    stats = PerfStats(start, interval_ms=3_600_000)
    now = time.time_ns() // 1_000_000
    stats.callback(_metadata(now - 3, 10), None)
    stats.callback(_metadata(now - 7, 30), None)
    error = RuntimeError("boom")
    stats.callback(None, error)
    stats.callback(None, error)
    summary = stats.summary(start + 2000)
    assert summary.records_sent == 2
    assert summary.records_failed == 2
    assert summary.bytes == 40
    assert summary.elapsed_ms == 2000
    assert summary.records_per_sec == 1.0
    assert 3 <= summary.p50_ms <= summary.max_latency_ms
    assert 7 <= summary.max_latency_ms < 7 + 1000  # the test's own time between the two clock reads
    assert 5 <= summary.avg_latency_ms
    assert stats.errors == {"RuntimeError: boom": 2}


def test_stats_latency_beyond_the_histogram_and_backwards_clock() -> None:
    stats = PerfStats(0, interval_ms=10**15)
    now = time.time_ns() // 1_000_000
    stats.callback(_metadata(now - HISTOGRAM_MS - 5000), None)
    stats.callback(_metadata(now + 60_000), None)  # a timestamp from the future: the clock stepped back
    summary = stats.summary(now)
    assert summary.records_sent == 2
    assert summary.p50_ms >= HISTOGRAM_MS + 5000  # rank 1 of [0, overflow]
    assert summary.max_latency_ms >= HISTOGRAM_MS + 5000
    assert stats.histogram[0] == 1


def test_stats_print_a_window_line_and_start_a_new_window() -> None:
    lines: list[str] = []
    start = time.time_ns() // 1_000_000
    stats = PerfStats(start - 10_000, on_window=lines.append, interval_ms=5000)
    stats.callback(_metadata(time.time_ns() // 1_000_000), None)  # past the first 5 s: prints
    stats.callback(_metadata(time.time_ns() // 1_000_000), None)  # a new window: not yet
    assert len(lines) == 1
    assert lines[0].startswith("1 records sent, ")
    assert stats.acknowledged() == 2


def test_progress_bar_render() -> None:
    console = Console("kprod perf", out=io.StringIO(), err=io.StringIO())
    bar = ProgressBar(console, 200, lambda: 50, lambda: 10)
    text = bar.render(80)
    assert text.startswith("[")
    assert " 30%  50/200 records  " in text
    assert text.endswith("  10 failed")
    assert len(text) <= 79
