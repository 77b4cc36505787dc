"""aiokafka's batch API: ``create_batch()`` / ``append()`` / ``send_batch()``.

The caller picks partitions here. Null keys: fill one batch, send it to the next partition
in turn (sticky per batch, like KIP-794). Keyed records: one open batch per partition,
chosen with aiokafka's own murmur2, so records land where Java would put them.
"""

from __future__ import annotations

import asyncio
import time

from _common import KEY_MASK, Latency, Window, emit, key_pool, load_spec, payload


async def run(spec) -> None:
    import aiokafka
    from aiokafka.partitioner import murmur2

    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=spec.bootstrap,
        acks="all" if spec.acks == "all" else int(spec.acks),
        enable_idempotence=spec.idempotence,
        linger_ms=spec.linger_ms,
        max_batch_size=spec.batch_size,
        compression_type=spec.codec,
    )
    await producer.start()
    topic, value, keys = spec.topic, payload(spec), key_pool(spec)
    partitions = sorted(await producer.partitions_for(topic))
    keyed = spec.key_size > 0
    sender = _BatchSender(producer, topic, partitions, murmur2 if keyed else None)
    await sender.send_range(0, spec.warmup, value, keys, None)
    await sender.finish()
    await producer.flush()

    n = spec.records
    latency = Latency(n, spec.latency_every)
    sender = _BatchSender(producer, topic, partitions, murmur2 if keyed else None)
    with Window() as window:
        await sender.send_range(spec.warmup, n, value, keys, latency)
        errors = await sender.finish()
        await producer.flush()
    await producer.stop()
    emit(spec, client="aiokafka_batch", version=aiokafka.__version__, window=window,
         sent_total=spec.warmup + n, latency=latency, errors=errors, batches=sender.batches)


class _BatchSender:
    """Open batches per partition, their delivery futures, and the probes each batch carries."""

    def __init__(self, producer, topic: str, partitions: list[int], murmur2) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.murmur2 = murmur2
        self.open: dict[int, object] = {}
        self.probes: dict[int, list[int]] = {}
        self.futures: list[asyncio.Future] = []
        self.latency: Latency | None = None
        self.next_partition = 0
        self.batches = 0

    async def send_range(self, first: int, count: int, value: bytes, keys, latency: Latency | None) -> None:
        """Append records `first`..`first+count-1` of the run (index picks the key)."""
        self.latency = latency
        every = latency.every if latency is not None else 0
        clock = time.perf_counter
        count_partitions = len(self.partitions)
        create_batch = self.producer.create_batch
        murmur2 = self.murmur2
        open_batches = self.open
        probes = self.probes
        partitions = self.partitions
        partition = partitions[self.next_partition % count_partitions]
        for i in range(count):
            key = keys[(first + i) & KEY_MASK]
            if murmur2 is not None:
                partition = partitions[(murmur2(key) & 0x7FFFFFFF) % count_partitions]
            slot = -1
            if every and i % every == 0:
                slot = i // every
                latency.sent[slot] = clock()
            batch = open_batches.get(partition)
            if batch is None:
                batch = open_batches[partition] = create_batch()
                probes[partition] = []
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._ship(partition)
                if murmur2 is None:
                    self.next_partition += 1
                    partition = partitions[self.next_partition % count_partitions]
                batch = open_batches[partition] = create_batch()
                probes[partition] = []
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise SystemExit("aiokafka_batch: a record does not fit an empty batch")
            if slot >= 0:
                probes[partition].append(slot)

    async def _ship(self, partition: int) -> None:
        batch = self.open.pop(partition)
        slots = self.probes.pop(partition)
        future = await self.producer.send_batch(batch, self.topic, partition=partition)
        self.batches += 1
        latency = self.latency
        if latency is not None and slots:
            future.add_done_callback(lambda f, s=slots, lat=latency: _stamp(f, s, lat))
        self.futures.append(future)

    async def finish(self) -> int:
        """Send what is still open and wait for every batch; returns how many batches failed."""
        for partition in list(self.open):
            await self._ship(partition)
        failed = 0
        for outcome in await asyncio.gather(*self.futures, return_exceptions=True):
            if isinstance(outcome, BaseException):
                failed += 1
        return failed


def _stamp(future: asyncio.Future, slots: list[int], latency: Latency) -> None:
    if future.cancelled() or future.exception() is not None:
        for slot in slots:
            latency.fail(slot, future.exception() if not future.cancelled() else "cancelled")
    else:
        for slot in slots:
            latency.ack(slot)


def main() -> None:
    asyncio.run(run(load_spec()))


if __name__ == "__main__":
    main()
