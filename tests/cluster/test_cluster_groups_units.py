"""The group state machine alone, on a manual clock: timeouts and invariants under any request order."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kprod.cluster.config import parse_broker_config
from kprod.cluster.groups import (
    COMPLETING_REBALANCE,
    EMPTY,
    PREPARING_REBALANCE,
    STABLE,
    GroupCoordinator,
    JoinResult,
    SyncResult,
)
from kprod.cluster.state import ClusterState


class ManualTimers:
    """Timers on a clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, list[Any]]] = []
        self._seq = itertools.count()

    def schedule(self, deadline: float, callback: Callable[[], None]) -> Any:
        entry: list[Any] = [callback]

        class Handle:
            def cancel(self) -> None:
                entry[0] = None

        heapq.heappush(self._heap, (deadline, next(self._seq), entry))
        return Handle()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._heap and self._heap[0][0] <= self.now:
            _, _, entry = heapq.heappop(self._heap)
            if entry[0] is not None:
                callback, entry[0] = entry[0], None
                callback()


def coordinator(**config: str) -> tuple[GroupCoordinator, ManualTimers]:
    timers = ManualTimers()
    state = ClusterState([(0, "127.0.0.1", 9092)], parse_broker_config(config))
    state.brokers[0].running = True
    return GroupCoordinator(state, timers.schedule, clock=lambda: timers.now), timers


class Answers:
    def __init__(self) -> None:
        self.joins: list[JoinResult] = []
        self.syncs: list[SyncResult] = []


def join(groups: GroupCoordinator, answers: Answers, member_id: str = "", *, instance: str | None = None,
         session_ms: int = 10_000, rebalance_ms: int = 5_000) -> None:
    groups.join("g", member_id, instance, "client", "/127.0.0.1", session_ms, rebalance_ms, "consumer",
                [("range", b"meta")], False, answers.joins.append)


def test_session_and_rebalance_timeouts_on_a_manual_clock() -> None:
    groups, timers = coordinator()
    a = Answers()
    join(groups, a, session_ms=6000, rebalance_ms=2000)
    a_id = a.joins[-1].member_id
    assert a.joins[-1].generation == 1
    groups.sync("g", a_id, None, 1, None, None, {a_id: b"x"}, a.syncs.append)
    timers.advance(5.9)
    assert groups.heartbeat("g", a_id, None, 1) == 0  # in time: the session restarts
    timers.advance(5.9)
    assert groups.info("g").state == STABLE  # type: ignore[union-attr]
    assert groups.heartbeat("g", a_id, None, 1) == 0  # its session now outlasts the rebalance below
    # b joins; a never rejoins: after a's rebalance timeout (2 s) b is alone in generation 2
    b = Answers()
    join(groups, b, session_ms=6000, rebalance_ms=2000)
    assert b.joins == [] and groups.info("g").state == PREPARING_REBALANCE  # type: ignore[union-attr]
    timers.advance(1.9)
    assert b.joins == []
    timers.advance(0.2)
    assert (b.joins[-1].generation, b.joins[-1].leader) == (2, b.joins[-1].member_id)
    assert [m.member_id for m in groups.info("g").members] == [b.joins[-1].member_id]  # type: ignore[union-attr]
    # b never syncs: after the rebalance timeout it is removed too
    timers.advance(2.1)
    assert groups.info("g").state == EMPTY  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["join", "rejoin", "sync", "heartbeat", "leave", "tick", "static"]),
                          st.integers(0, 3)), max_size=40))
def test_any_request_order_keeps_the_group_consistent(steps: list[tuple[str, int]]) -> None:
    groups, timers = coordinator()
    answers = [Answers() for _ in range(4)]
    ids: dict[int, str] = {}
    generation: dict[int, int] = {}
    for action, who in steps:
        box = answers[who]
        if action == "join":
            join(groups, box, rebalance_ms=1000)
        elif action == "static":
            join(groups, box, instance=f"i{who % 2}", rebalance_ms=1000)
        elif action == "rejoin" and who in ids:
            join(groups, box, ids[who], rebalance_ms=1000)
        elif action == "sync" and who in ids:
            groups.sync("g", ids[who], None, generation[who], None, None, {ids[who]: b"a"}, box.syncs.append)
        elif action == "heartbeat" and who in ids:
            groups.heartbeat("g", ids[who], None, generation[who])
        elif action == "leave" and who in ids:
            groups.leave("g", [(ids[who], None)])
        elif action == "tick":
            timers.advance(0.6 * (who + 1))
        if box.joins and box.joins[-1].error == 0:
            ids[who], generation[who] = box.joins[-1].member_id, box.joins[-1].generation
        group = groups.groups.get("g")
        if group is None:
            continue
        assert group.leader_id is None or group.leader_id in group.members
        assert group.pending_sync <= set(group.members)
        assert all(group.members[m].instance_id == i for i, m in group.static_members.items())
        if group.state in (STABLE, COMPLETING_REBALANCE):
            assert group.members and group.protocol_name == "range"
        if group.state == EMPTY:
            assert not group.members
    timers.advance(3600)  # every timer fires; nothing may raise
