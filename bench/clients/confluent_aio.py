"""confluent-kafka's asyncio producer (``confluent_kafka.aio.AIOProducer``, when the installed
version has it): ``await produce()`` per record, then ``await flush()``, as ``kprod_async_send``
and ``aiokafka_send`` do. Probes get a done callback; the client yields to the loop once per
probe block so the loop-lag probe can tick.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

from _common import KEY_MASK, Latency, LoopLag, Window, emit, emit_skip, key_pool, load_spec, payload


async def run(spec) -> None:
    import confluent_kafka

    try:
        from confluent_kafka.aio import AIOProducer
    except ImportError:
        emit_skip("confluent_aio", f"confluent-kafka {confluent_kafka.version()[0]} has no confluent_kafka.aio")
        return
    producer = AIOProducer({**spec.java_config(), "partitioner": "murmur2_random"})
    produce = producer.produce
    topic, value, keys = spec.topic, payload(spec), key_pool(spec)
    for j in range(spec.warmup):
        await produce(topic, value, keys[j & KEY_MASK])
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

    lag = LoopLag()
    lag.start()
    with Window() as window:
        slot = 0
        for i in range(0, n, every):
            sent[slot] = clock()
            future = await produce(topic, value, keys[i & KEY_MASK])
            future.add_done_callback(partial(done, slot))
            slot += 1
            for j in range(i + 1, min(i + every, n)):
                await produce(topic, value, keys[j & KEY_MASK])
            await asyncio.sleep(0)
        await producer.flush()
    lag.stop()
    await producer.close()
    emit(spec, client="confluent_aio", version=confluent_kafka.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency, **lag.summary())


def main() -> None:
    asyncio.run(run(load_spec()))


if __name__ == "__main__":
    main()
