"""The sender's state machine, driven with a manual clock and a scripted fake network.

The fake implements ``kprod.producer.sender.Network``: it records every request the
sender makes and the test answers them with real kio response entities; handlers run
in the next ``poll()``, as in the real network client. No sockets, no sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from kprod.errors import (
    DuplicateSequenceNumberError,
    InvalidProducerEpochError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    ProducerFencedError,
    UnsupportedVersionError,
)
from kprod.producer.accumulator import RecordAccumulator
from kprod.producer.idempotence import MAX_SEQUENCE, IdempotenceState
from kprod.producer.partition_state import PartitionState
from kprod.producer.memory import MemoryPool
from kprod.producer.metadata import ClusterMetadata
from kprod.producer.sender import Sender
from kprod.producer.sticky import StickyPartitioner
from kprod.protocol.framing import decode_request, encode_request
from kprod.protocol.messages import ApiKey, ErrorCode, response_module
from kprod.protocol.produce import ProduceRequest
from kprod.protocol.records import RecordBatch, read_batches

T = "t"
PID = 4000
NONE = 0
MESSAGE_TOO_LARGE = 10
NOT_LEADER_OR_FOLLOWER = 6
NOT_ENOUGH_REPLICAS = 19
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59
PRODUCER_FENCED = 90
COORDINATOR_NOT_AVAILABLE = 15


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(eq=False)
class Sent:
    node: int
    request: Any
    handler: Callable[[Any, BaseException | None], None]
    expect_response: bool

    @property
    def api_key(self) -> int:
        return int(type(self.request).__api_key__)

    def batches(self) -> list[tuple[str, int, RecordBatch]]:
        """(topic, partition, batch) of a Produce request, in request order."""
        return [
            (topic.name, int(p.index), batch)
            for topic in self.request.topic_data
            for p in topic.partition_data
            for batch in read_batches(p.records)
        ]


class FakeNetwork:
    """The Network protocol, scripted: nodes are up unless listed in ``down``."""

    def __init__(self) -> None:
        self.nodes: dict[int, tuple[str, int]] = {}
        self.down: set[int] = set()
        self.versions: dict[int, int | None] = {ApiKey.PRODUCE: 11, ApiKey.METADATA: 12, ApiKey.INIT_PRODUCER_ID: 4}
        self.sent: list[Sent] = []
        self.pending: list[Sent] = []
        self._completed: list[tuple[Callable[[Any, BaseException | None], None], Any, BaseException | None]] = []
        self.polls: list[float] = []
        self.closed = False

    # -- the Network protocol --
    def set_node(self, node_id: int, host: str, port: int) -> None:
        self.nodes[node_id] = (host, port)

    def remove_node(self, node_id: int) -> None:
        self.nodes.pop(node_id, None)

    def ready(self, node_id: int, now: float) -> bool:
        return self.is_ready(node_id)

    def is_ready(self, node_id: int) -> bool:
        return node_id in self.nodes and node_id not in self.down

    def in_flight(self, node_id: int) -> int:
        return sum(1 for s in self.pending if s.node == node_id)

    def version(self, node_id: int, api_key: int) -> int | None:
        return self.versions.get(api_key) if node_id in self.nodes else None

    def least_loaded_node(self, now: float) -> int | None:
        up = [n for n in self.nodes if n not in self.down]
        return min(up, key=self.in_flight) if up else None

    def connection_delay(self, node_id: int, now: float) -> float:
        return 0.0 if self.is_ready(node_id) else 50.0

    def send(self, node_id: int, request: Any, handler: Any, *, expect_response: bool = True) -> None:
        assert self.is_ready(node_id), f"sent to node {node_id}, which is not ready"
        if type(request) is ProduceRequest:  # framed by hand: keep what kio reads from its bytes
            request = decode_request(encode_request(request, 0, "test")[4:]).request
        sent = Sent(node_id, request, handler, expect_response)
        self.sent.append(sent)
        if expect_response:
            self.pending.append(sent)
        else:
            self._completed.append((handler, None, None))  # acks=0: done once written

    def poll(self, timeout_ms: float) -> None:
        self.polls.append(timeout_ms)
        completed, self._completed = self._completed, []
        for handler, response, error in completed:
            handler(response, error)

    def wakeup(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    # -- the script --
    def answer(self, sent: Sent, response: Any = None, error: BaseException | None = None) -> None:
        """Deliver a response (or error) to ``sent``: its handler runs in the next poll."""
        self.pending.remove(sent)
        self._completed.append((sent.handler, response, error))

    def waiting(self, api_key: int) -> list[Sent]:
        return [s for s in self.pending if s.api_key == api_key]

    def produces(self) -> list[Sent]:
        return [s for s in self.sent if s.api_key == ApiKey.PRODUCE]


# -- responses, as kio entities ------------------------------------------------------------------


def metadata_response(leaders: dict[str, list[int]], brokers: tuple[int, ...] = (1, 2, 3), epoch: int = 0) -> Any:
    m = response_module(ApiKey.METADATA, 12)
    return m.MetadataResponse(
        throttle_time=timedelta(0),
        brokers=tuple(m.MetadataResponseBroker(node_id=b, host="127.0.0.1", port=9000 + b, rack=None) for b in brokers),
        cluster_id="cluster",
        controller_id=brokers[0],
        topics=tuple(
            m.MetadataResponseTopic(
                error_code=ErrorCode(0), name=topic, topic_id=uuid.uuid4(), is_internal=False,
                partitions=tuple(
                    m.MetadataResponsePartition(
                        error_code=ErrorCode(0), partition_index=p, leader_id=leader, leader_epoch=epoch,
                        replica_nodes=brokers, isr_nodes=brokers, offline_replicas=(),
                    )
                    for p, leader in enumerate(partition_leaders)
                ),
                topic_authorized_operations=-2147483648,
            )
            for topic, partition_leaders in leaders.items()
        ),
    )


def init_pid_response(code: int = NONE, producer_id: int = PID, epoch: int = 0) -> Any:
    m = response_module(ApiKey.INIT_PRODUCER_ID, 4)
    return m.InitProducerIdResponse(
        throttle_time=timedelta(0), error_code=ErrorCode(code), producer_id=producer_id, producer_epoch=epoch
    )


def produce_response(*results: tuple[str, int, int, int], leader: tuple[int, int] | None = None) -> Any:
    """``(topic, partition, error code, base offset)`` per partition; ``leader`` a (id, epoch) hint."""
    m = response_module(ApiKey.PRODUCE, 11)
    hint = m.LeaderIdAndEpoch(leader_id=leader[0], leader_epoch=leader[1]) if leader else m.LeaderIdAndEpoch()
    by_topic: dict[str, list[Any]] = {}
    for topic, partition, code, base_offset in results:
        by_topic.setdefault(topic, []).append(
            m.PartitionProduceResponse(
                index=partition, error_code=ErrorCode(code), base_offset=base_offset, log_append_time=None,
                log_start_offset=0, record_errors=(), error_message=None, current_leader=hint,
            )
        )
    endpoints = (m.NodeEndpoint(node_id=leader[0], host="127.0.0.1", port=9000 + leader[0], rack=None),) if leader else ()
    return m.ProduceResponse(
        responses=tuple(m.TopicProduceResponse(name=t, partition_responses=tuple(ps)) for t, ps in by_topic.items()),
        throttle_time=timedelta(0),
        node_endpoints=endpoints,
    )


# -- the harness -------------------------------------------------------------------------------------


class Harness:
    """A sender, its accumulator and a fake network on a manual clock."""

    def __init__(
        self,
        *,
        idempotent: bool = True,
        acks: int = -1,
        retries: int = 2**31 - 1,
        leaders: list[int] | None = None,
        delivery_timeout_ms: int = 120_000,
        request_timeout_ms: int = 30_000,
        max_in_flight: int = 5,
        batch_size: int = 16384,
        buffer_memory: int = 1 << 20,
        retry_backoff_ms: int = 100,
        retry_backoff_max_ms: int = 1000,
        metadata_max_age_ms: int = 300_000,
    ) -> None:
        self.leaders = leaders or [1, 2]
        self.clock = Clock()
        self.net = FakeNetwork()
        self.metadata = ClusterMetadata(metadata_max_age_ms=metadata_max_age_ms, metadata_max_idle_ms=300_000)
        self.acc = RecordAccumulator(
            batch_size=batch_size, linger_ms=0, codec=0, compression_level=None, pool=MemoryPool(buffer_memory),
            sticky=StickyPartitioner(batch_size, adaptive=False), clock_ms=self.clock,
            delivery_timeout_ms=delivery_timeout_ms, retry_backoff_ms=retry_backoff_ms,
            retry_backoff_max_ms=retry_backoff_max_ms, wakeup=lambda: None,
        )
        self.idem = IdempotenceState() if idempotent else None
        self.sender = Sender(
            client=self.net, metadata=self.metadata, accumulator=self.acc, idempotence=self.idem,
            clock_ms=self.clock, bootstrap=[("127.0.0.1", 9092)], acks=acks, retries=retries,
            request_timeout_ms=request_timeout_ms, delivery_timeout_ms=delivery_timeout_ms,
            max_request_size=1 << 20, max_in_flight=max_in_flight, retry_backoff_ms=retry_backoff_ms,
            retry_backoff_max_ms=retry_backoff_max_ms,
        )
        self.metadata.add_topic(T, 0.0)
        self.callbacks: list[tuple[str, Any, Any]] = []

    def step(self, ms: float = 0.0) -> None:
        """Advance the clock by ``ms`` and run one sender turn (plan, then poll)."""
        self.clock.now += ms
        self.sender.run_once(self.clock.now)

    def start(self, *, producer_id: int = PID, established: bool = False) -> None:
        """Bootstrap: answer InitProducerId (if idempotent) and Metadata.

        ``established``: the brokers already hold this producer's state for every partition
        (as once a batch there was acknowledged), so batches of a partition may be pipelined
        from the first one; otherwise each partition takes one batch at a time until its
        first acknowledgement.
        """
        self.step()
        if self.idem is not None:
            (init,) = self.net.waiting(ApiKey.INIT_PRODUCER_ID)
            self.net.answer(init, init_pid_response(producer_id=producer_id))
        (md,) = self.net.waiting(ApiKey.METADATA)
        assert [t.name for t in md.request.topics] == [T]
        self.net.answer(md, metadata_response({T: self.leaders}))
        self.step()
        assert self.metadata.leaders[T] == tuple(self.leaders)
        assert self.idem is None or (self.idem.producer_id, self.idem.producer_epoch) == (producer_id, 0)
        if established and self.idem is not None:
            for partition in range(len(self.leaders)):
                self.state(partition).broker_has_state = True

    def state(self, partition: int) -> PartitionState:
        """The accumulator's state object of partition ``partition`` of ``T``."""
        with self.acc.lock:
            return self.acc._state(T, partition, len(self.leaders))

    def send(self, partition: int, *values: bytes, tag: str | None = None) -> list[Any]:
        futures = []
        for value in values:
            callback: Callable[[Any, Any], None] | None = None
            if tag is not None:
                def record(md: Any, exc: Any, value: bytes = value) -> None:
                    self.callbacks.append((value.decode(), md, exc))
                callback = record
            futures.append(
                self.acc.append(T, partition, 1_700_000_000_000, None, value, None, callback, len(self.leaders), None, 1000)
            )
        return futures

    def new_produces(self, before: int) -> list[Sent]:
        return self.net.produces()[before:]

    def produce_one(self, partition: int, *values: bytes) -> tuple[list[Any], Sent]:
        """Append ``values`` and step once: exactly one Produce request with their batch."""
        before = len(self.net.produces())
        futures = self.send(partition, *values)
        self.step()
        (sent,) = self.new_produces(before)
        return futures, sent


