"""``kprod produce`` as a subprocess: lines in, records read back exactly by confluent-kafka."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_kprod

from kprod.cluster import EmbeddedCluster
from tests.helpers import Message, consume_all


def _records(messages: dict[int, list[Message]]) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    return [(m.key, m.value, m.headers) for p in sorted(messages) for m in messages[p]]


def test_keys_and_headers_from_stdin_are_read_back_exactly(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    lines = (
        b"trace:abc,user:7\tk1\tfirst value\n"
        b"trace:def\tk2\t\n"  # an empty value
        b"\tk3\tno headers\n"  # an empty headers part: no headers
        b"lang:\xc3\xa9t\xc3\xa9\tcl\xc3\xa9\tvaleur \xc3\xa0 la ligne\r\n"  # UTF-8, CRLF ending
        b"a:1,b:\tk5\tvalue\twith\ttabs\n"  # an empty header value; tabs after the key stay in the value
        b"NULL\tNULL\tNULL\n"  # the null marker: no headers, null key, null value
        b"h:NULL\t\tlast"  # an empty key, a null header value, no final newline
    )
    run = run_kprod(
        "produce", "--topic", topic_name, "--bootstrap-server", cluster.bootstrap_servers,
        "--property", "parse.key=true", "--property", "parse.headers=true", "--property", "null.marker=NULL",
        stdin=lines,
    )
    assert run.status == 0, str(run)
    assert run.out == ""
    assert run.err == ""
    records = _records(consume_all(cluster.bootstrap_servers, topic_name, [0], expected=7))
    assert records == [
        (b"k1", b"first value", [("trace", b"abc"), ("user", b"7")]),
        (b"k2", b"", [("trace", b"def")]),
        (b"k3", b"no headers", []),
        ("cl\u00e9".encode(), "valeur \u00e0 la ligne".encode(), [("lang", "\u00e9t\u00e9".encode())]),
        (b"k5", b"value\twith\ttabs", [("a", b"1"), ("b", b"")]),
        (None, None, []),
        (b"", b"last", [("h", None)]),
    ]


def test_custom_separators_and_sync(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    run = run_kprod(
        "produce", "--topic", topic_name, "--bootstrap-server", cluster.bootstrap_servers, "--sync",
        "--property", "parse.key=true", "--property", "key.separator=::",
        "--property", "parse.headers=true", "--property", "headers.delimiter=|",
        "--property", "headers.separator=;", "--property", "headers.key.separator==",
        stdin=b"x=1;y=2|key::a::b\n|plain::value\n",
    )
    assert run.status == 0, str(run)
    assert _records(consume_all(cluster.bootstrap_servers, topic_name, [0], expected=2)) == [
        (b"key", b"a::b", [("x", b"1"), ("y", b"2")]),
        (b"plain", b"value", []),
    ]


def test_values_only_from_a_file(cluster: EmbeddedCluster, topic_name: str, tmp_path: Path) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    path = tmp_path / "lines.txt"
    path.write_bytes(b"one\n\ntwo\tthree\nfour:five\n")
    run = run_kprod("produce", "--topic", topic_name, "--bootstrap-server", cluster.bootstrap_servers, "--file", str(path))
    assert run.status == 0, str(run)
    assert _records(consume_all(cluster.bootstrap_servers, topic_name, [0], expected=4)) == [
        (None, b"one", []),
        (None, b"", []),  # an empty line is an empty record, as in Kafka's console producer
        (None, b"two\tthree", []),
        (None, b"four:five", []),
    ]


@pytest.mark.parametrize("sync", [False, True])
def test_bad_lines_are_reported_and_the_rest_is_sent(cluster: EmbeddedCluster, topic_name: str, sync: bool) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    big = b"v" * 3000
    run = run_kprod(
        "produce", "--topic", topic_name, "--bootstrap-server", cluster.bootstrap_servers,
        "--property", "parse.key=true", "--property", "key.separator=:",
        "--producer-prop", "max.request.size=2000", *(["--sync"] if sync else []),
        stdin=b"a:1\nno separator here\nb:2\nc:" + big + b"\nd:4\n",
    )
    assert run.status == 1, str(run)
    assert "Traceback" not in run.err
    assert run.err.splitlines() == [
        "kprod produce: no key separator ':' on line 2: 'no separator here'",
        "kprod produce: line 4 not sent: RecordTooLargeError: The record for topic "
        f"{topic_name} is 3001 bytes serialized, larger than max.request.size (2000 bytes); it was not sent."
        " Raise max.request.size (and the topic's max.message.bytes) or send smaller records.",
        "kprod produce: 2 of 5 records failed.",
    ]
    assert _records(consume_all(cluster.bootstrap_servers, topic_name, [0], expected=3)) == [
        (b"a", b"1", []),
        (b"b", b"2", []),
        (b"d", b"4", []),
    ]


def test_ignore_error_sends_lines_without_a_key(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    run = run_kprod(
        "produce", "--topic", topic_name, "--bootstrap-server", cluster.bootstrap_servers,
        "--property", "parse.key=true", "--property", "key.separator=:", "--property", "ignore.error=true",
        stdin=b"k:v\nkeyless\n",
    )
    assert run.status == 0, str(run)
    assert _records(consume_all(cluster.bootstrap_servers, topic_name, [0], expected=2)) == [
        (b"k", b"v", []),
        (None, b"keyless", []),
    ]


def test_broker_side_failures_are_reported_per_line(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1, config={"max.message.bytes": "200"})
    run = run_kprod(
        "produce", "--topic", topic_name, "--bootstrap-server", cluster.bootstrap_servers, "--sync",
        stdin=b"small\n" + b"x" * 400 + b"\n",
    )
    assert run.status == 1, str(run)
    assert "Traceback" not in run.err
    failed = [line for line in run.err.splitlines() if "not sent" in line]
    assert len(failed) == 1
    assert failed[0].startswith("kprod produce: line 2 not sent: MessageTooLargeError: ")
    assert "kprod produce: 1 of 2 records failed." in run.err
    assert _records(consume_all(cluster.bootstrap_servers, topic_name, [0], expected=1)) == [(None, b"small", [])]


def test_produce_on_the_embedded_cluster_says_so_and_counts() -> None:
    run = run_kprod("produce", "--topic", "demo", stdin=b"a\nb\nc\n")
    assert run.status == 0, str(run)
    lines = run.err.splitlines()
    assert lines[0].startswith("Started an embedded 3-broker cluster at 127.0.0.1:")
    assert lines[0].endswith(
        "(a development cluster, not for production); topic demo: 1 partition, replication factor 3."
    )
    assert lines[1:] == ["The embedded cluster holds 3 records in topic demo; it stops now and its data is discarded."]


def test_produce_unknown_topic_fails_after_max_block_ms(topic_name: str) -> None:
    with EmbeddedCluster(brokers=1, config={"auto.create.topics.enable": "false"}) as strict:
        run = run_kprod(
            "produce", "--topic", topic_name, "--bootstrap-server", strict.bootstrap_servers,
            "--producer-prop", "max.block.ms=800", stdin=b"x\n",
        )
    assert_one_line_error(run, 1, f"Topic {topic_name} not present in metadata after 800 ms (max.block.ms).")
