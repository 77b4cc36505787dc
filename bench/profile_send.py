"""Where kprod's send path spends CPU: main thread (send) vs the I/O thread, optionally profiled.

    python bench/profile_send.py --broker embedded --records 200000
    python bench/profile_send.py --bootstrap 127.0.0.1:9092 --cprofile --top 30 --dump /tmp/prof

Without --cprofile it reports, for the measured window only, CPU µs per record of the
process, of the thread calling send(), and of the I/O thread (kprod.producer.sender.Sender.run,
wrapped here so it records its thread; its CPU clock is read with pthread_getcpuclockid).
With --cprofile both threads also run under cProfile (the main thread for the window, the
I/O thread for its whole life) and the top functions by own time are printed; profiling
inflates every figure, so compare shares, not absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from brokers import BrokerSetupError, open_broker
from configs import CONFIGS

sys.path.insert(0, str(Path(__file__).resolve().parent / "clients"))
from _common import KEY_MASK, KEY_POOL_SIZE  # noqa: E402


class _IOThreadProbe:
    """Wraps Sender.run to learn the I/O thread's id and total CPU, and to profile it if asked."""

    def __init__(self, profile: bool) -> None:
        self.profile = cProfile.Profile() if profile else None
        self.ident: int | None = None
        self.started = threading.Event()
        self.total_cpu = 0.0

    def install(self) -> None:
        from kprod.producer import sender as sender_module

        original = sender_module.Sender.run
        probe = self

        def run(sender: Any) -> None:
            probe.ident = threading.get_ident()
            probe.started.set()
            begin = time.thread_time()
            if probe.profile is not None:
                probe.profile.enable()
            try:
                original(sender)
            finally:
                if probe.profile is not None:
                    probe.profile.disable()
                probe.total_cpu = time.thread_time() - begin

        sender_module.Sender.run = run  # type: ignore[method-assign]

    def cpu(self) -> float:
        """The I/O thread's CPU time so far, read from this (another) thread."""
        assert self.ident is not None
        return time.clock_gettime(time.pthread_getcpuclockid(self.ident))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--broker", choices=("real", "embedded"), default="embedded")
    where.add_argument("--bootstrap", metavar="HOST:PORT")
    parser.add_argument("--config", choices=list(CONFIGS), default="main")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--cprofile", action="store_true", help="profile both threads (slower)")
    parser.add_argument("--top", type=int, default=25, help="functions to list per thread with --cprofile")
    parser.add_argument("--dump", metavar="DIR", help="also write main.prof and io.prof there (for snakeviz etc.)")
    args = parser.parse_args(argv)
    config = CONFIGS[args.config]

    probe = _IOThreadProbe(args.cprofile)
    probe.install()
    import kprod

    try:
        broker = open_broker("external" if args.bootstrap else args.broker, args.bootstrap)
    except BrokerSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    topic = f"profile-{config.name}-{uuid.uuid4().hex[:10]}"
    try:
        broker.create_topic(topic, config.partitions, 1)
        producer = kprod.Producer({
            "bootstrap.servers": broker.bootstrap, "acks": config.acks,
            "enable.idempotence": config.idempotence, "linger.ms": config.linger_ms,
            "batch.size": config.batch_size, "compression.type": config.compression,
        })
        if not probe.started.wait(10):
            raise SystemExit("the producer's I/O thread did not start within 10 s")
        value = b"x" * config.record_size
        keys: list[bytes | None] = [None] * KEY_POOL_SIZE
        if config.key_size:
            keys = [uuid.uuid4().bytes[: config.key_size].ljust(config.key_size, b"k") for _ in range(KEY_POOL_SIZE)]
        send = producer.send
        for i in range(max(config.partitions, args.records // 20)):
            send(topic, value, keys[i & KEY_MASK])
        producer.flush()

        main_profile = cProfile.Profile() if args.cprofile else None
        wall0, cpu0, main0, io0 = time.perf_counter(), time.process_time(), time.thread_time(), probe.cpu()
        if main_profile is not None:
            main_profile.enable()
        for i in range(args.records):
            send(topic, value, keys[i & KEY_MASK])
        send_done = time.perf_counter()
        main_send_cpu = time.thread_time() - main0
        producer.flush()
        if main_profile is not None:
            main_profile.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        main_cpu, io_cpu = time.thread_time() - main0, probe.cpu() - io0
        producer.close()
        stored = broker.stored_records(topic, config.partitions)
    finally:
        try:
            broker.delete_topic(topic)
        finally:
            broker.close()

    n = args.records
    per = 1e6 / n
    print(f"# kprod {kprod.__version__}, config {config.name} ({config.description}), {n:,} records, {broker.description}")
    if args.cprofile:
        print("# under cProfile: absolute figures are inflated")
    print(f"records/s (send + flush)     {n / wall:12,.0f}")
    print(f"send() loop alone, records/s {n / (send_done - wall0):12,.0f}")
    print(f"process CPU µs/record        {cpu * per:12.2f}")
    print(f"  main thread (send loop)    {main_send_cpu * per:12.2f}   (+ flush wait {(main_cpu - main_send_cpu) * per:.2f})")
    print(f"  I/O thread                 {io_cpu * per:12.2f}")
    print(f"  other threads              {max(0.0, cpu - main_cpu - io_cpu) * per:12.2f}")
    print(f"stored on the broker          {stored:,} (warm-up included)")
    if main_profile is not None and probe.profile is not None:
        for name, profile in (("main thread (window)", main_profile), ("I/O thread (whole life)", probe.profile)):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
            print(f"\n== {name}, top {args.top} by own time\n{out.getvalue()}")
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            main_profile.dump_stats(str(Path(args.dump) / "main.prof"))
            probe.profile.dump_stats(str(Path(args.dump) / "io.prof"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
