"""Consumer groups of real clients against the embedded cluster's group coordinator.

For confluent-kafka, kafka-python and aiokafka: two members of one group
split a 6-partition topic (disjoint, together all 6); when one leaves the
other gets all 6; and a member started after the others closed resumes from
the committed offsets: every record is read exactly once (exact partitions,
offsets and values). Also a group mixing two libraries, cooperative-sticky
incremental rebalancing, and a coordinator that moves when its broker stops.
The protocol-level error paths are in test_cluster_group_protocol.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from cluster_helpers import wait_until
from kprod import Producer
from kprod.cluster import EmbeddedCluster

TOPIC = "orders"
PARTITIONS = 6
PER_PARTITION = 5
GROUP = "order-processors"

Read = tuple[int, int, bytes]  # (partition, offset, value)


class Member(Protocol):
    def poll(self) -> list[Read]: ...

    def assignment(self) -> set[int]: ...

    def close(self) -> None: ...


MemberFactory = Callable[[str], Member]


# -- one adapter per client library: poll, commit what was read, report the assignment -----


class ConfluentMember:
    def __init__(self, bootstrap: str, group: str, **extra: Any) -> None:
        confluent_kafka = pytest.importorskip("confluent_kafka")
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 200,
            "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 2,
            **extra,
        }
        if settings.get("group.protocol") == "consumer":  # KIP-848: the broker sets these
            del settings["session.timeout.ms"], settings["heartbeat.interval.ms"]
        self.consumer = confluent_kafka.Consumer(settings)
        self.consumer.subscribe([TOPIC])

    def poll(self) -> list[Read]:
        messages = self.consumer.consume(num_messages=100, timeout=0.05)
        read = [(m.partition(), m.offset(), m.value()) for m in messages if m.error() is None]
        if read:
            self.consumer.commit(asynchronous=False)
        return read

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def close(self) -> None:
        self.consumer.close()


class KafkaPythonMember:
    def __init__(self, bootstrap: str, group: str, **extra: Any) -> None:
        kafka = pytest.importorskip("kafka")
        self.consumer = kafka.KafkaConsumer(
            TOPIC,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=200,
            **extra,
        )

    def poll(self) -> list[Read]:
        batches = self.consumer.poll(timeout_ms=500)
        read = [(r.partition, r.offset, r.value) for records in batches.values() for r in records]
        if read:
            self.consumer.commit()
        return read

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def close(self) -> None:
        self.consumer.close()


class AioKafkaMember:
    """An aiokafka consumer driven from this thread: each call runs the shared event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bootstrap: str, group: str, **extra: Any) -> None:
        aiokafka = pytest.importorskip("aiokafka")
        self.loop = loop

        async def start() -> Any:
            consumer = aiokafka.AIOKafkaConsumer(
                TOPIC,
                bootstrap_servers=bootstrap,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=6000,
                heartbeat_interval_ms=200,
                metadata_max_age_ms=1000,
                **extra,
            )
            await consumer.start()
            return consumer

        self.consumer = loop.run_until_complete(start())

    def poll(self) -> list[Read]:
        batches = self.loop.run_until_complete(self.consumer.getmany(timeout_ms=50))
        read = [(r.partition, r.offset, r.value) for records in batches.values() for r in records]
        if read:
            self.loop.run_until_complete(self.consumer.commit())
        return read

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())


@pytest.fixture
def event_loop_for_aiokafka() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def orders(cluster: EmbeddedCluster) -> Iterator[Callable[[int], dict[int, list[tuple[int, bytes]]]]]:
    """produce(round): PER_PARTITION records into every partition; returns {partition: [(offset, value)]}."""
    cluster.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3, config={"min.insync.replicas": "2"})
    with Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 1}) as producer:

        def produce(round_: int) -> dict[int, list[tuple[int, bytes]]]:
            futures = {
                p: [producer.send(TOPIC, b"round %d p%d #%d" % (round_, p, i), partition=p) for i in range(PER_PARTITION)]
                for p in range(PARTITIONS)
            }
            producer.flush(30)
            return {
                p: [(f.result(10).offset, b"round %d p%d #%d" % (round_, p, i)) for i, f in enumerate(fs)]
                for p, fs in futures.items()
            }

        yield produce


