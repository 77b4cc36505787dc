"""Idempotent producer state: producer id, epoch and a sequence per partition.

The broker keeps the last five batches per producer and partition and drops
a resend it has already written. For that to work the producer must number
batches without gaps and resend them in order, so:

* sequences are stamped when a batch is drained, not when it is filled;
* a retried batch goes back in sequence order and is resent only when it is
  the oldest in-flight batch of its partition;
* when the numbering can no longer be trusted (a real gap, lost producer
  state, a batch that failed after taking a sequence) the producer bumps its
  epoch (KIP-360) once nothing is in flight, and numbering restarts at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kprod.producer.batch import ProducerBatch

__all__ = ["IdempotenceState", "MAX_SEQUENCE", "MAX_EPOCH"]

log = logging.getLogger("kprod.producer")

MAX_SEQUENCE = 2**31 - 1
MAX_EPOCH = 2**15 - 1

TopicPartition = tuple[str, int]


class IdempotenceState:
    """Owned by the I/O thread; no locking."""

    def __init__(self) -> None:
        self.producer_id = -1
        self.producer_epoch = -1
        self.next_sequence: dict[TopicPartition, int] = {}
        # In-flight batches with sequences, per partition, in sequence order.
        self.in_flight: dict[TopicPartition, list[ProducerBatch]] = {}
        self.last_acked: dict[TopicPartition, int] = {}
        self.bump_needed = False
        self.fatal_error: BaseException | None = None

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    def set_producer_id(self, producer_id: int, epoch: int) -> None:
        """A fresh id from InitProducerId: numbering restarts everywhere."""
        self.producer_id = producer_id
        self.producer_epoch = epoch
        self.next_sequence.clear()
        self.last_acked.clear()
        self.bump_needed = False
        log.info("Producer id %d, epoch %d", producer_id, epoch)

    # -- drain ---------------------------------------------------------------

    def can_drain(self, batch: ProducerBatch) -> bool:
        """May ``batch`` be sent now without breaking sequence order?"""
        if self.producer_id < 0 or self.bump_needed or self.fatal_error is not None:
            return False
        if batch.base_sequence < 0:
            return True
        in_flight = self.in_flight.get((batch.topic, batch.partition))
        # A retried batch waits until every earlier batch has been resolved.
        return not in_flight or in_flight[0].base_sequence >= batch.base_sequence

    def stamp(self, batch: ProducerBatch) -> None:
        """Give ``batch`` the producer id, epoch and (if new) its sequence."""
        tp = (batch.topic, batch.partition)
        if batch.base_sequence < 0 or batch.producer_epoch != self.producer_epoch or batch.producer_id != self.producer_id:
            sequence = self.next_sequence.get(tp, 0)
            batch.base_sequence = sequence
            self.next_sequence[tp] = (sequence + batch.record_count) & MAX_SEQUENCE
        batch.producer_id = self.producer_id
        batch.producer_epoch = self.producer_epoch
        in_flight = self.in_flight.setdefault(tp, [])
        in_flight.append(batch)
        in_flight.sort(key=_sequence_of)

    # -- responses -----------------------------------------------------------

    def resolved(self, batch: ProducerBatch, *, acked: bool) -> None:
        """``batch`` is no longer in flight (acknowledged, retried or failed)."""
        tp = (batch.topic, batch.partition)
        in_flight = self.in_flight.get(tp)
        if in_flight is not None:
            try:
                in_flight.remove(batch)
            except ValueError:
                pass
            if not in_flight:
                del self.in_flight[tp]
        if acked:
            self.last_acked[tp] = (batch.base_sequence + batch.record_count - 1) & MAX_SEQUENCE

    def is_first_in_flight(self, batch: ProducerBatch) -> bool:
        """No earlier batch of the partition is still unresolved."""
        in_flight = self.in_flight.get((batch.topic, batch.partition))
        return not in_flight or in_flight[0] is batch

    def request_bump(self, reason: str) -> None:
        """Sequence numbering is no longer reliable: bump the epoch once idle."""
        if not self.bump_needed:
            log.warning("Bumping the producer epoch: %s", reason)
        self.bump_needed = True

    def has_in_flight(self) -> bool:
        return bool(self.in_flight)

    def bump(self, queued: Iterable[ProducerBatch]) -> bool:
        """Bump the epoch locally; False when exhausted (a new producer id is needed)."""
        self.bump_needed = False
        self.next_sequence.clear()
        self.last_acked.clear()
        for batch in queued:
            batch.base_sequence = -1
        if self.producer_epoch >= MAX_EPOCH:
            self.producer_id = -1
            self.producer_epoch = -1
            return False
        self.producer_epoch += 1
        log.info("Producer id %d now at epoch %d", self.producer_id, self.producer_epoch)
        return True


def _sequence_of(batch: ProducerBatch) -> int:
    return batch.base_sequence