def stamp(sent: Sent) -> list[tuple[int, int, int, int, int]]:
    """(partition, producer id, epoch, base sequence, record count) of each batch of a Produce."""
    return [(p, b.producer_id, b.producer_epoch, b.base_sequence, b.record_count) for _, p, b in sent.batches()]


def values(sent: Sent) -> list[bytes | None]:
    return [r.value for _, _, b in sent.batches() for r in b.records()]


def answer_produce(h: Harness, sent: Sent, code: int = NONE, base_offset: int = 0, **kw: Any) -> None:
    (topic, partition, _), = sent.batches()
    h.net.answer(sent, produce_response((topic, partition, code, base_offset), **kw))


# -- basics -------------------------------------------------------------------------------------------


def test_batches_go_to_their_leaders_and_complete_with_offsets_in_send_order() -> None:
    h = Harness()
    h.start()
    f0 = h.send(0, b"a", b"b", b"c", tag="p0")
    f1 = h.send(1, b"x", b"y", tag="p1")
    h.step()
    to_1, to_2 = sorted(h.net.produces(), key=lambda s: s.node)
    assert (to_1.node, to_2.node) == (1, 2)
    assert to_1.request.acks == -1 and to_1.request.timeout == timedelta(milliseconds=30_000)
    assert values(to_1) == [b"a", b"b", b"c"] and values(to_2) == [b"x", b"y"]
    assert stamp(to_1) == [(0, PID, 0, 0, 3)] and stamp(to_2) == [(1, PID, 0, 0, 2)]
    assert not any(f.done() for f in f0 + f1)
    answer_produce(h, to_1, base_offset=100)
    answer_produce(h, to_2, base_offset=7)
    h.step()
    assert [(f.result(0).partition, f.result(0).offset) for f in f0 + f1] == [(0, 100), (0, 101), (0, 102), (1, 7), (1, 8)]
    assert [(v, md.offset, exc) for v, md, exc in h.callbacks] == [
        ("a", 100, None), ("b", 101, None), ("c", 102, None), ("x", 7, None), ("y", 8, None)
    ]
    assert h.acc.pool.available == h.acc.pool.total and not h.acc.incomplete and not h.sender.in_flight


