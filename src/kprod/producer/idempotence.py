"""Idempotent producer state, producer-wide: producer id, epoch, a bump pending.

Everything per partition (sequences, batches in flight, *unresolved*) lives in
:class:`kprod.producer.partition_state.PartitionState`. The rules both follow:

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
from kprod.producer.partition_state import MAX_SEQUENCE, PartitionState

__all__ = ["IdempotenceState", "MAX_SEQUENCE", "MAX_EPOCH"]

log = logging.getLogger("kprod.producer")

MAX_EPOCH = 2**15 - 1


class IdempotenceState:
    """The producer-wide part; owned by the I/O thread, no locking."""

    def __init__(self) -> None:
        self.producer_id = -1
        self.producer_epoch = -1
        self.bump_needed = False
        # Renumber every partition at the next bump (else those marked ``renumber``).
        self.renumber_all = False
        # Some partition may be unresolved: settle() has work (a hint; the truth is per partition).
        self.maybe_unresolved = False
        self.fatal_error: BaseException | None = None

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    @property
    def sending(self) -> bool:
        """May batches be sent at all (an id, no bump pending, no fatal error)?"""
        return self.producer_id >= 0 and not self.bump_needed and self.fatal_error is None

    def set_producer_id(self, producer_id: int, epoch: int, partitions: Iterable[PartitionState]) -> None:
        """A fresh id from InitProducerId: numbering restarts everywhere."""
        self.producer_id = producer_id
        self.producer_epoch = epoch
        for state in partitions:
            state.restart_numbering()
            state.broker_has_state = False
        self.bump_needed = False
        log.info("Producer id %d, epoch %d", producer_id, epoch)

    def request_bump(self, reason: str, state: PartitionState | None = None) -> None:
        """The numbering of ``state``'s partition (None: of every partition) is no longer
        reliable: bump the epoch once idle and renumber it."""
        if not self.bump_needed:
            log.warning("Bumping the producer epoch: %s", reason)
        self.bump_needed = True
        if state is None:
            self.renumber_all = True
        else:
            state.renumber = True

    def settle(self, partitions: Iterable[PartitionState]) -> None:
        """Settle each unresolved partition whose batches have all been answered: no gap if
        every sequence handed out was acknowledged, else bump and renumber it."""
        unresolved = False
        for state in partitions:
            if state.unresolved:
                if state.settle():
                    self.request_bump(
                        f"a failed batch left a gap in the sequence of {state.topic}-{state.partition}", state)
                unresolved = unresolved or state.unresolved
        self.maybe_unresolved = unresolved

    def bump(self, partitions: Iterable[tuple[PartitionState, list[ProducerBatch]]]) -> bool:
        """Bump the epoch locally; False when exhausted (a new producer id is needed).

        ``partitions``: each partition's state with its queued batches. Every
        partition's next new batch starts at sequence 0. Queued batches of the
        partitions to renumber lose their sequence; other queued retries keep their
        epoch and sequence (see the module docstring).
        """
        exhausted = self.producer_epoch >= MAX_EPOCH
        renumber_all = exhausted or self.renumber_all
        self.bump_needed = False
        self.renumber_all = False
        for state, queued in partitions:
            state.restart_numbering()
            if renumber_all or state.renumber:
                for batch in queued:
                    batch.base_sequence = -1
                    state.stamped.discard(batch)
                state.unresolved = False
            state.renumber = False
        if exhausted:
            self.producer_id = -1
            self.producer_epoch = -1
            return False
        self.producer_epoch += 1
        log.info("Producer id %d now at epoch %d", self.producer_id, self.producer_epoch)
        return True
