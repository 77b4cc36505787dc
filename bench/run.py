"""Benchmark kprod against confluent-kafka, kafka-python, aiokafka and the Java client.

    python bench/run.py --broker real --configs main --rounds 3
    python bench/run.py --bootstrap 127.0.0.1:9092 --records 20000 --rounds 1 --json out.json

Each client runs in a fresh process per round (bench/clients/<name>.py), rounds are
interleaved (the order rotates every round), all on the same cluster in the same run, each
run to a fresh topic that is deleted afterwards. What a run delivered is checked on the
broker (the topic's end offsets) the same way for every client; a run that lost records, or
whose client saw errors, is reported as failed and left out of the medians. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from brokers import REPO_ROOT, Broker, BrokerSetupError, open_broker, security_settings
from configs import CONFIGS, BenchConfig
from report import markdown_report, summarize, text_report

CLIENTS_DIR = Path(__file__).resolve().parent / "clients"
CLIENTS = ("kprod_send", "kprod_bulk", "confluent", "kafka_python", "aiokafka_send", "aiokafka_batch", "java",
           "kprod_async_send", "kprod_async_gather", "kprod_async_wait", "confluent_aio")
RESULT_PREFIX = "BENCH-RESULT "
_TOPIC_SETTLE_S = 15.0  # how long stored offsets may lag the acks (replication, acks=1)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    configs = [CONFIGS[name] for name in args.configs]
    clients = list(args.clients)
    java = _java_setup() if "java" in clients else {}
    load_before = _load()
    try:
        broker = open_broker("external" if args.bootstrap else args.broker, args.bootstrap, args.embedded_brokers,
                             secured=any(config.security for config in configs))
    except BrokerSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs: list[dict[str, Any]] = []
    try:
        print(f"# {broker.description}; bootstrap {broker.bootstrap}", flush=True)
        _warm_brokers(broker, configs[0], clients, args, java)
        for config in configs:
            warmup = _warmup(args, config)
            for round_index in range(args.rounds):
                for position, client in enumerate(_order(clients, round_index, args.order, args.seed)):
                    run = _run_one(broker, config, client, round_index, position, args, warmup, java)
                    runs.append(run)
                    _print_progress(run)
    finally:
        broker.close()
    load_after = _load()

    summary = summarize(runs, clients)
    descriptions = {config.name: config.description for config in configs}
    print()
    print(text_report(summary, descriptions))
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "broker": broker.description,
        "records": args.records,
        "warmup": _warmup(args, configs[0]),
        "broker_warmup": args.broker_warmup,
        "rounds": args.rounds,
        "replication_factor": args.replication_factor,
        "latency_every": args.latency_every,
        "load_before": load_before,
        "load_after": load_after,
        "argv": sys.argv[1:] if argv is None else argv,
        "versions": {run["client"]: run["version"] for run in runs if run.get("version")},
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown_report(summary, descriptions, meta) + "\n")
    return 1 if any(run["status"] == "failed" for run in runs) else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--broker", choices=("real", "embedded"), default="real",
                       help="start Apache Kafka (3 KRaft nodes, tests/apache_kafka/realkafka.py) or kprod's "
                            "EmbeddedCluster (child process); default real")
    where.add_argument("--bootstrap", metavar="HOST:PORT", help="use an existing cluster instead")
    parser.add_argument("--embedded-brokers", type=int, default=3, help="brokers of --broker embedded (3)")
    parser.add_argument("--configs", nargs="+", default=["main"], metavar="NAME",
                        help=f"configurations, or 'all': {', '.join(CONFIGS)} (default main)")
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), metavar="NAME",
                        help=f"clients (default all): {', '.join(CLIENTS)}")
    parser.add_argument("--records", type=int, default=300_000, help="measured records per run (300000)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="records sent and acknowledged before measuring (default records/20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--broker-warmup", type=int, default=2_000_000,
                        help="records sent through the brokers before the first measured run, so a "
                             "freshly started JVM is warm (2000000; 0 to skip)")
    parser.add_argument("--order", choices=("rotate", "shuffle"), default="rotate",
                        help="client order per round: rotate by one each round, or shuffle (seeded)")
    parser.add_argument("--replication-factor", type=int, default=1,
                        help="replicas per partition of the bench topics (1; 3 to include replication)")
    parser.add_argument("--latency-every", type=int, default=50,
                        help="every n-th record carries a send->ack latency probe (50)")
    parser.add_argument("--chunk", type=int, default=1000, help="records per call of bulk APIs (1000)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a client run is killed")
    parser.add_argument("--seed", type=int, default=1, help="payload, key and shuffle seed")
    parser.add_argument("--json", metavar="PATH", help="write every run, the medians and ratios as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables as markdown (for docs/benchmarks.md)")
    args = parser.parse_args(argv)
    if args.configs == ["all"]:
        args.configs = list(CONFIGS)
    unknown = [name for name in args.configs if name not in CONFIGS]
    unknown += [name for name in args.clients if name not in CLIENTS]
    if unknown:
        parser.error(f"unknown configuration or client: {', '.join(unknown)}")
    if args.records < 1 or args.rounds < 1 or args.latency_every < 1 or args.chunk < 1:
        parser.error("--records, --rounds, --latency-every and --chunk must be at least 1")
    return args


def _warmup(args: argparse.Namespace, config: BenchConfig) -> int:
    """Warm-up records: --warmup, or a twentieth of the measured ones (at least one per partition)."""
    return args.warmup if args.warmup is not None else max(config.partitions, args.records // 20)


def _warm_brokers(broker: Broker, config: BenchConfig, clients: list[str], args: argparse.Namespace,
                  java: dict[str, str]) -> None:
    """Send --broker-warmup records through the brokers before anything is measured.

    A broker that has just started is slow until its JIT has compiled the produce path, and
    without this the first runs of the first configuration paid for it (in one run the first
    client measured reached half its rate of the later rounds). Unmeasured; any client will do,
    so the fastest at hand is used.
    """
    if args.broker_warmup <= 0:
        return
    warmer = next((c for c in ("confluent", "kprod_bulk", "kprod_send") if c in clients), clients[0])
    run = _run_one(broker, config, warmer, 0, 0, args, config.partitions, java, records=args.broker_warmup)
    rate = f"{run['records_per_s']:,.0f} rec/s" if run.get("records_per_s") else run.get("reason", "")
    print(f"# broker warm-up: {args.broker_warmup:,} records with {warmer} ({run['status']}; {rate}), not measured",
          flush=True)


def _order(clients: list[str], round_index: int, how: str, seed: int) -> list[str]:
    """Round r runs the clients rotated by r (or shuffled), so none always goes first or last."""
    if how == "shuffle":
        order = list(clients)
        random.Random(seed * 1000 + round_index).shuffle(order)
        return order
    shift = round_index % len(clients)
    return clients[shift:] + clients[:shift]


def _java_setup() -> dict[str, str]:
    """The java executable and Kafka jars for the Java client; empty (client skipped) if unavailable."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.apache_kafka import realkafka

    try:
        return {
            "java": realkafka.find_java(),
            "java_libs": str(realkafka.ensure_kafka_jars()),
            "java_log4j": str(realkafka.LOG4J_CONFIG),
        }
    except realkafka.RealKafkaError as exc:
        print(f"# java client skipped: {exc}", file=sys.stderr)
        return {}


