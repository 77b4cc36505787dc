"""One topic-partition's state, in one object: its queue and its idempotence bookkeeping.

Java spreads this over the accumulator's deques and the transaction manager's
``TxnPartitionEntry``; franz-go keeps it in one ``recBuf`` per partition, and so
does kprod. A :class:`PartitionState` holds the partition's queue of batches
(guarded by the accumulator lock, as ``send()`` appends to it) and everything the
I/O thread knows about the partition (owned by that thread, no lock): the next
sequence, the batches in flight in send order, the batches holding a sequence not
yet acknowledged, whether the broker holds this producer's state there, whether a
lost batch left its sequence *unresolved*, whether the next epoch bump renumbers
it. The producer-wide part (producer id, epoch, a bump pending) is
:class:`kprod.producer.idempotence.IdempotenceState`.

The sender asks :meth:`PartitionState.error_action` what a failed produce means
for the partition and acts on the answer (an :class:`ErrorAction`); the decision
reads error classes from :mod:`kprod.errors`, never numeric codes.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from typing import TYPE_CHECKING

from kprod.errors import (
    DuplicateSequenceNumberError,
    FatalProducerError,
    InvalidMetadataError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    MessageTooLargeError,
    OutOfOrderSequenceNumberError,
    RecordListTooLargeError,
    RetriableError,
    UnknownProducerIdError,
)
from kprod.producer.batch import ProducerBatch

if TYPE_CHECKING:
    from kprod.producer.idempotence import IdempotenceState

__all__ = ["ErrorAction", "MAX_SEQUENCE", "PartitionState", "RetryBackoff"]

MAX_SEQUENCE = 2**31 - 1

# Errors after which an idempotent producer cannot go on: it was fenced, lost its
# epoch or id mapping, or is not authorised to write idempotently.
_FATAL_FOR_IDEMPOTENCE = (FatalProducerError, InvalidProducerEpochError, InvalidProducerIdMappingError)
_TOO_LARGE = (MessageTooLargeError, RecordListTooLargeError)


class ErrorAction(enum.Enum):
    """What the sender does with a batch whose produce failed."""

    ALREADY_WRITTEN = "already written"  # the broker had it (DUPLICATE_SEQUENCE_NUMBER): a success
    RETRY = "retry"  # queue it again after the backoff
    RETRY_AFTER_METADATA = "retry after metadata"  # the leader moved: refresh metadata, then retry
    BUMP_EPOCH = "bump epoch"  # the partition's numbering is broken: bump the epoch, then retry
    SPLIT = "split"  # too large for the broker: resend its records in halves
    FAIL_BATCH = "fail batch"  # fail this batch's records with the error
    EXPIRE = "expire"  # retriable, but past delivery.timeout.ms: fail with a timeout naming the error
    FATAL = "fatal"  # the producer cannot go on: fail this batch and every queued one


class RetryBackoff:
    """``retry.backoff.ms`` doubling per attempt up to ``retry.backoff.max.ms``, with +-20%
    jitter once it has grown (Java's ExponentialBackoff)."""

    __slots__ = ("base_ms", "max_ms", "_random")

    def __init__(self, base_ms: int, max_ms: int) -> None:
        self.base_ms = base_ms
        self.max_ms = max_ms
        self._random = random.Random()

    def delay_ms(self, attempts: int) -> float:
        """The wait before attempt ``attempts + 1`` of a batch tried ``attempts`` times."""
        backoff: float = min(self.max_ms, self.base_ms * (2 ** (attempts - 1)))
        if backoff > self.base_ms:
            backoff = min(self.max_ms, backoff * (0.8 + 0.4 * self._random.random()))
        return backoff


class PartitionState:
    """A topic-partition's queue and idempotence state; see the module docstring."""

    __slots__ = (
        "topic", "partition", "queue", "next_sequence", "in_flight", "stamped", "last_acked",
        "broker_has_state", "unresolved", "renumber",
    )

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        #: Batches waiting to be sent, in send order; the last may be open. Accumulator lock.
        self.queue: deque[ProducerBatch] = deque()
        # The rest belongs to the I/O thread and is used only with idempotence.
        self.next_sequence = 0
        #: Sent and not answered yet, in send order.
        self.in_flight: list[ProducerBatch] = []
        #: Holding a sequence, neither acknowledged nor failed (in flight or queued to retry).
        self.stamped: set[ProducerBatch] = set()
        #: The last sequence acknowledged (-1: none since the numbering restarted).
        self.last_acked = -1
        #: A batch of this producer id was acknowledged here: the broker holds the producer's
        #: state and checks every sequence against it.
        self.broker_has_state = False
        #: A batch failed without knowing whether the broker wrote it.
        self.unresolved = False
        #: Renumber the queued batches from 0 at the next epoch bump.
        self.renumber = False

    def __repr__(self) -> str:
        return (f"PartitionState({self.topic}-{self.partition}, queued={len(self.queue)}, "
                f"in_flight={len(self.in_flight)}, next_sequence={self.next_sequence})")

    # -- queue (under the accumulator lock) ----------------------------------

    def insert_in_order(self, batch: ProducerBatch) -> None:
        """Put ``batch`` before the first queued batch sent after it (retries and splits are
        rare and queues short, so a scan is fine). Several requests may be in flight, so a
        batch coming back can be older than batches already queued again."""
        queue = self.queue
        order = batch.order
        for index, queued in enumerate(queue):
            if queued.order > order:
                queue.insert(index, batch)
                return
        queue.append(batch)

    # -- sequences (I/O thread) ----------------------------------------------

    def can_send(self, batch: ProducerBatch, epoch: int) -> bool:
        """May ``batch`` (this partition's queue head) be sent now without breaking sequence
        order? ``epoch``: the producer's current epoch."""
        in_flight = self.in_flight
        if batch.base_sequence < 0:
            # A new batch (current epoch) waits for the partition's older-epoch batches (the
            # broker would fence them once it has seen the new epoch) and for an unresolved
            # sequence to be settled.
            if self.unresolved:
                return False
            if not in_flight:
                return True
            # Until the broker holds this producer's state for the partition, one batch at a
            # time: without state it takes any sequence as the first, so were the first batch
            # refused (a partition not ready yet) and the second written, the first would come
            # back OUT_OF_ORDER_SEQUENCE_NUMBER and the partition's records out of order.
            return in_flight[0].producer_epoch == epoch and self.broker_has_state
        # A retried batch waits until every earlier batch has been resolved.
        return not in_flight or in_flight[0].order >= batch.order

    def stamp(self, batch: ProducerBatch, producer_id: int, epoch: int) -> None:
        """Give a new ``batch`` the producer id, epoch and its sequence (a retry keeps its
        own) and count it in flight."""
        if batch.base_sequence < 0:
            sequence = self.next_sequence
            batch.base_sequence = sequence
            self.next_sequence = (sequence + batch.record_count) & MAX_SEQUENCE
            batch.producer_id = producer_id
            batch.producer_epoch = epoch
            self.stamped.add(batch)
        in_flight = self.in_flight
        in_flight.append(batch)
        # The send order: the order of the sequences without their wrap from 2**31 - 1 to 0
        # (and across an epoch bump, where sequences restart).
        in_flight.sort(key=_send_order)

    def resolved(self, batch: ProducerBatch, *, acked: bool, retrying: bool = False) -> None:
        """``batch`` is no longer in flight (acknowledged, ``retrying`` or failed)."""
        try:
            self.in_flight.remove(batch)
        except ValueError:
            pass
        if not retrying:
            self.stamped.discard(batch)
        if acked:
            self.last_acked = (batch.base_sequence + batch.record_count - 1) & MAX_SEQUENCE
            self.broker_has_state = True

    def is_oldest_unresolved(self, batch: ProducerBatch) -> bool:
        """No earlier batch of the partition is still unresolved: neither in flight nor
        queued for a retry. Only then does OUT_OF_ORDER_SEQUENCE_NUMBER mean a real gap;
        otherwise the broker is waiting for that earlier batch, which a retry will bring."""
        epoch = batch.producer_epoch
        order = batch.order
        for other in self.stamped:
            if other is not batch and other.producer_epoch == epoch and other.order < order:
                return False
        in_flight = self.in_flight
        return not in_flight or in_flight[0] is batch or in_flight[0].order >= order

    def lost(self, batch: ProducerBatch, error: BaseException, producer: IdempotenceState) -> None:
        """A sent batch failed for good: a gap in the sequence, or maybe not."""
        if isinstance(error, RetriableError):  # expired or cut off: the broker may have it
            self.unresolved = True
            producer.maybe_unresolved = True
        else:
            producer.request_bump(
                f"a batch with sequence {batch.base_sequence} for {self.topic}-{self.partition} failed", self)

    def settle(self) -> bool:
        """If every batch of an unresolved partition has been answered, it is resolved;
        True when what was acknowledged leaves a gap (then bump and renumber)."""
        if self.stamped:
            return False
        self.unresolved = False
        return (self.last_acked + 1) & MAX_SEQUENCE != self.next_sequence

    def restart_numbering(self) -> None:
        """A new epoch or producer id: the next new batch starts at sequence 0."""
        self.next_sequence = 0
        self.last_acked = -1

    # -- errors --------------------------------------------------------------

    def error_action(
        self, batch: ProducerBatch, error: BaseException, *, idempotent: bool, retries_left: bool, expired: bool,
    ) -> ErrorAction:
        """What ``error`` (a produce of ``batch`` failed) means for this partition.

        ``retries_left``: ``batch`` was tried fewer than ``retries`` times; ``expired``:
        it is past ``delivery.timeout.ms``. Reads only; the sender acts on the answer.
        """
        if isinstance(error, DuplicateSequenceNumberError):
            return ErrorAction.ALREADY_WRITTEN
        if isinstance(error, _TOO_LARGE) and batch.record_count > 1:
            return ErrorAction.SPLIT
        if idempotent and isinstance(error, _FATAL_FOR_IDEMPOTENCE):
            return ErrorAction.FATAL
        # With idempotence a sequence error is retried: after a bump, or once the earlier
        # batch the broker is waiting for has been resent.
        sequence_problem = idempotent and isinstance(error, OutOfOrderSequenceNumberError)
        if not (sequence_problem or isinstance(error, RetriableError)):
            return ErrorAction.FAIL_BATCH
        if expired:
            return ErrorAction.EXPIRE
        if not retries_left:
            return ErrorAction.FAIL_BATCH
        if sequence_problem and (isinstance(error, UnknownProducerIdError) or self.is_oldest_unresolved(batch)):
            return ErrorAction.BUMP_EPOCH
        if isinstance(error, InvalidMetadataError):
            return ErrorAction.RETRY_AFTER_METADATA
        return ErrorAction.RETRY


def _send_order(batch: ProducerBatch) -> tuple[int, int]:
    return batch.order
