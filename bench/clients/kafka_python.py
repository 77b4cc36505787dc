"""kafka-python: ``KafkaProducer.send()`` per record; probes add a callback and an errback."""

from __future__ import annotations

import time

from _common import KEY_MASK, Latency, Window, emit, key_pool, load_spec, payload


def main() -> None:
    spec = load_spec()
    import kafka

    producer = kafka.KafkaProducer(
        bootstrap_servers=spec.bootstrap.split(","),
        acks="all" if spec.acks == "all" else int(spec.acks),
        enable_idempotence=spec.idempotence,
        linger_ms=spec.linger_ms,
        batch_size=spec.batch_size,
        compression_type=spec.codec,
    )
    send = producer.send
    topic, value, keys = spec.topic, payload(spec), key_pool(spec)
    for j in range(spec.warmup):
        send(topic, value, keys[j & KEY_MASK])
    producer.flush()

    n, every = spec.records, spec.latency_every
    latency = Latency(n, every)
    sent, clock = latency.sent, time.perf_counter

    def acked(slot: int, metadata: object) -> None:
        latency.ack(slot)

    def failed(slot: int, error: object) -> None:
        latency.fail(slot, error)

    with Window() as window:
        slot = 0
        for i in range(0, n, every):
            sent[slot] = clock()
            future = send(topic, value, keys[i & KEY_MASK])
            future.add_callback(acked, slot)
            future.add_errback(failed, slot)
            slot += 1
            for j in range(i + 1, min(i + every, n)):
                send(topic, value, keys[j & KEY_MASK])
        producer.flush()
    producer.close()
    emit(spec, client="kafka_python", version=kafka.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency)


if __name__ == "__main__":
    main()
