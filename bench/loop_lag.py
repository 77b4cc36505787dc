"""Loop lag of an asyncio application producing with kprod.aio, against a baseline without it.

    python bench/loop_lag.py --bootstrap 127.0.0.1:9092 --records 1000000 --rounds 2

Each round runs, in fresh processes one after the other: *kprod* (``await
AsyncProducer.send()`` of 100-byte records, yielding once per 50, then ``flush()``), then
the *baseline* for as long as kprod ran (the same loop shape, a coroutine yielding once
per 50 iterations, with no producer). A probe coroutine asks to wake every 1 ms and records how late it woke
(``LoopLag`` in clients/_common.py). On a shared machine the baseline shows what the
operating system's scheduling alone costs; the difference is what the producer adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "clients"))

from _common import LoopLag  # noqa: E402

YIELD_EVERY = 50


async def _baseline(seconds: float) -> dict[str, object]:
    async def nothing() -> None:
        return None

    lag = LoopLag()
    lag.start()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(YIELD_EVERY):
            await nothing()
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    lag.stop()
    return {"what": "baseline", "elapsed_s": elapsed, **lag.summary()}


async def _kprod(bootstrap: str, topic: str, records: int) -> dict[str, object]:
    from kprod.aio import AsyncProducer

    config = {"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5, "batch.size": 65536,
              "enable.idempotence": False}
    async with AsyncProducer(config) as producer:
        value = b"A" * 100
        for _ in range(10000):
            await producer.send(topic, value)
        await producer.flush()
        lag = LoopLag()
        lag.start()
        started = time.perf_counter()
        for i in range(0, records, YIELD_EVERY):
            for _ in range(YIELD_EVERY):
                await producer.send(topic, value)
            await asyncio.sleep(0)
        await producer.flush()
        elapsed = time.perf_counter() - started
        lag.stop()
    return {"what": "kprod", "elapsed_s": elapsed, "records_per_s": records / elapsed, **lag.summary()}


def _child(argv: list[str]) -> None:
    what, bootstrap, topic, amount = argv[0], argv[1], argv[2], argv[3]
    coroutine = _baseline(float(amount)) if what == "baseline" else _kprod(bootstrap, topic, int(amount))
    print(json.dumps(asyncio.run(coroutine)))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for round_index in range(args.rounds):
        seconds = 0.0
        for what in ("kprod", "baseline"):
            topic = f"bench-looplag-{uuid.uuid4().hex[:10]}"
            if what == "kprod":
                admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
            amount = str(args.records) if what == "kprod" else str(seconds)
            out = subprocess.run([sys.executable, __file__, "--child", what, args.bootstrap, topic, amount],
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            seconds = float(result["elapsed_s"])
            rate = f"{result['records_per_s']:>9,.0f} rec/s" if "records_per_s" in result else " " * 15
            print(f"round {round_index + 1} {what:<8} {rate}  loop lag p50 {result['loop_lag_p50_ms']:.2f}  "
                  f"p99 {result['loop_lag_p99_ms']:.2f}  max {result['loop_lag_max_ms']:.2f} ms  "
                  f"({result['loop_ticks']} ticks)", flush=True)
            if what == "kprod":
                admin.delete_topics([topic])


if __name__ == "__main__":
    main()
