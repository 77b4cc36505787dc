"""The producer's view of the cluster: brokers, topics, partitions, leaders.

Written by the I/O thread from Metadata responses, read by ``send()`` (the
partition count of a topic) and by the sender (leaders). Readers on the hot
path use plain dict lookups of immutable values, so they need no lock; the
condition is only for threads waiting for a topic to appear.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kprod.errors import KafkaError, error_for_code
from kprod.protocol.responses import MetadataResult

__all__ = ["ClusterMetadata", "MetadataNeeded", "PartitionInfo"]

_NONE = 0
# Topic-level codes after which waiting is pointless: send() raises them at once.
_FATAL_TOPIC_CODES = frozenset({17, 29})  # INVALID_TOPIC_EXCEPTION, TOPIC_AUTHORIZATION_FAILED
# Codes that mean "not there yet": keep waiting until max.block.ms.
_RETRY_TOPIC_CODES = frozenset({3, 5})  # UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE


class MetadataNeeded(Exception):
    """Raised instead of blocking when a caller that must not block needs ``topic``'s metadata.

    Not an error users see: the asyncio producer catches it and waits on its event
    loop (:meth:`ClusterMetadata.wake_on_update`) until :meth:`ClusterMetadata.check_topic`
    answers, or ``max.block.ms`` passes. The topic is already registered (a fetch is due).
    """

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.topic = topic


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition as the cluster last described it (Java's PartitionInfo)."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]


class ClusterMetadata:
    """Topics of interest and what the brokers last said about them."""

    def __init__(self, *, metadata_max_age_ms: int, metadata_max_idle_ms: int) -> None:
        self.max_age_ms = metadata_max_age_ms
        self.max_idle_ms = metadata_max_idle_ms
        self._cond = threading.Condition(threading.Lock())
        #: node id -> (host, port)
        self.brokers: dict[int, tuple[str, int]] = {}
        self.cluster_id: str | None = None
        self.controller_id = -1
        #: topic -> number of partitions (only topics with metadata)
        self.partition_counts: dict[str, int] = {}
        #: topic -> tuple of leader node ids per partition (-1 = no leader)
        self.leaders: dict[str, tuple[int, ...]] = {}
        #: topic -> tuple of PartitionInfo
        self.partitions: dict[str, tuple[PartitionInfo, ...]] = {}
        #: topic -> partitions with a leader
        self.available: dict[str, tuple[int, ...]] = {}
        #: topic -> last time a send used it (ms); the topics the producer asks about
        self.interest: dict[str, float] = {}
        #: topic -> the error the last response gave for it
        self.topic_errors: dict[str, KafkaError] = {}
        #: Set while brokers refuse our credentials or certificate: send() raises it at once.
        self.auth_error: KafkaError | None = None
        self.version = 0
        self.last_refresh_ms = 0.0
        self.update_requested = True
        self._new_topics = False
        # One-shot wake-ups of waiters that do not block a thread (the asyncio producer).
        self._wakers: list[Callable[[], Any]] = []

    # -- application threads ------------------------------------------------

    def add_topic(self, topic: str, now_ms: float) -> bool:
        """Note interest in ``topic``; True if it is new (a fetch should be made)."""
        with self._cond:
            new = topic not in self.interest
            self.interest[topic] = now_ms
            if new:
                self._new_topics = True
                self.update_requested = True
            return new

    def wait_for_topic(self, topic: str, deadline: float, wakeup: Any) -> int:
        """Block until ``topic`` has metadata or ``deadline`` (monotonic s); its partition count.

        Raises the topic's fatal error at once, or None-equivalent -1 on timeout.
        """
        with self._cond:
            while True:
                count = self.check_topic(topic)
                if count:
                    return count
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return -1
                self.update_requested = True
                wakeup()
                self._cond.wait(min(remaining, 0.5))

    def check_topic(self, topic: str) -> int:
        """``topic``'s partition count, 0 while unknown; raises its fatal error (no point waiting)."""
        count = self.partition_counts.get(topic)
        if count:
            return count
        if self.auth_error is not None:
            raise self.auth_error
        error = self.topic_errors.get(topic)
        if error is not None and error.code in _FATAL_TOPIC_CODES:
            raise error
        return 0

    def wake_on_update(self, wake: Callable[[], Any]) -> None:
        """Call ``wake()`` once, from the I/O thread, after the next metadata update (or on close)."""
        with self._cond:
            self._wakers.append(wake)

    def touch(self, topic: str, now_ms: float) -> None:
        """Record that a send used ``topic`` (keeps it from expiring as idle)."""
        self.interest[topic] = now_ms

    # -- I/O thread -------------------------------------------------------

    def request_update(self) -> None:
        """Ask for a refresh at the next opportunity (stale leader, new topic, ...)."""
        self.update_requested = True

    def needs_update(self, now_ms: float) -> bool:
        return self.update_requested or now_ms - self.last_refresh_ms >= self.max_age_ms

    def time_to_next_update(self, now_ms: float) -> float:
        if self.update_requested:
            return 0.0
        return max(0.0, self.last_refresh_ms + self.max_age_ms - now_ms)

    def topics_to_fetch(self, now_ms: float) -> list[str]:
        """Topics to ask about; those unused for metadata.max.idle.ms are dropped."""
        with self._cond:
            idle = [t for t, used in self.interest.items() if now_ms - used > self.max_idle_ms]
            for topic in idle:
                del self.interest[topic]
            self._new_topics = False
            return list(self.interest)

    def update(self, response: MetadataResult, now_ms: float) -> set[str]:
        """Apply a Metadata response; returns topics whose partition count changed."""
        brokers = {b.node_id: (b.host, b.port) for b in response.brokers}
        changed: set[str] = set()
        with self._cond:
            if brokers:
                self.brokers = brokers
            self.cluster_id = response.cluster_id
            self.controller_id = response.controller_id
            counts = dict(self.partition_counts)
            leaders = dict(self.leaders)
            partitions = dict(self.partitions)
            available = dict(self.available)
            for topic_md in response.topics:
                name = topic_md.name
                code = topic_md.error_code
                if code != _NONE:
                    self.topic_errors[name] = error_for_code(code, topic=name)
                    if code not in _RETRY_TOPIC_CODES or not topic_md.partitions:
                        counts.pop(name, None)
                        leaders.pop(name, None)
                        partitions.pop(name, None)
                        available.pop(name, None)
                        continue
                else:
                    self.topic_errors.pop(name, None)
                infos = [  # the protocol layer sorts partitions by number
                    PartitionInfo(name, p.partition, p.leader, p.leader_epoch, p.replicas, p.isr, p.offline_replicas)
                    for p in topic_md.partitions
                ]
                if not infos:
                    continue
                if counts.get(name) != len(infos):
                    changed.add(name)
                counts[name] = len(infos)
                leader_ids = tuple(
                    info.leader if info.leader in brokers or not brokers else -1 for info in infos
                )
                leaders[name] = leader_ids
                partitions[name] = tuple(infos)
                available[name] = tuple(i for i, leader in enumerate(leader_ids) if leader >= 0)
            self.partition_counts = counts
            self.leaders = leaders
            self.partitions = partitions
            self.available = available
            self.version += 1
            self.last_refresh_ms = now_ms
            self.update_requested = self._new_topics
            self._cond.notify_all()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()
        return changed

    def update_leader(self, topic: str, partition: int, leader: int, leader_epoch: int, now_ms: float) -> None:
        """Apply a leader hint from a Produce response (KIP-951) without a full refresh."""
        with self._cond:
            current = self.partitions.get(topic)
            if current is None or partition >= len(current):
                return
            info = current[partition]
            if leader_epoch <= info.leader_epoch or leader not in self.brokers:
                return
            infos = list(current)
            infos[partition] = PartitionInfo(topic, partition, leader, leader_epoch, info.replicas, info.isr, info.offline_replicas)
            leaders = list(self.leaders[topic])
            leaders[partition] = leader
            new_partitions = dict(self.partitions)
            new_partitions[topic] = tuple(infos)
            new_leaders = dict(self.leaders)
            new_leaders[topic] = tuple(leaders)
            self.partitions = new_partitions
            self.leaders = new_leaders

    def add_brokers(self, endpoints: dict[int, tuple[str, int]]) -> None:
        """Learn broker addresses from a Produce response's node endpoints."""
        with self._cond:
            merged = dict(self.brokers)
            merged.update(endpoints)
            self.brokers = merged

    def set_auth_error(self, error: KafkaError | None) -> None:
        """Brokers refused (error) or accepted (None) our credentials; wakes waiting send() calls."""
        with self._cond:
            self.auth_error = error
            self._cond.notify_all()

    def notify_waiters(self) -> None:
        """Wake threads in :meth:`wait_for_topic` and :meth:`wake_on_update`'s waiters (e.g. on close)."""
        with self._cond:
            self._cond.notify_all()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()
