"""Idempotent-producer state of one partition, as a Kafka broker keeps it.

For each producer id the broker remembers its epoch and its last five
batches (first and last sequence, base offset, append time). A batch is then:

* a duplicate (same epoch, same first and last sequence as a cached batch):
  answered with the original base offset and not appended again;
* from an older epoch: INVALID_PRODUCER_EPOCH;
* from a newer epoch: accepted only if it starts at sequence 0;
* from the same epoch: accepted only if it starts right after the last batch
  (sequences wrap from 2**31 - 1 to 0), else OUT_OF_ORDER_SEQUENCE_NUMBER.

A producer id the partition has never seen may start at any sequence, as in
Kafka since KIP-360. The state belongs to the partition, not to a broker, so
it survives leader changes the way Kafka's replicated producer snapshots do.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

__all__ = [
    "CACHED_BATCHES",
    "CachedBatch",
    "ProducerStates",
    "SequenceCheck",
]

#: Batches remembered per producer id (Kafka's NUM_BATCHES_TO_RETAIN).
CACHED_BATCHES = 5
_INT32_MAX = (1 << 31) - 1

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


class CachedBatch(NamedTuple):
    first_sequence: int
    last_sequence: int
    base_offset: int
    log_append_time: int  # -1 under CreateTime


class SequenceCheck(NamedTuple):
    """The verdict on an incoming batch: error code (0 = fine), and the original when a duplicate."""

    error_code: int
    duplicate_of: CachedBatch | None
    message: str | None


_ACCEPT = SequenceCheck(0, None, None)


class _Entry:
    __slots__ = ("epoch", "batches")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches: deque[CachedBatch] = deque(maxlen=CACHED_BATCHES)


class ProducerStates:
    """Producer id -> epoch and recent batches, for one partition."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}

    def check(self, producer_id: int, epoch: int, first_sequence: int, last_sequence: int) -> SequenceCheck:
        """Judge a batch before it is appended (no state changes)."""
        entry = self._entries.get(producer_id)
        if entry is None:
            return _ACCEPT
        if epoch < entry.epoch:
            return SequenceCheck(
                INVALID_PRODUCER_EPOCH,
                None,
                f"Producer {producer_id} sent epoch {epoch}, older than the current epoch {entry.epoch}.",
            )
        if epoch > entry.epoch:
            if first_sequence != 0:
                return SequenceCheck(
                    OUT_OF_ORDER_SEQUENCE_NUMBER,
                    None,
                    f"Producer {producer_id} started new epoch {epoch} at sequence {first_sequence}, not 0.",
                )
            return _ACCEPT
        for cached in entry.batches:
            if cached.first_sequence == first_sequence and cached.last_sequence == last_sequence:
                return SequenceCheck(0, cached, None)
        if not entry.batches:
            return _ACCEPT
        expected = (entry.batches[-1].last_sequence + 1) & _INT32_MAX
        if first_sequence != expected:
            return SequenceCheck(
                OUT_OF_ORDER_SEQUENCE_NUMBER,
                None,
                f"Producer {producer_id} epoch {epoch} sent sequence {first_sequence}, expected {expected}.",
            )
        return _ACCEPT

    def record(
        self,
        producer_id: int,
        epoch: int,
        first_sequence: int,
        last_sequence: int,
        base_offset: int,
        log_append_time: int,
    ) -> None:
        """Remember a batch that was appended (after ``check`` accepted it)."""
        entry = self._entries.get(producer_id)
        if entry is None or entry.epoch != epoch:
            entry = self._entries[producer_id] = _Entry(epoch)
        entry.batches.append(CachedBatch(first_sequence, last_sequence, base_offset, log_append_time))

    def epoch_of(self, producer_id: int) -> int | None:
        entry = self._entries.get(producer_id)
        return None if entry is None else entry.epoch

    def __len__(self) -> int:
        return len(self._entries)
