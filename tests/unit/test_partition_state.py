"""The per-partition state object: what an error means for a partition, and its bookkeeping.

The decision table is checked against the numeric rule the sender used before the
decision moved into ``PartitionState`` (written out below as the reference), for every
error code kprod knows, so classifying by error class changed no outcome.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from kprod.errors import (  # noqa: E402
    ERROR_CLASSES,
    InvalidMetadataError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotEnoughReplicasError,
    RetriableError,
    error_for_code,
)
from kprod.producer.batch import ProducerBatch, RecordFuture  # noqa: E402
from kprod.producer.idempotence import IdempotenceState  # noqa: E402
from kprod.producer.partition_state import MAX_SEQUENCE, ErrorAction, PartitionState, RetryBackoff  # noqa: E402
from kprod.protocol.records import RecordBatchBuilder  # noqa: E402
from tests.unit.test_sender import (  # noqa: E402
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    PID,
    Harness,
    answer_produce,
    stamp,
)

_INVALID_TRANSACTION_TIMEOUT = 50  # an InitProducerId/AddPartitions error, never a Produce one


def _batch(records: int, order: int = 1) -> ProducerBatch:
    builder = RecordBatchBuilder(0, None)
    batch = ProducerBatch("t", 0, builder, 0.0, 0)
    for i in range(records):
        builder.append(0, None, b"v%d" % i, None)
        batch.futures.append(RecordFuture(batch, i, 0, -1, 2))
    batch.order = (order, 0)
    return batch


def _reference(code: int | None, error: BaseException, *, idempotent: bool, records: int, retries_left: bool,
               expired: bool, oldest: bool) -> ErrorAction:
    """The sender's rule before PartitionState, on numeric codes (its ``_on_batch_error``)."""
    if code == 46:
        return ErrorAction.ALREADY_WRITTEN
    if code in (10, 18) and records > 1:
        return ErrorAction.SPLIT
    if idempotent and code in {47, 90, 31, 53, 49}:
        return ErrorAction.FATAL
    sequence_problem = idempotent and code in {45, 59}
    retriable = isinstance(error, RetriableError) or sequence_problem
    if retriable and retries_left and not expired:
        if sequence_problem and (code == 59 or oldest):
            return ErrorAction.BUMP_EPOCH
        if isinstance(error, InvalidMetadataError):
            return ErrorAction.RETRY_AFTER_METADATA
        return ErrorAction.RETRY
    return ErrorAction.EXPIRE if expired and retriable else ErrorAction.FAIL_BATCH


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
@pytest.mark.parametrize("records", [1, 2])
@pytest.mark.parametrize("retries_left,expired", [(True, False), (False, False), (True, True), (False, True)])
@pytest.mark.parametrize("oldest", [True, False], ids=["oldest", "not-oldest"])
def test_every_error_code_gets_the_action_the_numeric_rule_gave(
    idempotent: bool, records: int, retries_left: bool, expired: bool, oldest: bool,
) -> None:
    state = PartitionState("t", 0)
    batch = _batch(records, order=2)
    batch.base_sequence, batch.producer_epoch = 5, 0
    state.stamped.add(batch)
    state.in_flight.append(batch)
    if not oldest:  # an earlier batch of the same epoch is still unresolved
        earlier = _batch(1, order=1)
        earlier.base_sequence, earlier.producer_epoch = 4, 0
        state.stamped.add(earlier)
    assert state.is_oldest_unresolved(batch) is oldest
    cases: list[tuple[int | None, BaseException]] = [
        (code, error_for_code(code)) for code in sorted(ERROR_CLASSES) if code != _INVALID_TRANSACTION_TIMEOUT]
    cases += [(None, KafkaConnectionError("cut")), (None, KafkaTimeoutError("request.timeout.ms"))]
    for code, error in cases:
        expected = _reference(code, error, idempotent=idempotent, records=records, retries_left=retries_left,
                              expired=expired, oldest=oldest)
        action = state.error_action(batch, error, idempotent=idempotent, retries_left=retries_left, expired=expired)
        assert action is expected, f"code {code} ({type(error).__name__})"


def test_the_decision_reads_error_classes_not_codes() -> None:
    """A subclass of a retriable class is retried, whatever code it would carry."""

    class CustomReplicasError(NotEnoughReplicasError):
        pass

    state = PartitionState("t", 0)
    batch = _batch(1)
    action = state.error_action(batch, CustomReplicasError(), idempotent=True, retries_left=True, expired=False)
    assert action is ErrorAction.RETRY
    assert state.error_action(batch, KafkaConnectionError("cut"), idempotent=True, retries_left=True,
                              expired=False) is ErrorAction.RETRY_AFTER_METADATA