def test_producer_id_is_stamped_at_drain_time_not_at_append() -> None:
    h = Harness()
    h.step()  # InitProducerId and Metadata requests go out
    futures = h.send(0, b"early")
    (init,) = h.net.waiting(ApiKey.INIT_PRODUCER_ID)
    (md,) = h.net.waiting(ApiKey.METADATA)
    h.net.answer(md, metadata_response({T: [1, 2]}))
    h.step()
    h.step()
    assert h.net.produces() == [], "a batch left before the producer id was known"
    (batch,) = h.acc.queued_batches()
    assert (batch.producer_id, batch.base_sequence) == (-1, -1)
    h.net.answer(init, init_pid_response(producer_id=77, epoch=3))
    h.step()
    h.step()
    (sent,) = h.net.produces()
    assert stamp(sent) == [(0, 77, 3, 0, 1)]
    answer_produce(h, sent, base_offset=0)
    h.step()
    assert futures[0].result(0).offset == 0


def test_init_producer_id_is_retried_on_a_retriable_error() -> None:
    h = Harness()
    h.step()
    (init,) = h.net.waiting(ApiKey.INIT_PRODUCER_ID)
    h.net.answer(init, init_pid_response(code=COORDINATOR_NOT_AVAILABLE, producer_id=-1, epoch=-1))
    h.step()
    assert h.net.waiting(ApiKey.INIT_PRODUCER_ID) == []
    h.step(99)
    assert h.net.waiting(ApiKey.INIT_PRODUCER_ID) == []
    h.step(1)  # retry.backoff.ms later
    (again,) = h.net.waiting(ApiKey.INIT_PRODUCER_ID)
    h.net.answer(again, init_pid_response(producer_id=5))
    h.step()
    assert h.idem is not None and h.idem.producer_id == 5


