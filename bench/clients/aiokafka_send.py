"""aiokafka: ``await producer.send()`` per record (each returns a delivery future)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from _common import KEY_MASK, Latency, Window, emit, key_pool, load_spec, payload


async def run(spec) -> None:
    import aiokafka

    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=spec.bootstrap,
        acks="all" if spec.acks == "all" else int(spec.acks),
        enable_idempotence=spec.idempotence,
        linger_ms=spec.linger_ms,
        max_batch_size=spec.batch_size,
        compression_type=spec.codec,
    )
    await producer.start()
    send = producer.send
    topic, value, keys = spec.topic, payload(spec), key_pool(spec)
    for j in range(spec.warmup):
        await send(topic, value, keys[j & KEY_MASK])
    await producer.flush()

    n, every = spec.records, spec.latency_every
    latency = Latency(n, every)
    sent, clock = latency.sent, time.perf_counter

    def done(slot: int, future: asyncio.Future) -> None:
        if future.cancelled():
            latency.fail(slot, "cancelled")
        elif future.exception() is not None:
            latency.fail(slot, future.exception())
        else:
            latency.ack(slot)

    with Window() as window:
        slot = 0
        for i in range(0, n, every):
            sent[slot] = clock()
            future = await send(topic, value, keys[i & KEY_MASK])
            future.add_done_callback(partial(done, slot))
            slot += 1
            for j in range(i + 1, min(i + every, n)):
                await send(topic, value, keys[j & KEY_MASK])
        await producer.flush()
    await producer.stop()
    emit(spec, client="aiokafka_send", version=aiokafka.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency)


def main() -> None:
    asyncio.run(run(load_spec()))


if __name__ == "__main__":
    main()
