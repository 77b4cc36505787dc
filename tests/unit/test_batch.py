"""ProducerBatch's waiting: the event exists only once someone waits, wakes waiters only
after the callbacks ran, and a split wakes them too. Threads wait on conditions with
deadlines; nothing sleeps."""

from __future__ import annotations

import threading
from typing import Any

from kprod.producer.batch import ProducerBatch, RecordFuture
from kprod.protocol.records import RecordBatchBuilder


def _batch() -> ProducerBatch:
    return ProducerBatch("t", 0, RecordBatchBuilder(0, None), 0.0, 0)


def _waiter(batch: ProducerBatch, timeout: float = 10.0) -> tuple[threading.Thread, list[Any], threading.Event]:
    outcome: list[Any] = []
    started = threading.Event()

    def run() -> None:
        started.set()
        outcome.append(batch.wait(timeout))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    return thread, outcome, started


def test_no_event_is_made_for_a_batch_nobody_waits_on() -> None:
    batch = _batch()
    batch.succeed(5, -1)
    assert batch._event is None
    assert batch.wait(0) is True  # settled: no event needed either


def test_a_timed_wait_on_a_pending_batch_times_out() -> None:
    batch = _batch()
    assert batch.wait(0.01) is False
    assert batch._event is not None


def test_waiters_wake_only_after_the_callbacks_ran() -> None:
    batch = _batch()
    future = RecordFuture(batch, 0, 1, -1, 1)
    batch.futures.append(future)
    callback_ran = threading.Event()
    release_callback = threading.Event()
    during_callback: list[tuple[bool, bool, list[Any]]] = []

    def callback(metadata: Any, error: Any) -> None:
        callback_ran.set()
        assert release_callback.wait(10)

    assert batch.add_callback(future, callback, True)
    thread, outcome, _ = _waiter(batch)
    # The waiter made the batch's event: it is in (or about to enter) event.wait().
    deadline = threading.Event()
    for _ in range(1000):
        if batch._event is not None:
            break
        deadline.wait(0.01)
    event = batch._event
    assert event is not None
    completer = threading.Thread(target=batch.succeed, args=(7, -1), daemon=True)
    completer.start()
    assert callback_ran.wait(10)
    # While the callback runs, the waiters' event is not set and the batch is not settled, so no
    # waiter can have woken; the outcome list is still empty.
    during_callback.append((event.is_set(), batch._settled, list(outcome)))
    release_callback.set()
    thread.join(10)
    completer.join(10)
    assert during_callback == [(False, False, [])]
    assert not thread.is_alive() and outcome == [True] and event.is_set()
    assert future.result(0).offset == 7


def test_a_split_wakes_waiters() -> None:
    batch = _batch()
    thread, outcome, _ = _waiter(batch)
    batch.mark_split()
    thread.join(10)
    assert outcome == [True] and batch.split