def test_a_broker_without_init_producer_id_fails_records_clearly() -> None:
    h = Harness()
    h.net.versions[ApiKey.INIT_PRODUCER_ID] = None
    h.step()
    (md,) = h.net.waiting(ApiKey.METADATA)
    h.net.answer(md, metadata_response({T: [1, 2]}))
    h.step()
    (future,) = h.send(0, b"v")
    h.step()
    error = future.exception(0)
    assert isinstance(error, UnsupportedVersionError) and "enable.idempotence=false" in str(error)
    assert h.net.produces() == []


def test_sequences_are_per_partition_and_wrap_at_int32_max() -> None:
    h = Harness()
    h.start(established=True)
    _, a = h.produce_one(0, b"1", b"2", b"3")
    _, b = h.produce_one(0, b"4", b"5")
    _, c = h.produce_one(1, b"6")
    assert stamp(a) == [(0, PID, 0, 0, 3)]
    assert stamp(b) == [(0, PID, 0, 3, 2)]
    assert stamp(c) == [(1, PID, 0, 0, 1)]
    assert h.idem is not None
    h.state(1).next_sequence = MAX_SEQUENCE - 1
    _, d = h.produce_one(1, b"7", b"8", b"9")
    _, e = h.produce_one(1, b"10")
    assert stamp(d) == [(1, PID, 0, MAX_SEQUENCE - 1, 3)]
    assert stamp(e) == [(1, PID, 0, 1, 1)]  # MAX-1, MAX, 0 went to d