def test_stamp_numbers_batches_per_partition_and_keeps_send_order() -> None:
    state = PartitionState("t", 3)
    state.next_sequence = MAX_SEQUENCE - 1
    first, second = _batch(3, order=1), _batch(2, order=2)
    state.stamp(second, PID, 7)  # drained in the other order: in-flight stays in send order
    state.stamp(first, PID, 7)
    assert (second.base_sequence, first.base_sequence, state.next_sequence) == (MAX_SEQUENCE - 1, 0, 3)
    assert (first.producer_id, first.producer_epoch) == (PID, 7)
    assert state.in_flight == [first, second] and state.stamped == {first, second}
    state.resolved(first, acked=True)
    assert state.in_flight == [second] and state.stamped == {second}
    assert state.last_acked == 2 and state.broker_has_state
    state.resolved(second, acked=False, retrying=True)  # queued again: still holds its sequence
    assert state.in_flight == [] and state.stamped == {second}
    before = second.base_sequence
    state.stamp(second, PID, 8)
    assert second.base_sequence == before and second.producer_epoch == 7, "a retry keeps its sequence and epoch"


def test_one_batch_at_a_time_until_the_broker_holds_the_producers_state() -> None:
    state = PartitionState("t", 0)
    first, second = _batch(1, order=1), _batch(1, order=2)
    assert state.can_send(first, 0)
    state.stamp(first, PID, 0)
    assert not state.can_send(second, 0), "no pipelining before the first acknowledgement"
    state.resolved(first, acked=True)
    third = _batch(1, order=3)
    state.stamp(second, PID, 0)
    assert state.can_send(third, 0), "pipelined once the broker holds the state"
    assert not state.can_send(third, 1), "a new-epoch batch waits for older-epoch ones"


def test_a_lost_batch_leaves_the_partition_unresolved_until_its_later_batches_are_answered() -> None:
    producer = IdempotenceState()
    state = PartitionState("t", 0)
    lost, later = _batch(1, order=1), _batch(1, order=2)
    state.stamp(lost, PID, 0)
    state.stamp(later, PID, 0)
    state.resolved(lost, acked=False)
    state.lost(lost, KafkaTimeoutError("expired"), producer)
    assert state.unresolved and producer.maybe_unresolved and not producer.bump_needed
    assert not state.can_send(_batch(1, order=3), 0), "no new batch while unresolved"
    producer.settle([state])
    assert state.unresolved and producer.maybe_unresolved, "a batch is still out"
    state.resolved(later, acked=True)  # the broker had both: last acked 1, next 2, no gap
    producer.settle([state])
    assert not state.unresolved and not producer.maybe_unresolved and not producer.bump_needed


def test_a_gap_after_an_unresolved_partition_bumps_and_renumbers_only_that_partition() -> None:
    producer = IdempotenceState()
    producer.producer_id, producer.producer_epoch = PID, 0
    gap, other = PartitionState("t", 0), PartitionState("t", 1)
    lost = _batch(1)
    gap.stamp(lost, PID, 0)
    gap.resolved(lost, acked=False)
    gap.lost(lost, KafkaTimeoutError("expired"), producer)
    queued_retry = _batch(1, order=5)
    other.stamp(queued_retry, PID, 0)
    other.resolved(queued_retry, acked=False, retrying=True)
    queued_new = _batch(1, order=6)
    gap.queue.append(queued_new)
    producer.settle([gap, other])
    assert producer.bump_needed and gap.renumber and not other.renumber and not gap.unresolved
    assert producer.bump([(gap, [queued_new]), (other, [queued_retry])])
    assert producer.producer_epoch == 1 and not producer.bump_needed
    assert queued_new.base_sequence == -1
    assert (queued_retry.base_sequence, queued_retry.producer_epoch) == (0, 0), "the other partition's retry keeps its stamp"
    assert gap.next_sequence == other.next_sequence == 0 and not gap.renumber


def test_retry_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    backoff = RetryBackoff(100, 1000)
    assert backoff.delay_ms(1) == 100
    assert 160 <= backoff.delay_ms(2) <= 240
    assert all(backoff.delay_ms(20) <= 1000 for _ in range(50))


def test_the_sender_keeps_one_state_per_partition_and_drives_it() -> None:
    """End to end with the scripted network: the sender's stamps and acknowledgements land
    in the partition's one state object."""
    h = Harness()
    h.start()
    state = h.state(0)
    assert h.acc.state_of(_batch(1)) is state
    (f,), sent = h.produce_one(0, b"a")
    assert stamp(sent) == [(0, PID, 0, 0, 1)]
    assert len(state.in_flight) == 1 and state.next_sequence == 1 and not state.broker_has_state
    answer_produce(h, sent, base_offset=0)
    h.step()
    assert f.result(0).offset == 0
    assert state.in_flight == [] and not state.stamped and state.broker_has_state and state.last_acked == 0
    (g,), sent = h.produce_one(0, b"b")
    answer_produce(h, sent, OUT_OF_ORDER_SEQUENCE_NUMBER)
    h.step()
    assert h.idem is not None and h.idem.bump_needed and state.renumber, "the gap marks the partition to renumber"
    h.step()
    assert h.idem.producer_epoch == 1 and not state.renumber and state.next_sequence == 0
    h.step(100)
    retried = h.net.produces()[-1]
    assert stamp(retried) == [(0, PID, 1, 0, 1)] and state.next_sequence == 1
    answer_produce(h, retried, base_offset=1)
    h.step()
    assert g.result(0).offset == 1 and not state.stamped and state.last_acked == 0
