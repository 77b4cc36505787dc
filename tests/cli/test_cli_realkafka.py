"""``kprod perf`` and ``kprod produce`` against real Apache Kafka 4.x, read back by confluent-kafka."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cli_helpers import SUMMARY, assert_one_line_error, run_kprod

from tests.helpers import consume_all, high_watermarks

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., str]


def test_perf_on_real_kafka_writes_exactly_n_records(kafka: Any, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=6, replication_factor=3)
    run = run_kprod(
        "perf", "--topic", topic, "--num-records", "20000", "--record-size", "100",
        "--bootstrap-server", kafka.bootstrap_servers,
    )
    assert run.status == 0, str(run)
    summary = SUMMARY.match(run.out.strip().splitlines()[-1])
    assert summary is not None, run.out
    assert int(summary["count"]) == 20000
    assert "Started an embedded" not in run.err
    assert sum(high_watermarks(kafka.bootstrap_servers, topic, range(6)).values()) == 20000
    messages = consume_all(kafka.bootstrap_servers, topic, range(6), expected=20000)
    values = [m.value for records in messages.values() for m in records]
    assert len(values) == 20000
    assert all(v is not None and len(v) == 100 and v.isalpha() and v.isupper() for v in values)


def test_perf_json_with_producer_settings_on_real_kafka(kafka: Any, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=3, replication_factor=3)
    run = run_kprod(
        "perf", "--topic", topic, "--num-records", "5000", "--record-size", "200", "--json",
        "--bootstrap-server", kafka.bootstrap_servers,
        "--producer-prop", "acks=1", "compression.type=zstd", "linger.ms=10",
    )
    assert run.status == 0, str(run)
    summary = json.loads(run.out)
    assert (summary["records_sent"], summary["records_failed"], summary["bytes"]) == (5000, 0, 5000 * 200)
    assert summary["records_in_topic"] is None  # only known for the embedded cluster
    assert sum(high_watermarks(kafka.bootstrap_servers, topic, range(3)).values()) == 5000


def test_produce_keys_and_headers_on_real_kafka(kafka: Any, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=1, replication_factor=3)
    run = run_kprod(
        "produce", "--topic", topic, "--bootstrap-server", kafka.bootstrap_servers,
        "--property", "parse.key=true", "--property", "key.separator=:", "--property", "parse.headers=true",
        stdin=b"source:cli,n:1\tk1:v1\n\tk2:\n",
    )
    assert run.status == 0, str(run)
    messages = consume_all(kafka.bootstrap_servers, topic, [0], expected=2)[0]
    assert [(m.key, m.value, m.headers) for m in messages] == [
        (b"k1", b"v1", [("source", b"cli"), ("n", b"1")]),
        (b"k2", b"", []),
    ]


def test_unknown_topic_on_real_kafka(kafka: Any) -> None:
    run = run_kprod(
        "perf", "--topic", "kprod-cli-no-such-topic", "--num-records", "10", "--record-size", "10",
        "--bootstrap-server", kafka.bootstrap_servers, "--producer-prop", "max.block.ms=1500",
    )
    assert_one_line_error(run, 1, "Topic kprod-cli-no-such-topic not present in metadata after 1500 ms")
