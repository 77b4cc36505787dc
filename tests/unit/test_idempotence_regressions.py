"""Regressions found while proving idempotence on the real cluster (issue 4).

Each test drives the sender with the manual clock and the scripted network of
``test_sender.py`` and pins one behaviour the real-Kafka reliability test depends on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from kprod.errors import KafkaConnectionError, KafkaTimeoutError, MessageTooLargeError  # noqa: E402
from tests.unit.test_sender import (  # noqa: E402
    MESSAGE_TOO_LARGE,
    OUT_OF_ORDER_SEQUENCE_NUMBER,
    PID,
    Harness,
    answer_produce,
    stamp,
    values,
)


def test_a_bump_for_one_partition_keeps_another_partitions_retry_deduplicable() -> None:
    """Partition 1 loses a batch for good (a bump is needed); partition 0 has a batch whose
    request died with its connection, so the broker may already have written it. That
    batch must be resent with its first (epoch, sequence), which the broker recognises as
    a duplicate; renumbered in the new epoch it would be written a second time."""
    h = Harness()
    h.start()
    (uncertain,), a = h.produce_one(0, b"maybe-written")
    (doomed,), x = h.produce_one(1, b"too-large")
    h.net.answer(a, error=KafkaConnectionError("node 1 disconnected"))
    answer_produce(h, x, MESSAGE_TOO_LARGE)
    h.step()
    assert isinstance(doomed.exception(0), MessageTooLargeError)
    h.step()
    assert h.idem is not None and h.idem.producer_epoch == 1  # bumped for partition 1's gap
    h.step(100)
    retry = h.net.produces()[-1]
    assert values(retry) == [b"maybe-written"]
    assert stamp(retry) == stamp(a) == [(0, PID, 0, 0, 1)], "the retry must keep its epoch and sequence"
    # Partition 0 moves to the new epoch (from sequence 0) only once the old-epoch batch is resolved.
    (later,) = h.send(0, b"later")
    h.step()
    h.step()
    assert h.net.produces()[-1] is retry, "a new-epoch batch must not overtake the old-epoch retry"
    answer_produce(h, retry, base_offset=0)  # the broker: a duplicate, already at offset 0
    h.step()
    h.step()
    new = h.net.produces()[-1]
    assert values(new) == [b"later"] and stamp(new) == [(0, PID, 1, 0, 1)]
    answer_produce(h, new, base_offset=1)
    h.step()
    assert (uncertain.result(0).offset, later.result(0).offset) == (0, 1)
    # Partition 1 restarted at 0 in the new epoch.
    _, y = h.produce_one(1, b"next")
    assert stamp(y) == [(1, PID, 1, 0, 1)]


@pytest.mark.parametrize("broker_had_it", [True, False], ids=["written", "not-written"])
def test_an_expired_batch_leaves_its_partition_unresolved_until_later_retries_answer(broker_had_it: bool) -> None:
    """Two batches of a partition lose their connection (the broker may have written both);
    the older one expires while the leader stays unreachable. The younger one is retried
    with its own (epoch, sequence), and new batches wait meanwhile. If the broker has it,
    it answers with its offset: the numbering has no gap and no bump follows (renumbering
    it in a new epoch would have written it twice). If not, OUT_OF_ORDER_SEQUENCE_NUMBER
    shows the gap: the epoch is bumped and the batch delivered as sequence 0."""
    h = Harness(delivery_timeout_ms=5000, request_timeout_ms=1000, retry_backoff_ms=100, retry_backoff_max_ms=100)
    h.start(established=True)
    (expired,), a = h.produce_one(0, b"a")
    h.step(1000)
    (kept,), b = h.produce_one(0, b"b")
    assert [stamp(a), stamp(b)] == [[(0, PID, 0, 0, 1)], [(0, PID, 0, 1, 1)]]
    h.net.down.add(1)
    h.net.answer(a, error=KafkaConnectionError("node 1 disconnected"))
    h.net.answer(b, error=KafkaConnectionError("node 1 disconnected"))
    h.step()
    while not expired.done():
        h.step(100)
    assert isinstance(expired.exception(0), KafkaTimeoutError) and not kept.done()
    (new,) = h.send(0, b"c")
    h.net.down.discard(1)
    before = len(h.net.produces())
    h.step(100)
    h.step()
    h.step()
    (retry,) = h.new_produces(before)
    assert values(retry) == [b"b"], "only the retry goes out while the partition is unresolved"
    assert stamp(retry) == [(0, PID, 0, 1, 1)], "the retry keeps its epoch and sequence"
    assert h.state(0).unresolved and not h.state(1).unresolved
    assert h.idem is not None
    if broker_had_it:
        answer_produce(h, retry, base_offset=1)  # a duplicate, already at offset 1
        h.step()
        h.step()
        assert kept.result(0).offset == 1
        assert h.idem.producer_epoch == 0 and not h.idem.bump_needed and not h.state(0).unresolved
        assert stamp(h.net.produces()[-1]) == [(0, PID, 0, 2, 1)]
    else:
        answer_produce(h, retry, OUT_OF_ORDER_SEQUENCE_NUMBER)
        h.step()
        h.step(100)
        h.step()
        renumbered, following = h.new_produces(before + 1)  # pipelined again: same epoch
        assert values(renumbered) == [b"b"] and stamp(renumbered) == [(0, PID, 1, 0, 1)]
        assert stamp(following) == [(0, PID, 1, 1, 1)]
        answer_produce(h, renumbered, base_offset=1)
        h.step()
        assert kept.result(0).offset == 1 and not h.state(0).unresolved
    assert values(h.net.produces()[-1]) == [b"c"]
    answer_produce(h, h.net.produces()[-1], base_offset=2)
    h.step()
    assert new.result(0).offset == 2


def test_all_batches_of_a_partition_expiring_unwritten_leads_to_a_bump() -> None:
    """Nothing acknowledged after the expired batch: the gap is real, so the partition is
    renumbered in a new epoch and later sends work."""
    h = Harness(delivery_timeout_ms=5000, request_timeout_ms=1000, retry_backoff_ms=100, retry_backoff_max_ms=100)
    h.start()
    (expired,), a = h.produce_one(0, b"a")
    h.net.down.add(1)
    h.net.answer(a, error=KafkaConnectionError("node 1 disconnected"))
    h.step()
    while not expired.done():
        h.step(100)
    assert isinstance(expired.exception(0), KafkaTimeoutError)
    h.net.down.discard(1)
    h.step()
    assert h.idem is not None and h.idem.producer_epoch == 1 and not h.state(0).unresolved
    (later,), sent = h.produce_one(0, b"later")
    assert stamp(sent) == [(0, PID, 1, 0, 1)]
    answer_produce(h, sent, base_offset=1)
    h.step()
    assert later.result(0).offset == 1


def test_sequence_order_holds_across_the_wrap_from_max_to_zero() -> None:
    """Sequences wrap from 2**31 - 1 to 0. A batch numbered just before the wrap is still older
    than one numbered after it: its retry goes first, and the later batch's
    OUT_OF_ORDER_SEQUENCE_NUMBER (the broker waits for the earlier one) is no reason to bump."""
    from kprod.producer.idempotence import MAX_SEQUENCE
    from tests.unit.test_sender import NOT_ENOUGH_REPLICAS

    h = Harness()
    h.start(established=True)
    assert h.idem is not None
    h.state(0).next_sequence = MAX_SEQUENCE - 1
    _, a = h.produce_one(0, b"a1", b"a2", b"a3")  # sequences 2**31 - 2, 2**31 - 1, 0
    _, b = h.produce_one(0, b"b1")  # sequence 1
    assert stamp(a) == [(0, PID, 0, MAX_SEQUENCE - 1, 3)] and stamp(b) == [(0, PID, 0, 1, 1)]
    answer_produce(h, a, NOT_ENOUGH_REPLICAS)
    answer_produce(h, b, OUT_OF_ORDER_SEQUENCE_NUMBER)
    h.step()
    h.step(100)
    h.step()
    assert h.idem.producer_epoch == 0 and not h.idem.bump_needed, "no gap: nothing to bump for"
    retry_a = h.net.produces()[-1]
    assert stamp(retry_a) == stamp(a), "the batch from before the wrap is resent first, as it was"
    answer_produce(h, retry_a, base_offset=10)
    h.step()
    h.step()
    retry_b = h.net.produces()[-1]
    assert stamp(retry_b) == stamp(b) and values(retry_b) == [b"b1"]


def test_a_partition_takes_one_batch_at_a_time_until_the_broker_holds_the_producers_state() -> None:
    """A broker with no state for this producer on a partition takes any sequence as the
    first. Found on real Kafka: the first batch of a new topic's partition was refused as
    not ready yet, the pipelined second one was written, the retried first came back
    OUT_OF_ORDER_SEQUENCE_NUMBER, and after the epoch bump it landed after the second.
    So until a partition's first acknowledgement, its batches go one at a time."""
    from tests.unit.test_sender import NOT_ENOUGH_REPLICAS

    h = Harness(retry_backoff_ms=100, retry_backoff_max_ms=100)
    h.start()
    (first,), a = h.produce_one(0, b"first")
    (second,) = h.send(0, b"second")
    h.step()
    h.step()
    assert h.net.produces() == [a], "nothing else for partition 0 while its first batch is unanswered"
    answer_produce(h, a, NOT_ENOUGH_REPLICAS)  # e.g. a partition not ready yet
    h.step()
    h.step(100)
    h.step()
    retry = h.net.produces()[-1]
    assert values(retry) == [b"first"] and stamp(retry) == [(0, PID, 0, 0, 1)] and len(h.net.produces()) == 2
    answer_produce(h, retry, base_offset=0)
    h.step()
    h.step()
    follow = h.net.produces()[-1]
    assert values(follow) == [b"second"] and stamp(follow) == [(0, PID, 0, 1, 1)]
    # Acknowledged once: the partition's batches are pipelined from now on.
    later = h.send(0, b"third")
    h.step()
    h.step()
    h.send(0, b"fourth")
    h.step()
    h.step()
    assert [values(s) for s in h.net.produces()[-3:]] == [[b"second"], [b"third"], [b"fourth"]]
    for offset, sent in enumerate(h.net.produces()[-3:], start=1):
        answer_produce(h, sent, base_offset=offset)
    h.step()
    assert [f.result(0).offset for f in (first, second, *later)] == [0, 1, 2]
    assert h.idem is not None and h.idem.producer_epoch == 0 and not h.idem.bump_needed