def _by_partition(reads: list[Read]) -> dict[int, list[tuple[int, bytes]]]:
    out: dict[int, list[tuple[int, bytes]]] = {}
    for partition, offset, value in reads:
        out.setdefault(partition, []).append((offset, value))
    return out


def _pump_until(members: dict[str, Member], reads: dict[str, list[Read]], done: Callable[[], bool], what: str) -> None:
    def step() -> bool:
        for name, member in members.items():
            reads.setdefault(name, []).extend(member.poll())
        return done()

    wait_until(step, timeout=60, what=what)


def _split(cluster: EmbeddedCluster, a: Member, b: Member, reads: dict[str, list[Read]]) -> tuple[set[int], set[int]]:
    """Pump both members until the group is stable with the partitions split between them."""

    def split() -> bool:
        first, second = a.assignment(), b.assignment()
        if not (first and second and not first & second and first | second == set(range(PARTITIONS))):
            return False
        info = cluster.group_info(GROUP)
        return info.state == "Stable" and len(info.members) == 2

    _pump_until({"a": a, "b": b}, reads, split, "the two members splitting the partitions")
    return a.assignment(), b.assignment()


def run_group_lifecycle(
    cluster: EmbeddedCluster, produce: Callable[[int], dict[int, list[tuple[int, bytes]]]], member: MemberFactory
) -> None:
    """Split, leave, restart: every record read exactly once, at the exact offsets."""
    reads: dict[str, list[Read]] = {}
    a, b = member("a"), member("b")
    try:
        part_a, part_b = _split(cluster, a, b, reads)
        assert reads.get("a", []) == [] and reads.get("b", []) == []  # nothing produced yet
        first = produce(1)
        _pump_until({"a": a, "b": b}, reads, lambda: sum(map(len, reads.values())) == 30, "round 1 read")
        assert _by_partition(reads["a"]) == {p: first[p] for p in sorted(part_a)}
        assert _by_partition(reads["b"]) == {p: first[p] for p in sorted(part_b)}

        # One member leaves: the other takes over every partition, from the committed offsets.
        b.close()
        wait_until(lambda: (a.poll() == [] and a.assignment() == set(range(PARTITIONS))), timeout=60,
                   what="the remaining member owning every partition")
        reads["a"].clear()
        second = produce(2)
        _pump_until({"a": a}, reads, lambda: len(reads["a"]) == 30, "round 2 read")
        assert _by_partition(reads["a"]) == second
    finally:
        a.close()
    info = cluster.group_info(GROUP)
    assert info.state == "Empty" and info.members == ()
    assert info.offsets == {(TOPIC, p): 2 * PER_PARTITION for p in range(PARTITIONS)}

    # A restarted member resumes at the committed offsets: no record lost or read twice.
    third = produce(3)
    restarted = member("restarted")
    try:
        reads = {}
        _pump_until({"r": restarted}, reads, lambda: len(reads["r"]) >= 30, "round 3 read")
        for _ in range(5):  # anything older than the committed offsets would show up now
            reads["r"].extend(restarted.poll())
        assert _by_partition(reads["r"]) == third
    finally:
        restarted.close()
    assert cluster.group_info(GROUP).offsets == {(TOPIC, p): 3 * PER_PARTITION for p in range(PARTITIONS)}


def test_confluent_kafka_group(cluster: EmbeddedCluster, orders: Any) -> None:
    run_group_lifecycle(cluster, orders, lambda name: ConfluentMember(cluster.bootstrap_servers, GROUP))


def test_kafka_python_group(cluster: EmbeddedCluster, orders: Any) -> None:
    run_group_lifecycle(cluster, orders, lambda name: KafkaPythonMember(cluster.bootstrap_servers, GROUP))


def test_aiokafka_group(cluster: EmbeddedCluster, orders: Any, event_loop_for_aiokafka: asyncio.AbstractEventLoop) -> None:
    run_group_lifecycle(
        cluster, orders, lambda name: AioKafkaMember(event_loop_for_aiokafka, cluster.bootstrap_servers, GROUP)
    )


