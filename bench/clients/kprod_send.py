"""kprod, one ``Producer.send()`` per record (fire-and-forget, probes carry a callback)."""

from __future__ import annotations

import time

from _common import KEY_MASK, Latency, Window, emit, key_pool, load_spec, payload


def main() -> None:
    spec = load_spec()
    import kprod

    producer = kprod.Producer(spec.java_config())
    send = producer.send
    topic, value, keys = spec.topic, payload(spec), key_pool(spec)
    for j in range(spec.warmup):
        send(topic, value, keys[j & KEY_MASK])
    producer.flush()

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

    with Window() as window:
        slot = 0
        for i in range(0, n, every):
            sent[slot] = clock()
            send(topic, value, keys[i & KEY_MASK], callback=probe(slot))
            slot += 1
            for j in range(i + 1, min(i + every, n)):
                send(topic, value, keys[j & KEY_MASK])
        producer.flush()
    producer.close()
    emit(spec, client="kprod_send", version=kprod.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency)


if __name__ == "__main__":
    main()