#: Clients the bench configures for a secured listener (Java keys or librdkafka keys).
_SECURED_CLIENTS = ("kprod_send", "kprod_bulk", "confluent")


def _run_one(broker: Broker, config: BenchConfig, client: str, round_index: int, position: int,
             args: argparse.Namespace, warmup: int, java: dict[str, str], records: int | None = None) -> dict[str, Any]:
    records = args.records if records is None else records
    run: dict[str, Any] = {"config": config.name, "client": client, "round": round_index + 1,
                           "position": position + 1, "status": "failed", "reason": "", "load": _load()[0]}
    if client == "java" and not java:
        run.update(status="skipped", reason="no java or Kafka jars")
        return run
    if config.security and client not in _SECURED_CLIENTS:
        run.update(status="skipped", reason=f"{client} is not given {config.security} settings by the bench")
        return run
    topic = f"bench-{config.name}-{client}-{uuid.uuid4().hex[:10]}"
    broker.create_topic(topic, config.partitions, args.replication_factor)
    try:
        bootstrap, security_java, security_librdkafka = security_settings(broker, config.security)
        spec = {
            "bootstrap": bootstrap, "security_java": security_java, "security_librdkafka": security_librdkafka,
            "topic": topic, "partitions": config.partitions,
            "records": records, "warmup": warmup, "record_size": config.record_size,
            "key_size": config.key_size, "acks": config.acks, "idempotence": config.idempotence,
            "linger_ms": config.linger_ms, "batch_size": config.batch_size,
            "compression": config.compression, "latency_every": args.latency_every,
            "seed": args.seed, "chunk": args.chunk, **java,
        }
        outcome = _spawn(client, spec, args.timeout)
        run.update(outcome)
        result = outcome.get("result")
        if outcome["returncode"] != 0 or result is None:
            run["reason"] = f"exit {outcome['returncode']}: {outcome['stderr_tail'][-800:]}"
            return run
        if "skipped" in result:
            run.update(status="skipped", reason=result["skipped"])
            return run
        expected = result["sent_total"]
        stored = _settled_count(broker, topic, config.partitions, expected)
        run["stored"] = stored
        _fill_figures(run, result, config, records)
        if result["errors"]:
            run["reason"] = f"{result['errors']} errors seen by the client; first: {result.get('first_error', '')}"
        elif stored != expected:
            run["reason"] = f"the topic holds {stored} records, the client sent {expected}"
        else:
            run["status"] = "ok"
        return run
    finally:
        try:
            broker.delete_topic(topic)
        except Exception as exc:  # a leftover topic costs disk, not correctness
            print(f"# could not delete {topic}: {exc!r}", file=sys.stderr)