def test_at_most_max_in_flight_requests_per_connection() -> None:
    h = Harness(max_in_flight=2)
    h.start(established=True)
    h.produce_one(0, b"1")
    h.produce_one(0, b"2")
    h.send(0, b"3")
    h.step()
    h.step()
    assert len(h.net.produces()) == 2
    answer_produce(h, h.net.produces()[0], base_offset=0)
    h.step()
    h.step()
    assert len(h.net.produces()) == 3 and values(h.net.produces()[2]) == [b"3"]


def test_acks_zero_completes_without_a_response_with_offset_minus_one() -> None:
    h = Harness(idempotent=False, acks=0)
    h.start()
    futures, sent = h.produce_one(0, b"a", b"b")
    assert sent.request.acks == 0 and not sent.expect_response
    assert stamp(sent) == [(0, -1, -1, -1, 2)]
    h.step()
    assert [f.result(0).offset for f in futures] == [-1, -1]


# -- retries ---------------------------------------------------------------------------------------


def test_a_retriable_error_is_retried_after_retry_backoff() -> None:
    h = Harness()
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    answer_produce(h, sent, NOT_ENOUGH_REPLICAS)
    h.step()
    assert not future.done()
    h.step(99)
    assert h.net.produces() == [sent]
    h.step(1)
    retry = h.net.produces()[-1]
    assert retry is not sent and stamp(retry) == stamp(sent)  # same producer id, epoch and sequence
    answer_produce(h, retry, base_offset=42)
    h.step()
    assert future.result(0).offset == 42


def test_retries_zero_fails_on_the_first_retriable_error() -> None:
    h = Harness(idempotent=False, retries=0)
    h.start()
    (future,), sent = h.produce_one(1, b"v")
    answer_produce(h, sent, NOT_ENOUGH_REPLICAS)
    h.step()
    error = future.exception(0)
    assert isinstance(error, NotEnoughReplicasError) and f"{T}-1" in str(error)
    h.step(10_000)
    assert h.net.produces() == [sent]
    assert h.acc.pool.available == h.acc.pool.total


def test_not_leader_uses_the_leader_hint_and_refreshes_metadata() -> None:
    h = Harness()
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    assert sent.node == 1
    answer_produce(h, sent, NOT_LEADER_OR_FOLLOWER, leader=(3, 1))
    h.step()
    assert h.metadata.leaders[T][0] == 3  # the hint applies at once
    assert h.net.waiting(ApiKey.METADATA) or h.metadata.update_requested
    h.step(100)
    (md,) = h.net.waiting(ApiKey.METADATA)
    retry = h.net.produces()[-1]
    assert retry is not sent and retry.node == 3
    h.net.answer(md, metadata_response({T: [3, 2]}, epoch=1))
    answer_produce(h, retry, base_offset=5)
    h.step()
    assert future.result(0) == future.result(0)._replace(partition=0, offset=5)


