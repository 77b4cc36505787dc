"""confluent-kafka (librdkafka): ``produce()`` per record, ``poll(0)`` once per probe block.

Delivery reports run inside ``poll()``/``flush()``; polling once every `latency_every`
records is the usual application loop and keeps probe latencies honest. A full local
queue (BufferError) is waited out with ``poll()``, as librdkafka's docs advise.
"""

from __future__ import annotations

import time

from _common import KEY_MASK, Latency, Window, emit, key_pool, load_spec, payload


def main() -> None:
    spec = load_spec()
    import confluent_kafka

    java = spec.java_config()
    for key in spec.security_java:
        java.pop(key)
    producer = confluent_kafka.Producer(
        {
            **java,
            **spec.security_librdkafka,
            # Java's placement for keyed records (librdkafka's default hashes with CRC32).
            "partitioner": "murmur2_random",
        }
    )
    produce, poll = producer.produce, producer.poll
    topic, value, keys = spec.topic, payload(spec), key_pool(spec)
    for j in range(spec.warmup):
        _produce_waiting(produce, poll, topic, value, keys[j & KEY_MASK], None)
    if producer.flush(60):
        raise SystemExit("confluent-kafka: warm-up records were not delivered within 60 s")

    n, every = spec.records, spec.latency_every
    latency = Latency(n, every)
    sent, clock = latency.sent, time.perf_counter

    def probe(slot: int):
        def done(error: object, message: object) -> None:
            if error is None:
                latency.ack(slot)
            else:
                latency.fail(slot, error)

        return done

    with Window() as window:
        slot = 0
        for i in range(0, n, every):
            sent[slot] = clock()
            _produce_waiting(produce, poll, topic, value, keys[i & KEY_MASK], probe(slot))
            slot += 1
            for j in range(i + 1, min(i + every, n)):
                try:
                    produce(topic, value, keys[j & KEY_MASK])
                except BufferError:
                    _produce_waiting(produce, poll, topic, value, keys[j & KEY_MASK], None)
            poll(0)
        undelivered = producer.flush(120)
    emit(spec, client="confluent", version=confluent_kafka.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency, errors=undelivered,
         librdkafka=confluent_kafka.libversion()[0])


def _produce_waiting(produce, poll, topic: str, value: bytes, key: bytes | None, callback) -> None:
    """produce(), serving delivery reports until the local queue has room."""
    while True:
        try:
            produce(topic, value, key, on_delivery=callback)
            return
        except BufferError:
            poll(0.005)


if __name__ == "__main__":
    main()
