"""What the cluster's controller knows: brokers, topics, replicas, leaders, ISRs.

This module holds no sockets and no threads: the event loop calls into it,
and so do the fault-injection methods (through the loop), which makes the
election rules easy to read in one place:

* A partition's leader is always an in-sync replica. When the leader's broker
  stops, the next in-sync replica in assignment order that is running takes
  over and the leader epoch goes up. With no such replica the partition is
  offline (leader -1) until the last in-sync replica returns: no unclean
  election, as in Kafka's default.
* A stopped broker leaves every ISR it was in, except that the ISR never
  becomes empty (Kafka keeps the last member so it knows who may lead again).
* Replication is synchronous and in memory: every running replica that is not
  held back by ``shrink_isr`` catches up at once and is in the ISR. A replica
  removed by ``shrink_isr`` stays out (its log end offset frozen) until
  ``restore_isr`` or a restart of its broker.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kprod.cluster.config import BrokerConfig, TopicConfig, parse_topic_config
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.idempotence import ProducerStates
from kprod.cluster.info import BrokerInfo
from kprod.cluster.log import PartitionLog

__all__ = [
    "BrokerInfo",
    "ClusterState",
    "Partition",
    "Topic",
    "TopicRequestError",
]

_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
_MAX_TOPIC_LENGTH = 249
_FIRST_PRODUCER_ID = 1000

INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_CONFIG = 40
INVALID_REQUEST = 42
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1


class TopicRequestError(ClusterError):
    """A topic operation refused with a Kafka error code (CreateTopics, DeleteTopics)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.args[0]))


class _Broker:
    __slots__ = ("node_id", "host", "port", "running")

    def __init__(self, node_id: int, host: str, port: int) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.running = False


