"""Idempotent producer state: producer id, epoch and a sequence per partition.

The broker keeps the last five batches per producer and partition and drops
a resend it has already written. For that to work the producer must number
batches without gaps and resend them in order, so:

* sequences are stamped when a batch is drained, not when it is filled;
* a retried batch goes back in sequence order and is resent only when it is
  the oldest in-flight batch of its partition;
* when the numbering of a partition can no longer be trusted (a real gap,
  lost producer state, a batch that failed after taking a sequence) the
  producer bumps its epoch (KIP-360) once nothing is in flight, and that
  partition's queued batches are renumbered from 0. Retries queued for other
  partitions keep their epoch and sequence, so the broker can still recognise
  one it already wrote (its answer was lost); such a partition moves to the new
  epoch, from 0, once those retries are resolved;
* a batch that fails after being sent without a definite answer (it expired,
  its connection died) may still have been written. Its partition's sequence
  is then *unresolved*: its later batches are retried as they are and no new
  batch is sent until all have been answered; a bump follows only if what was
  acknowledged leaves a gap (Java's "unresolved sequences").
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
        # Partitions where a batch of this producer id was acknowledged: the broker holds
        # the producer's state there and checks every sequence against it.
        self.established: set[TopicPartition] = set()
        self.bump_needed = False
        # Partitions to renumber at the next bump; None: every partition.
        self.rewrite: set[TopicPartition] | None = set()
        # Batches with a sequence not yet acknowledged or failed (in flight or queued to retry).
        self.stamped: dict[TopicPartition, set[ProducerBatch]] = {}
        # Partitions where a batch failed without knowing whether the broker wrote it.
        self.unresolved: set[TopicPartition] = set()
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
        self.established.clear()
        self.bump_needed = False
        log.info("Producer id %d, epoch %d", producer_id, epoch)

    # -- drain ---------------------------------------------------------------

    def can_drain(self, batch: ProducerBatch) -> bool:
        """May ``batch`` be sent now without breaking sequence order?"""
        if self.producer_id < 0 or self.bump_needed or self.fatal_error is not None:
            return False
        in_flight = self.in_flight.get((batch.topic, batch.partition))
        if batch.base_sequence < 0:
            # A new batch (current epoch) waits for the partition's older-epoch batches (the
            # broker would fence them once it has seen the new epoch) and for an unresolved
            # sequence to be settled.
            tp = (batch.topic, batch.partition)
            if self.unresolved and tp in self.unresolved:
                return False
            if not in_flight:
                return True
            # Until the broker holds this producer's state for the partition, one batch at a
            # time: without state it takes any sequence as the first, so were the first batch
            # refused (a partition not ready yet) and the second written, the first would come
            # back OUT_OF_ORDER_SEQUENCE_NUMBER and the partition's records out of order.
            return in_flight[0].producer_epoch == self.producer_epoch and tp in self.established
        # A retried batch waits until every earlier batch has been resolved.
        return not in_flight or in_flight[0].order >= batch.order

    def stamp(self, batch: ProducerBatch) -> None:
        """Give a new ``batch`` the producer id, epoch and its sequence; a retry keeps its own."""
        tp = (batch.topic, batch.partition)
        if batch.base_sequence < 0:
            sequence = self.next_sequence.get(tp, 0)
            batch.base_sequence = sequence
            self.next_sequence[tp] = (sequence + batch.record_count) & MAX_SEQUENCE
            batch.producer_id = self.producer_id
            batch.producer_epoch = self.producer_epoch
            stamped = self.stamped.get(tp)
            if stamped is None:
                stamped = self.stamped[tp] = set()
            stamped.add(batch)
        in_flight = self.in_flight.setdefault(tp, [])
        in_flight.append(batch)
        in_flight.sort(key=_send_order)

    # -- responses -----------------------------------------------------------

    def resolved(self, batch: ProducerBatch, *, acked: bool, retrying: bool = False) -> None:
        """``batch`` is no longer in flight (acknowledged, ``retrying`` or failed)."""
        tp = (batch.topic, batch.partition)
        in_flight = self.in_flight.get(tp)
        if in_flight is not None:
            try:
                in_flight.remove(batch)
            except ValueError:
                pass
            if not in_flight:
                del self.in_flight[tp]
        if not retrying:
            stamped = self.stamped.get(tp)
            if stamped is not None:
                stamped.discard(batch)
                if not stamped:
                    del self.stamped[tp]
        if acked:
            self.last_acked[tp] = (batch.base_sequence + batch.record_count - 1) & MAX_SEQUENCE
            self.established.add(tp)

    def is_oldest_unresolved(self, batch: ProducerBatch) -> bool:
        """No earlier batch of the partition is still unresolved: neither in flight nor
        queued for a retry. Only then does OUT_OF_ORDER_SEQUENCE_NUMBER mean a real gap;
        otherwise the broker is waiting for that earlier batch, which a retry will bring."""
        tp = (batch.topic, batch.partition)
        epoch = batch.producer_epoch
        order = batch.order
        for other in self.stamped.get(tp, ()):
            if other is not batch and other.producer_epoch == epoch and other.order < order:
                return False
        in_flight = self.in_flight.get(tp)
        return not in_flight or in_flight[0] is batch or in_flight[0].order >= order

    def request_bump(self, reason: str, tp: TopicPartition | None = None) -> None:
        """The numbering of ``tp`` (None: of every partition) is no longer reliable:
        bump the epoch once idle and renumber it."""
        if not self.bump_needed:
            log.warning("Bumping the producer epoch: %s", reason)
        self.bump_needed = True
        if tp is None:
            self.rewrite = None
        elif self.rewrite is not None:
            self.rewrite.add(tp)

    def mark_unresolved(self, batch: ProducerBatch) -> None:
        """``batch`` failed after being sent, maybe written: settle its partition later."""
        self.unresolved.add((batch.topic, batch.partition))

    def resolve_sequences(self) -> None:
        """Settle each unresolved partition whose batches have all been answered: no gap if
        every sequence handed out was acknowledged, else bump and renumber it."""
        for tp in [tp for tp in self.unresolved if tp not in self.stamped]:
            self.unresolved.discard(tp)
            if (self.last_acked.get(tp, -1) + 1) & MAX_SEQUENCE != self.next_sequence.get(tp, 0):
                self.request_bump(f"a failed batch left a gap in the sequence of {tp[0]}-{tp[1]}", tp)

    def has_in_flight(self) -> bool:
        return bool(self.in_flight)

    def bump(self, queued: Iterable[ProducerBatch]) -> bool:
        """Bump the epoch locally; False when exhausted (a new producer id is needed).

        Every partition's next new batch starts at sequence 0. Queued batches of the
        partitions to renumber lose their sequence; other queued retries keep their
        epoch and sequence (see the module docstring).
        """
        rewrite = self.rewrite
        exhausted = self.producer_epoch >= MAX_EPOCH
        self.bump_needed = False
        self.rewrite = set()
        self.next_sequence.clear()
        self.last_acked.clear()
        for batch in queued:
            tp = (batch.topic, batch.partition)
            if exhausted or rewrite is None or tp in rewrite:
                batch.base_sequence = -1
                stamped = self.stamped.get(tp)
                if stamped is not None:
                    stamped.discard(batch)
                    if not stamped:
                        del self.stamped[tp]
        if exhausted or rewrite is None:
            self.unresolved.clear()
        else:
            self.unresolved -= rewrite
        if exhausted:
            self.producer_id = -1
            self.producer_epoch = -1
            return False
        self.producer_epoch += 1
        log.info("Producer id %d now at epoch %d", self.producer_id, self.producer_epoch)
        return True


def _send_order(batch: ProducerBatch) -> tuple[int, int]:
    # The partition's send order: the order of its sequences, without their wrap
    # from 2**31 - 1 to 0 (and across an epoch bump, where sequences restart).
    return batch.order
