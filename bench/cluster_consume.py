"""How fast the embedded cluster starts and serves a confluent-kafka consumer.

A script, not a test (no timing is asserted anywhere). It measures:

* ``import``: ``import kprod.cluster`` in a fresh interpreter (mostly kio's message
  classes; kio also imports hypothesis when it is installed, which costs more);
* ``start``: ``EmbeddedCluster(brokers=3).start()`` in-process, median of ``--starts`` runs
  in a fresh interpreter (the first one included);
* ``first answer``: start plus a raw Metadata round trip on a fresh interpreter's first cluster;
* ``consume``: a confluent-kafka consumer with assigned partitions reading ``--records``
  records of ``--size`` bytes (written beforehand by kprod's producer) from an in-process
  cluster and from a child-process one (``process=True``), with librdkafka's default
  settings and with its fetch queue tuned (see ``CONSUMER_SETTINGS``); records/s.

    python bench/cluster_consume.py                       # 1,000,000 records of 100 bytes
    python bench/cluster_consume.py --records 300000 --partitions 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_START_PROBE = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
from kprod.cluster import EmbeddedCluster
t1 = time.perf_counter()
from kprod.net.blocking import BlockingConnection
from kprod.protocol.requests import metadata_request
from kprod.protocol.messages import ApiKey
starts, first = [], None
for i in range(int(sys.argv[1])):
    s = time.perf_counter()
    cluster = EmbeddedCluster(brokers=3).start()
    starts.append(time.perf_counter() - s)
    if i == 0:
        broker = cluster.brokers[0]
        conn = BlockingConnection(broker.host, broker.port, timeout=10)
        conn.send(metadata_request(conn.version(ApiKey.METADATA), ["probe"]))
        first = time.perf_counter() - s
        conn.close()
    cluster.stop()
print(json.dumps({"import_s": t1 - t0, "start_first_s": starts[0], "start_median_s": statistics.median(starts),
                  "first_answer_s": first}))
"""


def _process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a process so far, from /proc (Linux); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_start(runs: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _START_PROBE, str(runs)], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def fill(bootstrap: str, topic: str, records: int, size: int) -> None:
    import kprod

    value = b"x" * size
    with kprod.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 262144}) as producer:
        for start in range(0, records, 10_000):
            producer.send_many(topic, [value] * min(10_000, records - start))
        producer.flush()


#: Consumer settings compared. librdkafka stops fetching for ``fetch.queue.backoff.ms``
#: (1 s) whenever its local queue holds ``queued.min.messages`` (100k): with the
#: defaults a fast broker leaves the consumer idle much of the time.
CONSUMER_SETTINGS: dict[str, dict[str, object]] = {
    "defaults": {},
    "tuned": {
        "queued.min.messages": 1_000_000,
        "fetch.queue.backoff.ms": 10,
        "max.partition.fetch.bytes": 10485760,
        "fetch.max.bytes": 52428800,
    },
}


def consume(bootstrap: str, topic: str, partitions: int, records: int, settings: dict[str, object]) -> float:
    """Seconds a confluent-kafka consumer takes to read ``records`` records from offset 0."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench",  # required by the client; partitions are assigned, no group is used
            "enable.auto.commit": False,
            **settings,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    started = time.perf_counter()
    deadline = started + 300
    while seen < records and time.perf_counter() < deadline:
        for message in consumer.consume(num_messages=10000, timeout=1.0):
            if message.error() is None:  # every record is looked at, as an application would
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    if seen < records:
        raise SystemExit(f"read only {seen} of {records} records within 300 s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    start = measure_start(options.starts)
    print(
        f"import kprod.cluster {start['import_s'] * 1000:.0f} ms; start (3 brokers): first"
        f" {start['start_first_s'] * 1000:.1f} ms, median {start['start_median_s'] * 1000:.1f} ms;"
        f" start + first Metadata answer {start['first_answer_s'] * 1000:.1f} ms"
    )
    from kprod.cluster import EmbeddedCluster

    for process in (False, True):
        with EmbeddedCluster(brokers=3, process=process) as cluster:
            cluster.create_topic("bench", partitions=options.partitions, config={"retention.bytes": "-1"})
            fill(cluster.bootstrap_servers, "bench", options.records, options.size)
            pid = getattr(getattr(cluster, "_backend", None), "_process", None)
            for name, settings in CONSUMER_SETTINGS.items():
                rates = []
                broker_cpu = []
                for _ in range(options.rounds):
                    before = _process_cpu(pid.pid) if pid is not None else None
                    elapsed = consume(cluster.bootstrap_servers, "bench", options.partitions, options.records, settings)
                    rates.append(options.records / elapsed)
                    if before is not None and pid is not None:
                        broker_cpu.append((_process_cpu(pid.pid) or 0.0) - before)
                best = max(rates)
                mode = "child process" if process else "in-process"
                print(
                    f"confluent-kafka consumer ({name} settings), {mode} cluster: {options.records} records of"
                    f" {options.size} bytes, {options.partitions} partition(s): best {best:,.0f} records/s"
                    f" ({best * options.size / 1e6:.1f} MB/s of values), rounds {[f'{r:,.0f}' for r in rates]}"
                    + (f"; brokers' CPU per round {[f'{c:.2f} s' for c in broker_cpu]}" if broker_cpu else ""),
                    flush=True,
                )


if __name__ == "__main__":
    main()