def test_a_disconnect_fails_the_request_which_is_retried_after_a_metadata_refresh() -> None:
    h = Harness()
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    h.net.answer(sent, error=KafkaConnectionError("node 1 disconnected"))
    h.step()
    assert h.metadata.update_requested or h.net.waiting(ApiKey.METADATA)
    h.step(100)
    retry = h.net.produces()[-1]
    assert retry is not sent and stamp(retry) == stamp(sent)
    answer_produce(h, retry, base_offset=9)
    h.step()
    assert future.result(0).offset == 9


def test_metadata_is_refreshed_after_metadata_max_age_ms() -> None:
    h = Harness(metadata_max_age_ms=10_000)
    h.start()
    h.step(9_999)
    assert h.net.waiting(ApiKey.METADATA) == []
    h.step(1)
    (md,) = h.net.waiting(ApiKey.METADATA)
    assert [t.name for t in md.request.topics] == [T]
    h.net.answer(md, metadata_response({T: [2, 1]}, epoch=1))
    h.step()
    assert h.metadata.leaders[T] == (2, 1)
    _, sent = h.produce_one(0, b"v")
    assert sent.node == 2


@pytest.mark.parametrize("code", [3, 5])  # UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE
def test_stale_metadata_errors_refresh_metadata_and_retry(code: int) -> None:
    h = Harness()
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    answer_produce(h, sent, code)
    h.step()
    assert not future.done() and h.metadata.update_requested
    h.step(100)  # the refresh and the first retry (to the leader still known) go out together
    (md,) = h.net.waiting(ApiKey.METADATA)
    first_retry = h.net.produces()[-1]
    assert first_retry is not sent and first_retry.node == 1
    h.net.answer(md, metadata_response({T: [3, 2]}, epoch=1))
    answer_produce(h, first_retry, code)
    h.step()
    h.step(300)
    retry = h.net.produces()[-1]
    assert retry.node == 3 and stamp(retry) == stamp(sent)
    answer_produce(h, retry, base_offset=1)
    h.step()
    assert future.result(0).offset == 1


def test_delivery_timeout_expires_a_retrying_batch_with_its_last_error_as_cause() -> None:
    h = Harness(delivery_timeout_ms=5000, request_timeout_ms=1000, retry_backoff_max_ms=200)
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    while True:
        answer_produce(h, sent, NOT_ENOUGH_REPLICAS)
        h.step()
        while len(h.net.produces()) and h.net.produces()[-1] is sent and h.clock.now < 5000 and not future.done():
            h.step(10)
        if future.done():
            break
        sent = h.net.produces()[-1]
    error = future.exception(0)
    assert isinstance(error, KafkaTimeoutError) and isinstance(error.__cause__, NotEnoughReplicasError)
    assert f"{T}-0" in str(error) and "delivery.timeout.ms (5000 ms)" in str(error)
    assert 5000 <= h.clock.now <= 5010
    assert h.acc.pool.available == h.acc.pool.total


def test_an_in_flight_batch_expires_and_its_late_response_changes_nothing() -> None:
    h = Harness(delivery_timeout_ms=5000)
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    h.step(4999)
    assert not future.done()
    h.step(1)
    error = future.exception(0)
    assert isinstance(error, KafkaTimeoutError) and f"{T}-0" in str(error)
    answer_produce(h, sent, base_offset=3)  # the broker answers after all
    h.step()
    assert future.exception(0) is error
    assert not h.sender.in_flight


# -- idempotence: order, duplicates, epochs ---------------------------------------------------------


