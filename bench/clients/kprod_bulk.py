"""kprod's bulk path: ``Producer.send_many(topic, values, keys=...)`` in chunks of `chunk` records.

The latency probes wait on the futures ``send_many`` returns (one per record). Running the
suite against an older kprod without ``send_many`` skips this client instead of failing.
"""

from __future__ import annotations

import inspect
import time
from functools import partial

from _common import KEY_MASK, KEY_POOL_SIZE, Latency, Window, emit, emit_skip, key_pool, load_spec, payload


def main() -> None:
    spec = load_spec()
    import kprod

    send_many = getattr(kprod.Producer, "send_many", None)
    if send_many is None:
        emit_skip("kprod_bulk", "this kprod has no Producer.send_many()")
        return
    parameters = inspect.signature(send_many).parameters
    if "values" not in parameters or (spec.key_size > 0 and "keys" not in parameters):
        emit_skip("kprod_bulk", f"send_many{inspect.signature(send_many)} is not send_many(topic, values, keys=...)")
        return

    producer = kprod.Producer(spec.java_config())
    topic, value, pool = spec.topic, payload(spec), key_pool(spec)
    keyed = spec.key_size > 0
    # Chunks start at multiples of `chunk`; a pool twice as long lets a slice wrap without copying twice.
    doubled = pool + pool
    chunk = max(1, min(spec.chunk, KEY_POOL_SIZE))

    def send_range(first: int, count: int, latency: Latency | None) -> None:
        clock = time.perf_counter
        every = latency.every if latency is not None else 0
        values = [value] * chunk
        for start in range(0, count, chunk):
            size = min(chunk, count - start)
            batch_values = values if size == chunk else values[:size]
            offset = (first + start) & KEY_MASK
            batch_keys = doubled[offset:offset + size] if keyed else None
            stamp = clock()
            if batch_keys is None:
                futures = producer.send_many(topic, batch_values)
            else:
                futures = producer.send_many(topic, batch_values, keys=batch_keys)
            if latency is not None and futures is not None:
                for index in range(-start % every, size, every):
                    slot = (start + index) // every
                    latency.sent[slot] = stamp
                    futures[index].add_done_callback(partial(_done, latency, slot))

    send_range(0, spec.warmup, None)
    producer.flush()
    n = spec.records
    latency = Latency(n, spec.latency_every)
    with Window() as window:
        send_range(spec.warmup, n, latency)
        producer.flush()
    producer.close()
    emit(spec, client="kprod_bulk", version=kprod.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency, chunk=chunk)


def _done(latency: Latency, slot: int, future) -> None:
    error = future.exception()
    if error is None:
        latency.ack(slot)
    else:
        latency.fail(slot, error)


if __name__ == "__main__":
    main()
