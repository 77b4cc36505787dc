"""kprod.aio: ``await AsyncProducer.send()`` per record, then ``await flush()`` (as ``aiokafka_send``).

Probes carry a ``callback=`` (run on the loop). The client yields to the loop once per
probe block (``latency_every`` records) so the loop-lag probe can tick.
"""

from __future__ import annotations

import asyncio
import time

from _common import KEY_MASK, Latency, LoopLag, Window, emit, key_pool, load_spec, payload


async def run(spec) -> None:
    import kprod
    from kprod.aio import AsyncProducer

    async with AsyncProducer(spec.java_config()) as producer:
        send = producer.send
        topic, value, keys = spec.topic, payload(spec), key_pool(spec)
        for j in range(spec.warmup):
            await send(topic, value, keys[j & KEY_MASK])
        await producer.flush()

        n, every = spec.records, spec.latency_every
        latency = Latency(n, every)
        sent, clock = latency.sent, time.perf_counter

        def probe(slot: int):  # one closure per probe, i.e. per `every` records
            def done(metadata: object, exception: BaseException | None) -> None:
                if exception is None:
                    latency.ack(slot)
                else:
                    latency.fail(slot, exception)

            return done

        lag = LoopLag()
        lag.start()
        with Window() as window:
            slot = 0
            for i in range(0, n, every):
                sent[slot] = clock()
                await send(topic, value, keys[i & KEY_MASK], callback=probe(slot))
                slot += 1
                for j in range(i + 1, min(i + every, n)):
                    await send(topic, value, keys[j & KEY_MASK])
                await asyncio.sleep(0)
            await producer.flush()
        lag.stop()
    emit(spec, client="kprod_async_send", version=kprod.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency, **lag.summary())


def main() -> None:
    asyncio.run(run(load_spec()))


if __name__ == "__main__":
    main()