def test_retried_batches_are_resent_in_sequence_order_one_at_a_time_and_never_overtaken() -> None:
    h = Harness()
    h.start(established=True)
    fa, a = h.produce_one(0, b"a1", b"a2")
    fb, b = h.produce_one(0, b"b1", b"b2")
    fc, c = h.produce_one(0, b"c1", b"c2")
    assert [stamp(s)[0][3] for s in (a, b, c)] == [0, 2, 4]
    for sent in (a, b, c):
        answer_produce(h, sent, NOT_ENOUGH_REPLICAS)
    h.step()
    fd = h.send(0, b"d1")  # a new record behind the retries
    before = len(h.net.produces())
    h.step(100)
    h.step()
    h.step()
    resent = h.new_produces(before)
    assert [values(s) for s in resent] == [[b"a1", b"a2"]], "only the oldest retry may be in flight"
    assert stamp(resent[0]) == stamp(a)
    answer_produce(h, resent[0], base_offset=0)
    h.step()
    h.step()
    h.step()
    resent = h.new_produces(before)
    assert [values(s) for s in resent[1:]] == [[b"b1", b"b2"]]
    answer_produce(h, resent[1], base_offset=2)
    h.step()
    h.step()
    resent = h.new_produces(before)
    assert [values(s) for s in resent[2:]] == [[b"c1", b"c2"]]
    answer_produce(h, resent[2], base_offset=4)
    h.step()
    h.step()
    resent = h.new_produces(before)
    assert [values(s) for s in resent[3:]] == [[b"d1"]] and stamp(resent[3]) == [(0, PID, 0, 6, 1)]
    answer_produce(h, resent[3], base_offset=6)
    h.step()
    assert [f.result(0).offset for f in fa + fb + fc + fd] == [0, 1, 2, 3, 4, 5, 6]
    assert h.idem is not None and not h.idem.bump_needed and h.idem.producer_epoch == 0


def test_duplicate_sequence_number_counts_as_success() -> None:
    h = Harness()
    h.start()
    futures, sent = h.produce_one(0, b"a", b"b")
    answer_produce(h, sent, DUPLICATE_SEQUENCE_NUMBER, base_offset=-1)
    h.step()
    assert [f.exception(0) for f in futures] == [None, None]
    assert not isinstance(futures[0].exception(0), DuplicateSequenceNumberError)
    assert h.idem is not None and not h.idem.bump_needed


def test_out_of_order_for_the_first_in_flight_batch_bumps_the_epoch_and_resets_sequences() -> None:
    h = Harness()
    h.start(established=True)
    fa, a = h.produce_one(0, b"a")
    fb, b = h.produce_one(0, b"b")
    _, other = h.produce_one(1, b"other")
    answer_produce(h, a, OUT_OF_ORDER_SEQUENCE_NUMBER)
    h.step()
    assert h.idem is not None and h.idem.bump_needed
    assert h.idem.producer_epoch == 0, "no bump while batches are still in flight"
    answer_produce(h, b, OUT_OF_ORDER_SEQUENCE_NUMBER)
    answer_produce(h, other, base_offset=0)
    before = len(h.net.produces())
    h.step()
    h.step(100)
    h.step()
    h.step()
    assert h.idem.producer_epoch == 1 and not h.idem.bump_needed
    resent = h.new_produces(before)
    assert [(values(s), stamp(s)) for s in resent[:1]] == [([b"a"], [(0, PID, 1, 0, 1)])]
    answer_produce(h, resent[0], base_offset=0)
    h.step()
    h.step()
    resent = h.new_produces(before)
    assert [(values(s), stamp(s)) for s in resent[1:]] == [([b"b"], [(0, PID, 1, 1, 1)])]
    answer_produce(h, resent[1], base_offset=1)
    h.step()
    assert [f.result(0).offset for f in fa + fb] == [0, 1]
    # Other partitions restart at 0 in the new epoch too.
    _, later = h.produce_one(1, b"later")
    assert stamp(later) == [(1, PID, 1, 0, 1)]


def test_out_of_order_for_a_later_batch_is_retried_without_a_bump() -> None:
    h = Harness()
    h.start(established=True)
    fa, a = h.produce_one(0, b"a")
    fb, b = h.produce_one(0, b"b")
    answer_produce(h, b, OUT_OF_ORDER_SEQUENCE_NUMBER)  # b's answer overtakes a's
    h.step()
    assert h.idem is not None and not h.idem.bump_needed
    answer_produce(h, a, base_offset=0)
    h.step(100)
    h.step()
    retry = h.net.produces()[-1]
    assert values(retry) == [b"b"] and stamp(retry) == stamp(b)
    answer_produce(h, retry, base_offset=1)
    h.step()
    assert [f.result(0).offset for f in fa + fb] == [0, 1]
    assert h.idem.producer_epoch == 0