def test_mixed_group_confluent_kafka_and_kafka_python(cluster: EmbeddedCluster, orders: Any) -> None:
    """librdkafka and kafka-python agree on the range assignor, so they can share a group."""
    kafka = pytest.importorskip("kafka")
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    reads: dict[str, list[Read]] = {}
    a = ConfluentMember(cluster.bootstrap_servers, GROUP, **{"partition.assignment.strategy": "range"})
    b = KafkaPythonMember(cluster.bootstrap_servers, GROUP, partition_assignment_strategy=[RangePartitionAssignor])
    assert kafka is not None
    try:
        part_a, part_b = _split(cluster, a, b, reads)
        assert cluster.group_info(GROUP).protocol == "range"
        # range: each member gets a contiguous half
        assert sorted([sorted(part_a), sorted(part_b)]) == [[0, 1, 2], [3, 4, 5]]
        first = orders(1)
        _pump_until({"a": a, "b": b}, reads, lambda: sum(map(len, reads.values())) == 30, "round 1 read")
        assert _by_partition(reads["a"]) == {p: first[p] for p in sorted(part_a)}
        assert _by_partition(reads["b"]) == {p: first[p] for p in sorted(part_b)}
    finally:
        a.close()
        b.close()
    assert cluster.group_info(GROUP).offsets == {(TOPIC, p): PER_PARTITION for p in range(PARTITIONS)}


def test_cooperative_sticky_keeps_partitions_during_incremental_rebalance(cluster: EmbeddedCluster, orders: Any) -> None:
    """cooperative-sticky: the coordinator relays the incremental protocol; the stayer keeps its partitions."""
    reads: dict[str, list[Read]] = {}
    strategy = {"partition.assignment.strategy": "cooperative-sticky"}
    a = ConfluentMember(cluster.bootstrap_servers, GROUP, **strategy)
    wait_until(lambda: (a.poll() == [] and a.assignment() == set(range(PARTITIONS))), timeout=60,
               what="the first member owning every partition")
    b = ConfluentMember(cluster.bootstrap_servers, GROUP, **strategy)
    try:
        kept_seen: list[set[int]] = []

        def split() -> bool:
            kept_seen.append(a.assignment())
            for name, member in (("a", a), ("b", b)):
                reads.setdefault(name, []).extend(member.poll())
            first, second = a.assignment(), b.assignment()
            return len(first) == 3 and len(second) == 3 and not first & second

        wait_until(split, timeout=60, what="an incremental split")
        assert cluster.group_info(GROUP).protocol == "cooperative-sticky"
        # Incremental: the first member only ever gave partitions up, it never lost all of them.
        assert all(a.assignment() <= seen for seen in kept_seen if seen)
        assert all(seen for seen in kept_seen)
        b.close()
        wait_until(lambda: (a.poll() == [] and a.assignment() == set(range(PARTITIONS))), timeout=60,
                   what="the stayer taking back every partition")
        first = orders(1)
        _pump_until({"a": a}, reads, lambda: len(reads["a"]) == 30, "round 1 read")
        assert _by_partition(reads["a"]) == first
    finally:
        a.close()


def test_coordinator_moves_when_its_broker_stops_and_offsets_survive(cluster: EmbeddedCluster, orders: Any) -> None:
    reads: dict[str, list[Read]] = {}
    a = ConfluentMember(cluster.bootstrap_servers, GROUP)
    try:
        first = orders(1)
        _pump_until({"a": a}, reads, lambda: len(reads["a"]) == 30, "round 1 read")
        assert _by_partition(reads["a"]) == first
        old = cluster.group_coordinator(GROUP)
        cluster.stop_broker(old)
        new = cluster.group_coordinator(GROUP)
        assert new not in (old, -1)
        assert cluster.group_info(GROUP).offsets == {(TOPIC, p): PER_PARTITION for p in range(PARTITIONS)}
        reads["a"].clear()
        second = orders(2)
        _pump_until({"a": a}, reads, lambda: len(reads["a"]) == 30, "round 2 read after the move")
        assert _by_partition(reads["a"]) == second
        cluster.start_broker(old)
        assert cluster.group_coordinator(GROUP) == new  # leadership stays where it moved
    finally:
        a.close()
    assert cluster.group_info(GROUP).offsets == {(TOPIC, p): 2 * PER_PARTITION for p in range(PARTITIONS)}
    # A new member finds the new coordinator and resumes at the committed offsets.
    third = orders(3)
    restarted = ConfluentMember(cluster.bootstrap_servers, GROUP)
    try:
        reads = {}
        _pump_until({"r": restarted}, reads, lambda: len(reads["r"]) >= 30, "round 3 read")
        assert _by_partition(reads["r"]) == third
    finally:
        restarted.close()
