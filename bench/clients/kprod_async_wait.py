"""kprod.aio: ``await AsyncProducer.send_and_wait()`` per record, from many tasks at once.

The shape of a web service: each request's task sends its record and waits for the
acknowledgement before answering. ``CONCURRENCY`` tasks share the records; every
``latency_every``-th record is a latency probe (send to ack as the task saw it).
"""

from __future__ import annotations

import asyncio
import time

from _common import KEY_MASK, Latency, LoopLag, Window, emit, key_pool, load_spec, payload

CONCURRENCY = 1000


async def run(spec) -> None:
    import kprod
    from kprod.aio import AsyncProducer

    async with AsyncProducer(spec.java_config()) as producer:
        send, send_and_wait = producer.send, producer.send_and_wait
        topic, value, keys = spec.topic, payload(spec), key_pool(spec)
        for j in range(spec.warmup):
            await send(topic, value, keys[j & KEY_MASK])
        await producer.flush()

        n, every = spec.records, spec.latency_every
        latency = Latency(n, every)
        sent, clock = latency.sent, time.perf_counter
        errors: list[BaseException] = []

        async def worker(first: int) -> None:
            for i in range(first, n, CONCURRENCY):
                probe = i % every == 0
                if probe:
                    sent[i // every] = clock()
                try:
                    await send_and_wait(topic, value, keys[i & KEY_MASK])
                except Exception as exc:  # counted, the run goes on
                    errors.append(exc)
                    continue
                if probe:
                    latency.ack(i // every)

        lag = LoopLag()
        lag.start()
        with Window() as window:
            await asyncio.gather(*(worker(k) for k in range(min(CONCURRENCY, n))))
        lag.stop()
    emit(spec, client="kprod_async_wait", version=kprod.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency, errors=len(errors),
         **({"first_error": repr(errors[0])[:300]} if errors else {}), concurrency=CONCURRENCY, **lag.summary())


def main() -> None:
    asyncio.run(run(load_spec()))


if __name__ == "__main__":
    main()
