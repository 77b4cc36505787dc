"""``kprod perf`` as a subprocess: Kafka's output format, exact record counts, throttling, failures."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from cli_helpers import SUMMARY, WINDOW, assert_one_line_error, kprod_command, run_kprod

from kprod.cluster import EmbeddedCluster
from tests.helpers import consume_all

EMBEDDED_LINE = (
    "Started an embedded 3-broker cluster at {} (a development cluster, not for production);"
    " topic {}: 6 partitions, replication factor 3."
)


def _summary(out: str) -> dict[str, str]:
    lines = out.strip().splitlines()
    assert lines, "no output"
    match = SUMMARY.match(lines[-1])
    assert match is not None, f"last line is not Kafka's summary: {lines[-1]!r}"
    for line in lines[:-1]:
        assert WINDOW.match(line), f"not a 5-second line: {line!r}"
    return match.groupdict()


def test_perf_on_the_embedded_cluster_prints_the_summary_and_writes_every_record() -> None:
    run = run_kprod("perf", "--topic", "bench", "--num-records", "20000", "--record-size", "100")
    assert run.status == 0, str(run)
    summary = _summary(run.out)
    assert int(summary["count"]) == 20000
    assert float(summary["rate"]) > 0
    assert int(summary["p50"]) <= int(summary["p95"]) <= int(summary["p99"]) <= int(summary["p999"])
    assert int(summary["p999"]) <= float(summary["max"])
    err = run.err.splitlines()
    assert err[0].startswith("Started an embedded 3-broker cluster at 127.0.0.1:")
    bootstrap = err[0].split(" at ", 1)[1].split(" ", 1)[0]
    assert err[0] == EMBEDDED_LINE.format(bootstrap, "bench")
    # the cluster's own count, taken by the CLI before it stops the cluster
    assert "The embedded cluster holds 20000 records in topic bench; it stops now and its data is discarded." in err


def test_perf_json_is_one_object_with_the_totals() -> None:
    run = run_kprod("perf", "--topic", "bench", "--num-records", "3000", "--record-size", "64", "--json")
    assert run.status == 0, str(run)
    summary = json.loads(run.out)  # stdout holds the JSON object and nothing else
    assert summary["topic"] == "bench"
    assert summary["num_records"] == 3000
    assert summary["records_sent"] == 3000
    assert summary["records_failed"] == 0
    assert summary["records_in_topic"] == 3000
    assert summary["bytes"] == 3000 * 64
    assert summary["embedded_cluster"] is True
    assert summary["record_size"] == 64
    assert summary["throughput_limit"] is None
    assert summary["errors"] == []
    assert 0 <= summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["p999_ms"]
    assert summary["p999_ms"] <= summary["max_latency_ms"]
    assert summary["records_per_sec"] == pytest.approx(3000 * 1000 / max(summary["elapsed_ms"], 1), abs=0.1)


def test_perf_records_are_read_back_exactly_by_confluent_kafka(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=3, replication_factor=3)
    run = run_kprod(
        "perf", "--topic", topic_name, "--num-records", "5000", "--record-size", "37",
        "--bootstrap-server", cluster.bootstrap_servers, "--producer-prop", "compression.type=lz4", "linger.ms=2",
    )
    assert run.status == 0, str(run)
    assert int(_summary(run.out)["count"]) == 5000
    assert "Started an embedded" not in run.err
    messages = consume_all(cluster.bootstrap_servers, topic_name, range(3), expected=5000)
    values = [m.value for records in messages.values() for m in records]
    assert len(values) == 5000
    assert all(m.key is None and m.headers == [] for records in messages.values() for m in records)
    assert all(value is not None and len(value) == 37 and value.isalpha() and value.isupper() for value in values)
    assert len(set(values)) > 1  # a pool of random payloads, not one repeated value
    assert sum(cluster.end_offset(topic_name, p) for p in range(3)) == 5000


def test_perf_payload_file(cluster: EmbeddedCluster, topic_name: str, tmp_path: Path) -> None:
    payloads = [b"alpha", b"beta", "gr\u00fc\u00dfe".encode()]
    path = tmp_path / "payloads.txt"
    path.write_bytes(b"|".join(payloads) + b"|")
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    run = run_kprod(
        "perf", "--topic", topic_name, "--num-records", "300", "--payload-file", str(path),
        "--payload-delimiter", "|", "--bootstrap-server", cluster.bootstrap_servers, "--json",
    )
    assert run.status == 0, str(run)
    assert f"Read 3 payloads from {path.resolve()}." in run.err
    summary = json.loads(run.out)
    assert summary["records_sent"] == 300
    values = [m.value for m in consume_all(cluster.bootstrap_servers, topic_name, [0], expected=300)[0]]
    assert len(values) == 300
    assert set(values) == set(payloads)  # 300 random picks from 3 payloads: each shows up
    assert summary["bytes"] == sum(len(v) for v in values if v is not None)


def test_perf_throughput_limit_is_respected(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=2, replication_factor=1)
    run = run_kprod(
        "perf", "--topic", topic_name, "--num-records", "400", "--record-size", "10", "--throughput", "200",
        "--bootstrap-server", cluster.bootstrap_servers, "--json",
    )
    assert run.status == 0, str(run)
    summary = json.loads(run.out)
    assert summary["records_sent"] == 400
    assert summary["throughput_limit"] == 200.0
    # record i is not sent before i/200 s: the last one not before 1.995 s (2 ms early at most)
    assert summary["elapsed_ms"] >= 1995 - 2
    assert summary["records_per_sec"] <= 200 * 1.01


def test_perf_counts_failed_records_without_crashing(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1, config={"max.message.bytes": "300"})
    run = run_kprod(
        "perf", "--topic", topic_name, "--num-records", "20", "--record-size", "500",
        "--bootstrap-server", cluster.bootstrap_servers, "--json",
    )
    assert run.status == 1, str(run)
    assert "Traceback" not in run.err
    summary = json.loads(run.out)
    assert summary["records_sent"] == 0
    assert summary["records_failed"] == 20
    assert sum(e["records"] for e in summary["errors"]) == 20  # one entry per distinct message
    assert all(e["error"].startswith("MessageTooLargeError: ") for e in summary["errors"])
    assert "kprod perf: a record failed: MessageTooLargeError: " in run.err
    assert "kprod perf: 20 of 20 records failed." in run.err
    assert cluster.end_offset(topic_name, 0) == 0


def test_perf_record_larger_than_max_request_size_is_one_error(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    run = run_kprod(
        "perf", "--topic", topic_name, "--num-records", "10", "--record-size", "2000",
        "--bootstrap-server", cluster.bootstrap_servers, "--producer-prop", "max.request.size=1000",
    )
    assert_one_line_error(run, 1, "is 2000 bytes serialized, larger than max.request.size (1000 bytes)")
    assert cluster.end_offset(topic_name, 0) == 0


def test_perf_unknown_topic_fails_after_max_block_ms(topic_name: str) -> None:
    with EmbeddedCluster(brokers=1, config={"auto.create.topics.enable": "false"}) as strict:
        run = run_kprod(
            "perf", "--topic", topic_name, "--num-records", "10", "--record-size", "10",
            "--bootstrap-server", strict.bootstrap_servers, "--producer-prop", "max.block.ms=800",
        )
    assert_one_line_error(
        run, 1, f"Topic {topic_name} not present in metadata after 800 ms (max.block.ms).", "UNKNOWN_TOPIC_OR_PARTITION"
    )


def test_perf_prints_5_second_windows_and_stops_cleanly_on_ctrl_c(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    process = subprocess.Popen(
        kprod_command(
            "perf", "--topic", topic_name, "--num-records", "100000", "--record-size", "10", "--throughput", "100",
            "--bootstrap-server", cluster.bootstrap_servers,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        window = process.stdout.readline().decode()  # the first 5-second line: the loop is running
        match = WINDOW.match(window.rstrip("\n"))
        assert match is not None, window
        assert 100 <= int(match["count"]) <= 700  # about 5 s at 100 records/s
        assert float(match["rate"]) <= 100 * 1.05
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert b"kprod perf: interrupted." in err
    lines = out.decode().strip().splitlines()
    summary = SUMMARY.match(lines[-1])
    assert summary is not None, lines
    sent = int(summary["count"])
    assert int(match["count"]) <= sent < 100000
    # everything handed to the producer before Ctrl-C was delivered, and counted once
    assert cluster.end_offset(topic_name, 0) == sent


def test_perf_against_kprod_cluster_command(topic_name: str) -> None:
    """``kprod cluster`` in one process, ``kprod perf`` in another, confluent-kafka reading back."""
    server = subprocess.Popen(
        kprod_command("cluster", "--brokers", "3"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert server.stdout is not None and server.stderr is not None
    try:
        bootstrap = server.stdout.readline().decode().strip()
        assert bootstrap.count("127.0.0.1:") == 3, bootstrap
        run = run_kprod(
            "perf", "--topic", topic_name, "--num-records", "2000", "--record-size", "50",
            "--bootstrap-server", bootstrap,
        )
        assert run.status == 0, str(run)
        assert int(_summary(run.out)["count"]) == 2000
        messages = consume_all(bootstrap, topic_name, [0], expected=2000)  # auto-created: 1 partition
        assert len(messages[0]) == 2000
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        assert b"kprod embedded cluster stopped." in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_perf_draws_a_progress_bar_on_a_terminal(cluster: EmbeddedCluster, topic_name: str) -> None:
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    master, slave = pty.openpty()
    process = subprocess.Popen(
        kprod_command(
            "perf", "--topic", topic_name, "--num-records", "150", "--record-size", "10", "--throughput", "100",
            "--bootstrap-server", cluster.bootstrap_servers,
        ),
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    terminal = bytearray()

    def drain() -> None:  # keep the terminal's buffer from filling while the process runs
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                return
            if not chunk:
                return
            terminal.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)
    os.close(master)
    assert process.returncode == 0
    assert SUMMARY.match(out.decode().strip().splitlines()[-1])
    text = terminal.decode("utf-8", "replace")
    assert re.search(r"\r\[[█░#-]{10,40}\] +\d+%  \d+/150 records  \d+ rec/s\x1b\[K", text), repr(text)
    assert text.endswith("\r\x1b[K")  # erased at the end


def test_perf_payload_file_counts_records_too_large_to_send(
    cluster: EmbeddedCluster, topic_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "payloads.txt"
    path.write_bytes(b"small\n" + b"x" * 3000 + b"\n")
    cluster.create_topic(topic_name, partitions=1, replication_factor=1)
    run = run_kprod(
        "perf", "--topic", topic_name, "--num-records", "200", "--payload-file", str(path),
        "--bootstrap-server", cluster.bootstrap_servers, "--producer-prop", "max.request.size=2000", "--json",
    )
    assert run.status == 1, str(run)
    summary = json.loads(run.out)
    assert summary["records_sent"] + summary["records_failed"] == 200
    assert summary["records_sent"] > 0 and summary["records_failed"] > 0  # 200 random picks of 2 payloads
    assert summary["errors"] == [
        {
            "error": f"RecordTooLargeError: The record for topic {topic_name} is 3000 bytes serialized, larger than"
            " max.request.size (2000 bytes); it was not sent. Raise max.request.size (and the topic's"
            " max.message.bytes) or send smaller records.",
            "records": summary["records_failed"],
        }
    ]
    assert f"kprod perf: {summary['records_failed']} of 200 records failed." in run.err
    assert cluster.end_offset(topic_name, 0) == summary["records_sent"]


def test_perf_print_metrics_prints_the_producer_metrics_table() -> None:
    run = run_kprod("perf", "--topic", "bench", "--num-records", "2500", "--record-size", "80", "--print-metrics")
    assert run.status == 0, str(run)
    lines = run.out.splitlines()
    _summary(lines[0])
    assert lines[1].startswith("Metric Name") and lines[1].rstrip().endswith("Value")
    table = dict(line.rsplit(" : ", 1) for line in lines[2:])
    names = [name.strip() for name in table]
    assert names == sorted(names)
    values = {name.strip(): float(value) for name, value in table.items()}
    # Each record sent once (no faults on a fresh embedded cluster), and all of it flushed.
    assert values["producer-metrics:record-send-total:{client-id=kprod-perf}"] == 2500
    assert values["producer-topic-metrics:record-send-total:{client-id=kprod-perf,topic=bench}"] == 2500
    assert values["producer-metrics:record-error-total:{client-id=kprod-perf}"] == 0
    assert values["producer-metrics:buffer-available-bytes:{client-id=kprod-perf}"] == 33554432
    assert any(name.startswith("producer-node-metrics:request-total:") for name in names)


def test_perf_print_metrics_in_json() -> None:
    run = run_kprod("perf", "--topic", "bench", "--num-records", "500", "--record-size", "10", "--json",
                    "--print-metrics")
    assert run.status == 0, str(run)
    metrics = json.loads(run.out)["metrics"]
    assert metrics["producer-metrics:record-send-total:{client-id=kprod-perf}"] == 500