def test_unknown_producer_id_bumps_the_epoch_and_the_batch_is_delivered() -> None:
    h = Harness()
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    answer_produce(h, sent, UNKNOWN_PRODUCER_ID)
    h.step()
    h.step(100)
    h.step()
    retry = h.net.produces()[-1]
    assert h.idem is not None and h.idem.producer_epoch == 1
    assert stamp(retry) == [(0, PID, 1, 0, 1)]
    answer_produce(h, retry, base_offset=0)
    h.step()
    assert future.result(0).offset == 0


@pytest.mark.parametrize(("code", "error_type"), [(INVALID_PRODUCER_EPOCH, InvalidProducerEpochError), (PRODUCER_FENCED, ProducerFencedError)])
def test_fenced_or_stale_epoch_is_fatal(code: int, error_type: type[BaseException]) -> None:
    h = Harness()
    h.start()
    (future,), sent = h.produce_one(0, b"v")
    h.net.down.add(2)  # so partition 1's batch stays queued
    queued = h.send(1, b"queued")
    answer_produce(h, sent, code)
    h.step()
    assert isinstance(future.exception(0), error_type)
    assert f"{T}-0" in str(future.exception(0))
    h.step()
    assert all(isinstance(f.exception(0), error_type) for f in queued)
    (later,) = h.send(0, b"later")
    h.step()
    assert isinstance(later.exception(0), error_type)
    assert h.net.produces() == [sent]  # nothing was sent after the fatal answer


def test_a_failed_batch_with_a_sequence_leads_to_a_bump_and_later_sends_work() -> None:
    h = Harness(retries=0, idempotent=True)
    h.start()
    (failed,), sent = h.produce_one(0, b"lost")
    answer_produce(h, sent, NOT_ENOUGH_REPLICAS)
    h.step()
    assert isinstance(failed.exception(0), NotEnoughReplicasError)
    (ok,), later = h.produce_one(0, b"next")
    assert stamp(later) == [(0, PID, 1, 0, 1)], "the gap left by the failed batch needs a new epoch"
    answer_produce(h, later, base_offset=0)
    h.step()
    assert ok.result(0).offset == 0


# -- MESSAGE_TOO_LARGE ------------------------------------------------------------------------------


def test_message_too_large_splits_the_batch_and_keeps_record_order() -> None:
    h = Harness()
    h.start(established=True)
    futures = h.send(0, b"r0", b"r1", b"r2", b"r3", b"r4", tag="split")
    h.step()
    (sent,) = h.net.produces()
    answer_produce(h, sent, MESSAGE_TOO_LARGE)
    h.step()
    h.step()
    h.step()
    parts = h.net.produces()[1:]
    assert [values(s) for s in parts] == [[b"r0", b"r1", b"r2"], [b"r3", b"r4"]]
    assert [stamp(s) for s in parts] == [[(0, PID, 1, 0, 3)], [(0, PID, 1, 3, 2)]]  # a new epoch numbers them
    answer_produce(h, parts[0], base_offset=10)
    answer_produce(h, parts[1], base_offset=13)
    h.step()
    assert [f.result(0).offset for f in futures] == [10, 11, 12, 13, 14]
    assert [(v, md.offset) for v, md, _ in h.callbacks] == [("r0", 10), ("r1", 11), ("r2", 12), ("r3", 13), ("r4", 14)]
    assert h.acc.pool.available == h.acc.pool.total and not h.acc.incomplete


def test_message_too_large_for_a_single_record_fails_it() -> None:
    h = Harness()
    h.start()
    (future,), sent = h.produce_one(0, b"huge")
    answer_produce(h, sent, MESSAGE_TOO_LARGE)
    h.step()
    error = future.exception(0)
    assert isinstance(error, MessageTooLargeError) and f"{T}-0" in str(error)