def _spawn(client: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one client process; its resource usage comes from wait4 (peak RSS, total CPU)."""
    command = [sys.executable, str(CLIENTS_DIR / f"{client}.py"), json.dumps(spec)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               cwd=str(CLIENTS_DIR), start_new_session=True)
    assert process.stdout is not None and process.stderr is not None
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(process.stderr.read()), daemon=True)
    reader.start()
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the client and any JVM it started
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    started = time.perf_counter()
    stdout = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    timer.cancel()
    reader.join(10)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = b"".join(stderr_chunks).decode(errors="replace")
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    if killed.is_set():
        stderr += f"\nkilled after {timeout:.0f} s"
    return {
        "returncode": process.returncode,
        "result": result,
        "stderr_tail": stderr[-3000:],
        "process_cpu_s": usage.ru_utime + usage.ru_stime,
        "process_rss_kb": usage.ru_maxrss,
        "process_wall_s": wall,
    }


def _settled_count(broker: Broker, topic: str, partitions: int, expected: int) -> int:
    """Records the topic holds, polled until it reaches `expected` or stops changing for a while."""
    deadline = time.monotonic() + _TOPIC_SETTLE_S
    count = broker.stored_records(topic, partitions)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the broker's state, not synchronising with our own code
        count = broker.stored_records(topic, partitions)
    return count


def _fill_figures(run: dict[str, Any], result: dict[str, Any], config: BenchConfig, records: int) -> None:
    elapsed = result["elapsed_s"]
    rate = records / elapsed if elapsed > 0 else None
    run["records_per_s"] = rate
    run["mib_per_s"] = rate * config.record_size / 2**20 if rate else None
    run["cpu_us_per_record"] = result["cpu_s"] / records * 1e6
    run["p50_ms"] = result.get("p50_ms")
    run["p99_ms"] = result.get("p99_ms")
    run["loop_lag_p99_ms"] = result.get("loop_lag_p99_ms")  # asyncio clients' loop-lag probe
    run["loop_lag_max_ms"] = result.get("loop_lag_max_ms")
    rss_kb = result.get("rss_kb") or run["process_rss_kb"]
    run["rss_mb"] = rss_kb / 1024
    run["version"] = result.get("version")


def _print_progress(run: dict[str, Any]) -> None:
    head = f"[{run['config']} r{run['round']} #{run['position']}] {run['client']:<15}"
    if run["status"] == "skipped":
        print(f"{head} skipped: {run['reason']}", flush=True)
    elif run["status"] == "failed" and run.get("records_per_s") is None:
        print(f"{head} FAILED: {run['reason'][-400:]}", flush=True)
    else:
        p50, p99 = run.get("p50_ms"), run.get("p99_ms")
        latency = f"p50 {p50:.1f} p99 {p99:.1f} ms" if p50 is not None and p99 is not None else "no latency"
        print(f"{head} {run['records_per_s']:>11,.0f} rec/s  {run['cpu_us_per_record']:6.2f} µs CPU/rec  "
              f"{latency}  RSS {run['rss_mb']:.0f} MB  load {run['load']:.1f}"
              + ("" if run["status"] == "ok" else f"  FAILED: {run['reason']}"), flush=True)


def _load() -> tuple[float, float, float]:
    return tuple(round(value, 2) for value in os.getloadavg())  # type: ignore[return-value]


if __name__ == "__main__":
    sys.exit(main())
