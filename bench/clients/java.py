"""The Java client, through Kafka's own ``org.apache.kafka.tools.ProducerPerformance``.

Two JVMs per run, both to the run's topic: a baseline sending only the warm-up records,
then the measured one sending warm-up plus measured records with ``--warmup-records``, whose
"steady state" line gives records/s and latency. CPU per record is the measured JVM's CPU
minus the baseline's (JVM start, JIT, metadata, warm-up), divided by the measured records.
Latency is ProducerPerformance's own: every record, whole milliseconds.
Keys: ProducerPerformance makes decimal-integer keys (``--key-distribution random``), up
to 10 bytes, not 16 random bytes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

from _common import Window, emit, emit_skip, load_spec, payload

_JVM_FLAGS = [
    "-Xmx512m",  # what kafka-producer-perf-test.sh gives the tool
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
]
_MAIN = "org.apache.kafka.tools.ProducerPerformance"
_SUMMARY = re.compile(
    r"^(?P<count>\d+) (?P<steady>steady state )?records sent, (?P<rps>[\d.]+) records/sec "
    r"\((?P<mbps>[\d.]+) MB/sec\), (?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th"
)


def main() -> None:
    spec = load_spec()
    if not spec.java or not spec.java_libs:
        emit_skip("java", "no java executable or Kafka jars given (bench/run.py fetches them)")
        return
    version = _kafka_version(spec.java_libs)
    with tempfile.NamedTemporaryFile("wb", suffix=".payload", delete=False) as handle:
        handle.write(payload(spec))  # capital letters only: valid UTF-8, no delimiter inside
        payload_file = handle.name
    try:
        base_records = max(1, spec.warmup)
        baseline = _run_jvm(spec, payload_file, base_records, warmup=0)
        measured = _run_jvm(spec, payload_file, spec.warmup + spec.records, warmup=spec.warmup)
    finally:
        os.unlink(payload_file)
    for name, run in (("baseline", baseline), ("measured", measured)):
        if run["returncode"] != 0 or run["summary"] is None:
            raise SystemExit(
                f"ProducerPerformance ({name}) exited {run['returncode']} without a summary line:\n"
                + run["output"][-3000:]
            )
    summary = measured["summary"]
    window = Window()
    window.wall = spec.records / float(summary["rps"]) if float(summary["rps"]) > 0 else float("inf")
    window.cpu = max(0.0, measured["cpu"] - baseline["cpu"])
    stderr_errors = measured["output"].count("Exception") + baseline["output"].count("Exception")
    emit(
        spec,
        client="java",
        version=version,
        window=window,
        sent_total=base_records + spec.warmup + spec.records,
        latency=None,
        errors=stderr_errors,
        p50_ms=float(summary["p50"]),
        p99_ms=float(summary["p99"]),
        latency_samples=spec.records,
        rss_kb=max(measured["rss_kb"], baseline["rss_kb"]),
        jvm_cpu_s=measured["cpu"],
        jvm_baseline_cpu_s=baseline["cpu"],
    )


def _run_jvm(spec, payload_file: str, records: int, warmup: int) -> dict:
    properties = {
        "acks": spec.acks,
        "enable.idempotence": str(spec.idempotence).lower(),
        "linger.ms": spec.linger_ms,
        "batch.size": spec.batch_size,
        "compression.type": spec.compression,
    }
    command = [
        spec.java, *_JVM_FLAGS, f"-Dlog4j2.configurationFile={spec.java_log4j}",
        "-cp", os.path.join(spec.java_libs, "*"), _MAIN,
        "--bootstrap-server", spec.bootstrap,
        "--topic", spec.topic,
        "--num-records", str(records),
        "--throughput", "-1",
        "--payload-file", payload_file,
        "--reporting-interval", "3600000",
        "--command-property", *(f"{key}={value}" for key, value in properties.items()),
    ]
    if spec.key_size > 0:
        command += ["--key-distribution", "random", "--record-key-range", str(2**31 - 1)]
    if warmup > 0:
        command += ["--warmup-records", str(warmup)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    summary = None
    for line in output.splitlines():
        match = _SUMMARY.match(line.strip())
        if match and (warmup == 0 or match["steady"]):
            summary = match.groupdict()
    return {
        "returncode": process.returncode,
        "output": output,
        "summary": summary,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_kb": usage.ru_maxrss,
    }


def _kafka_version(libs: str) -> str:
    for name in sorted(os.listdir(libs)):
        match = re.fullmatch(r"kafka-clients-(.+)\.jar", name)
        if match:
            return match.group(1)
    return "?"


if __name__ == "__main__":
    sys.exit(main())
