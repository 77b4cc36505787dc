"""kprod against the embedded cluster and against real Kafka, in one run.

Is the embedded cluster what limits a kprod perf run on one machine? Both
clusters are started once; then ``kprod perf --json`` runs in a fresh process
against each, alternating, for a few rounds; the medians and the median of
the per-round ratios are printed (and written as markdown with --markdown).

    python bench/embedded_vs_real.py --records 300000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kprod.cluster import EmbeddedCluster  # noqa: E402
from tests.apache_kafka.realkafka import KafkaCluster  # noqa: E402


def perf(bootstrap: str, topic: str, records: int, size: int, props: list[str]) -> dict[str, float]:
    command = [sys.executable, "-m", "kprod", "perf", "--topic", topic, "--num-records", str(records),
               "--record-size", str(size), "--bootstrap-server", bootstrap, "--json"]
    for prop in props:
        command += ["--producer-prop", prop]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"kprod perf failed against {bootstrap}: {done.stderr.strip()}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--producer-prop", action="append", default=["acks=1", "linger.ms=5", "batch.size=65536"])
    parser.add_argument("--markdown", type=Path)
    options = parser.parse_args()

    rates: dict[str, list[float]] = {"embedded": [], "real": []}
    ratios: list[float] = []
    with EmbeddedCluster(brokers=3, process=True) as embedded, KafkaCluster() as real:
        clusters = {"embedded": embedded, "real": real}
        for round_number in range(options.rounds):
            order = ["embedded", "real"] if round_number % 2 == 0 else ["real", "embedded"]
            this_round: dict[str, float] = {}
            for name in order:
                topic = f"bench-{uuid.uuid4().hex[:8]}"
                if name == "embedded":
                    embedded.create_topic(topic, partitions=options.partitions, replication_factor=1)
                else:
                    real.create_topic(topic, options.partitions, 1)
                summary = perf(clusters[name].bootstrap_servers, topic, options.records, options.record_size,
                               options.producer_prop)
                this_round[name] = float(summary["records_per_sec"])
                rates[name].append(this_round[name])
                print(f"round {round_number + 1} {name:8s} {this_round[name]:>12,.0f} records/s", flush=True)
            ratios.append(this_round["embedded"] / this_round["real"])
    lines = [
        "| target | median records/s |",
        "|---|---|",
        *(f"| {name} | {statistics.median(values):,.0f} |" for name, values in rates.items()),
        "",
        f"Median same-round ratio embedded / real: **{statistics.median(ratios):.2f}x** "
        f"({options.rounds} rounds, {options.records:,} records of {options.record_size} B, "
        f"{options.partitions} partitions, RF 1, {' '.join(options.producer_prop)}).",
    ]
    print("\n".join(lines))
    if options.markdown:
        options.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