class Partition:
    """One partition: assignment, leadership, ISR, the shared log and producer state."""

    __slots__ = (
        "topic",
        "index",
        "replicas",
        "isr",
        "leader",
        "leader_epoch",
        "stalled",
        "frozen_end",
        "log",
        "producers",
        "waiters",
        "epoch_starts",
    )

    def __init__(self, topic: Topic, index: int, replicas: tuple[int, ...], config: TopicConfig) -> None:
        self.topic = topic
        self.index = index
        self.replicas = replicas
        self.isr: list[int] = list(replicas)
        self.leader = replicas[0]
        self.leader_epoch = 0
        self.stalled: set[int] = set()  # held out of the ISR by shrink_isr
        self.frozen_end: dict[int, int] = {}  # log end offset of replicas not in sync
        self.log = PartitionLog(config.retention_bytes, config.retention_ms)
        self.producers = ProducerStates()
        self.waiters: set[Any] = set()  # parked fetches to wake on append or change
        # (leader epoch, first offset written under it): answers OffsetForLeaderEpoch
        self.epoch_starts: list[tuple[int, int]] = [(0, 0)]

    @property
    def name(self) -> str:
        return f"{self.topic.name}-{self.index}"

    def set_leader(self, node_id: int) -> None:
        """Hand leadership to ``node_id`` (-1: offline) under a new leader epoch."""
        self.leader = node_id
        self.leader_epoch += 1
        self.epoch_starts.append((self.leader_epoch, self.log.end_offset))

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetForLeaderEpoch: where ``epoch``'s records end.

        The end offset is where the next later epoch started, or the log end
        for the current epoch; (-1, -1) for an epoch newer than the current one.
        """
        if epoch > self.leader_epoch:
            return -1, -1
        found = -1
        for start_epoch, start_offset in self.epoch_starts:
            if start_epoch > epoch:
                return found, start_offset
            found = start_epoch
        return found, self.log.end_offset

    def replica_end_offset(self, node_id: int) -> int:
        return self.frozen_end.get(node_id, self.log.end_offset)


class Topic:
    __slots__ = ("name", "topic_id", "partitions", "config", "overrides", "deleted")

    def __init__(self, name: str, config: TopicConfig, overrides: dict[str, str] | None = None) -> None:
        self.name = name
        self.topic_id = uuid.uuid4()
        self.partitions: list[Partition] = []
        self.config = config
        self.overrides: dict[str, str] = overrides or {}  # keys set on the topic (DescribeConfigs source)
        self.deleted = False


def check_topic_name(name: str) -> None:
    """Raise ``TopicRequestError`` (INVALID_TOPIC_EXCEPTION) for a name Kafka would refuse."""
    if not name or name in (".", "..") or len(name) > _MAX_TOPIC_LENGTH or not _LEGAL_TOPIC.fullmatch(name):
        raise TopicRequestError(
            INVALID_TOPIC_EXCEPTION,
            f"Topic name {name!r} is illegal: use 1 to {_MAX_TOPIC_LENGTH} characters of"
            " a-z, A-Z, 0-9, '.', '_' and '-' (and not '.' or '..').",
        )


class ClusterState:
    """The controller's view of the whole cluster, changed only on the event loop thread."""

    def __init__(self, brokers: Sequence[tuple[int, str, int]], config: BrokerConfig) -> None:
        self.brokers: dict[int, _Broker] = {n: _Broker(n, host, port) for n, host, port in brokers}
        self.config = config
        self.topics: dict[str, Topic] = {}
        self.cluster_id = f"kprod-embedded-{uuid.uuid4().hex[:12]}"
        self._next_producer_id = _FIRST_PRODUCER_ID
        self._topic_count = 0
        # called with the partitions whose leader or ISR changed (fetch waiters wake up)
        self.on_change: Callable[[Iterable[Partition]], None] = lambda partitions: None

    # -- lookups ----------------------------------------------------------------------

    def broker(self, node_id: int) -> _Broker:
        try:
            return self.brokers[node_id]
        except (KeyError, TypeError):
            raise ClusterError(
                f"There is no broker {node_id!r}; the brokers are {sorted(self.brokers)}."
            ) from None

    def broker_infos(self) -> list[BrokerInfo]:
        return [BrokerInfo(b.node_id, b.host, b.port, b.running) for b in self.brokers.values()]

    def running_ids(self) -> list[int]:
        return [n for n, b in self.brokers.items() if b.running]

    def controller_id(self) -> int:
        running = self.running_ids()
        return running[0] if running else -1

    def partition(self, topic: str, index: int) -> Partition:
        """The partition, or ``ClusterError`` naming what exists."""
        found = self.topics.get(topic)
        if found is None:
            raise ClusterError(f"Topic {topic!r} does not exist; topics are {sorted(self.topics)}.")
        if not isinstance(index, int) or not 0 <= index < len(found.partitions):
            raise ClusterError(
                f"Topic {topic!r} has partitions 0..{len(found.partitions) - 1}; there is no partition {index!r}."
            )
        return found.partitions[index]

    def all_partitions(self) -> Iterable[Partition]:
        for topic in self.topics.values():
            yield from topic.partitions

    def allocate_producer_id(self) -> int:
        producer_id = self._next_producer_id
        self._next_producer_id += 1
        return producer_id

    # -- topics -------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = -1,
        replication_factor: int = -1,
        config: Mapping[str, Any] | None = None,
        assignments: Mapping[int, Sequence[int]] | None = None,
        *,
        validate_only: bool = False,
    ) -> Topic:
        """Create a topic as CreateTopics does; -1 means the cluster default.

        Raises ``TopicRequestError`` with the Kafka error code CreateTopics would return.
        """
        check_topic_name(name)
        if name in self.topics:
            raise TopicRequestError(TOPIC_ALREADY_EXISTS, f"Topic {name!r} already exists.")
        try:
            topic_config = parse_topic_config(config, self.config.topic_defaults)
        except ClusterError as exc:
            raise TopicRequestError(INVALID_CONFIG, str(exc)) from None
        if assignments:
            layout = self._check_assignments(name, partitions, replication_factor, assignments)
        else:
            layout = self._assign(name, partitions, replication_factor)
        overrides = {str(k): str(v) for k, v in (config or {}).items() if v is not None}
        topic = Topic(name, topic_config, overrides)
        topic.partitions = [Partition(topic, index, replicas, topic_config) for index, replicas in enumerate(layout)]
        self.settle_new_topic(topic)
        if not validate_only:
            self.topics[name] = topic
            self._topic_count += 1
        return topic

    def topic(self, name: str) -> Topic:
        """The topic, or ``TopicRequestError`` (UNKNOWN_TOPIC_OR_PARTITION)."""
        found = self.topics.get(name)
        if found is None:
            raise TopicRequestError(
                UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name!r} does not exist; topics are {sorted(self.topics)}."
            )
        return found

    def set_topic_config(self, name: str, overrides: Mapping[str, str], *, validate_only: bool = False) -> None:
        """Replace the keys set on a topic (AlterConfigs); the others return to their defaults.

        Raises ``TopicRequestError`` (UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG) and changes nothing then.
        """
        topic = self.topic(name)
        try:
            config = parse_topic_config(overrides, self.config.topic_defaults)
        except ClusterError as exc:
            raise TopicRequestError(INVALID_CONFIG, str(exc)) from None
        if validate_only:
            return
        topic.config = config
        topic.overrides = dict(overrides)
        for partition in topic.partitions:
            partition.log.retention_bytes = config.retention_bytes
            partition.log.retention_ms = config.retention_ms

    def create_partitions(
        self, name: str, count: int, assignments: Sequence[Sequence[int]] | None = None, *, validate_only: bool = False
    ) -> Topic:
        """Grow a topic to ``count`` partitions (CreatePartitions); new ones get ``assignments`` or round robin.

        Raises ``TopicRequestError`` (INVALID_PARTITIONS, INVALID_REPLICA_ASSIGNMENT, ...) and changes nothing then.
        """
        topic = self.topic(name)
        current = len(topic.partitions)
        if not isinstance(count, int) or count <= current:
            raise TopicRequestError(
                INVALID_PARTITIONS, f"Topic {name!r} has {current} partitions; the new count must be larger, got {count}."
            )
        factor = len(topic.partitions[0].replicas)
        if assignments is not None:
            if len(assignments) != count - current:
                raise TopicRequestError(
                    INVALID_REPLICA_ASSIGNMENT,
                    f"Topic {name!r}: {len(assignments)} assignments for {count - current} new partitions.",
                )
            layout = self._check_assignments(name, -1, -1, dict(enumerate(assignments)))
            if any(len(replicas) != factor for replicas in layout):
                raise TopicRequestError(
                    INVALID_REPLICA_ASSIGNMENT, f"Topic {name!r}: new partitions need {factor} replicas like the others."
                )
        else:
            layout = self._assign(name, count, factor)[current:]
        if validate_only:
            return topic
        new = [Partition(topic, current + i, replicas, topic.config) for i, replicas in enumerate(layout)]
        grown = Topic(name, topic.config)
        grown.partitions = new
        self.settle_new_topic(grown)
        topic.partitions.extend(new)
        return topic

    def delete_records(self, partition: Partition, offset: int) -> int:
        """DeleteRecords on one partition: ``offset`` (-1: the high watermark) becomes the log start.

        Returns the new low watermark; ``TopicRequestError`` (OFFSET_OUT_OF_RANGE) past the end.
        """
        log = partition.log
        if offset == -1:
            offset = log.end_offset
        if not 0 <= offset <= log.end_offset:
            raise TopicRequestError(
                OFFSET_OUT_OF_RANGE, f"{partition.name}: offset {offset} is outside 0..{log.end_offset} (-1: the end)."
            )
        log.delete_before(offset)
        return log.log_start_offset

    def compact(self, name: str) -> int:
        """Run the log cleaner on a ``cleanup.policy=compact`` topic: records removed."""
        topic = self.topics.get(name)
        if topic is None:
            raise ClusterError(f"Topic {name!r} does not exist; topics are {sorted(self.topics)}.")
        if not topic.config.compact:
            raise ClusterError(
                f"Topic {name!r} has cleanup.policy={topic.config.cleanup_policy}; compaction needs"
                " cleanup.policy=compact (set it at creation or with IncrementalAlterConfigs)."
            )
        return sum(p.log.compact() for p in topic.partitions)

    def _assign(self, name: str, partitions: int, replication_factor: int) -> list[tuple[int, ...]]:
        if partitions == -1:
            partitions = self.config.num_partitions
        if replication_factor == -1:
            replication_factor = self.config.default_replication_factor
        if partitions < 1:
            raise TopicRequestError(INVALID_PARTITIONS, f"Topic {name!r}: the number of partitions must be at least 1, got {partitions}.")
        running = self.running_ids()
        if not 1 <= replication_factor <= len(running):
            raise TopicRequestError(
                INVALID_REPLICATION_FACTOR,
                f"Topic {name!r}: replication factor {replication_factor} must be between 1 and the"
                f" {len(running)} running brokers.",
            )
        # Round robin from a start that moves with each topic, so leaders spread out.
        start = self._topic_count
        count = len(running)
        return [
            tuple(running[(start + p + r) % count] for r in range(replication_factor)) for p in range(partitions)
        ]

    def _check_assignments(
        self, name: str, partitions: int, replication_factor: int, assignments: Mapping[int, Sequence[int]]
    ) -> list[tuple[int, ...]]:
        if partitions != -1 or replication_factor != -1:
            raise TopicRequestError(
                INVALID_REQUEST,
                f"Topic {name!r}: give either replica assignments or partitions and replication factor, not both.",
            )
        if sorted(assignments) != list(range(len(assignments))):
            raise TopicRequestError(
                INVALID_REPLICA_ASSIGNMENT,
                f"Topic {name!r}: assignments must cover partitions 0..n-1, got {sorted(assignments)}.",
            )
        layout: list[tuple[int, ...]] = []
        sizes = set()
        for index in range(len(assignments)):
            replicas = tuple(assignments[index])
            sizes.add(len(replicas))
            if not replicas or len(set(replicas)) != len(replicas) or any(r not in self.brokers for r in replicas):
                raise TopicRequestError(
                    INVALID_REPLICA_ASSIGNMENT,
                    f"Topic {name!r} partition {index}: replicas {list(replicas)} must be distinct ids among"
                    f" {sorted(self.brokers)}.",
                )
            layout.append(replicas)
        if len(sizes) != 1:
            raise TopicRequestError(
                INVALID_REPLICA_ASSIGNMENT, f"Topic {name!r}: every partition needs the same number of replicas."
            )
        return layout

    def settle_new_topic(self, topic: Topic) -> None:
        """Apply the current broker states to a new topic (replicas may be stopped)."""
        for partition in topic.partitions:
            stopped = [r for r in partition.replicas if not self.brokers[r].running]
            for node in stopped:
                partition.frozen_end[node] = 0
            partition.isr = [r for r in partition.replicas if r not in stopped] or [partition.replicas[0]]
            if partition.leader in stopped:
                live = [r for r in partition.replicas if r not in stopped]
                partition.leader = live[0] if live else -1

    def delete_topic(self, name: str) -> Topic:
        topic = self.topics.pop(name, None)
        if topic is None:
            raise TopicRequestError(UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name!r} does not exist.")
        topic.deleted = True
        self.on_change(topic.partitions)
        return topic

    # -- brokers and leadership ------------------------------------------------------

    def stop_broker(self, node_id: int) -> None:
        broker = self.broker(node_id)
        if not broker.running:
            raise ClusterError(f"Broker {node_id} is already stopped.")
        broker.running = False
        changed = []
        for partition in self.all_partitions():
            if node_id not in partition.replicas:
                continue
            partition.frozen_end.setdefault(node_id, partition.log.end_offset)
            if node_id in partition.isr and len(partition.isr) > 1:
                partition.isr.remove(node_id)
            if partition.leader == node_id:
                self._elect(partition, exclude=node_id)
            changed.append(partition)
        self.on_change(changed)

    def start_broker(self, node_id: int) -> None:
        broker = self.broker(node_id)
        if broker.running:
            raise ClusterError(f"Broker {node_id} is already running.")
        broker.running = True
        changed = []
        for partition in self.all_partitions():
            if node_id not in partition.replicas:
                continue
            partition.stalled.discard(node_id)  # a restart cures a stalled fetcher
            if partition.leader == -1 and node_id in partition.isr:
                partition.frozen_end.pop(node_id, None)
                partition.set_leader(node_id)
            self._resync(partition)
            changed.append(partition)
        self.on_change(changed)

    def _elect(self, partition: Partition, exclude: int) -> None:
        """Make the first running in-sync replica (assignment order) the leader, or go offline."""
        for replica in partition.replicas:
            if replica != exclude and replica in partition.isr and self.brokers[replica].running:
                partition.set_leader(replica)
                return
        partition.set_leader(-1)

    def _resync(self, partition: Partition) -> None:
        """Every running, non-stalled replica of a led partition catches up and joins the ISR."""
        if partition.leader < 0:
            return
        isr = set(partition.isr)
        for replica in partition.replicas:
            if replica not in isr and self.brokers[replica].running and replica not in partition.stalled:
                partition.frozen_end.pop(replica, None)
                isr.add(replica)
        partition.isr = [r for r in partition.replicas if r in isr]

    def move_leader(self, topic: str, index: int, node_id: int) -> None:
        partition = self.partition(topic, index)
        broker = self.broker(node_id)
        if node_id not in partition.replicas:
            raise ClusterError(
                f"Broker {node_id} holds no replica of {partition.name}; its replicas are {list(partition.replicas)}."
            )
        if not broker.running:
            raise ClusterError(f"Broker {node_id} is stopped; start it before making it the leader of {partition.name}.")
        if node_id not in partition.isr:
            raise ClusterError(
                f"Broker {node_id} is not in the ISR {partition.isr} of {partition.name}; only an in-sync"
                " replica can lead (call restore_isr first)."
            )
        if partition.leader == node_id:
            return
        partition.set_leader(node_id)
        self.on_change([partition])

    def shrink_isr(self, topic: str, index: int, isr: Sequence[int]) -> None:
        partition = self.partition(topic, index)
        wanted = list(dict.fromkeys(isr))
        if not wanted:
            raise ClusterError(f"The ISR of {partition.name} cannot be empty.")
        outside = [r for r in wanted if r not in partition.isr]
        if outside:
            raise ClusterError(
                f"shrink_isr can only remove replicas: {outside} are not in the ISR {partition.isr} of"
                f" {partition.name} (use restore_isr to bring replicas back)."
            )
        if partition.leader >= 0 and partition.leader not in wanted:
            raise ClusterError(
                f"The ISR of {partition.name} must keep its leader {partition.leader}"
                " (use move_leader first to change the leader)."
            )
        for replica in partition.isr:
            if replica not in wanted:
                partition.stalled.add(replica)
                partition.frozen_end.setdefault(replica, partition.log.end_offset)
        partition.isr = [r for r in partition.replicas if r in wanted]
        self.on_change([partition])

    def restore_isr(self, topic: str, index: int) -> None:
        partition = self.partition(topic, index)
        partition.stalled.clear()
        self._resync(partition)
        self.on_change([partition])
