"""Responses as kprod reads them: small typed objects, every field present at every version.

kio gives one entity class per API version, and fields come and go between
versions (``log_append_time`` from Produce v2, ``current_leader`` from v10,
``leader_epoch`` in Metadata from v7, ...). One function per API turns a kio
response of any version into the objects below, filling what older versions
lack with the value Kafka documents for "unknown" (-1, None, empty), so
nothing above the protocol layer reads kio entities or knows which version
answered.

The Produce reader runs on the I/O thread once per response, so it decides
per response (by version) which fields exist and then reads them directly:
no per-record work and no per-field ``getattr`` probing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, NamedTuple

from kprod.protocol.entities import to_millis
from kprod.protocol.versions import broker_ranges

__all__ = [
    "ApiVersionsResult",
    "BrokerMetadata",
    "InitProducerIdResult",
    "LeaderIdAndEpoch",
    "MetadataResult",
    "NO_LEADER",
    "PartitionMetadata",
    "ProduceResult",
    "ProduceResults",
    "RecordError",
    "TopicMetadata",
    "api_versions_result",
    "init_producer_id_result",
    "metadata_result",
    "produce_results",
]


# -- ApiVersions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiVersionsResult:
    """An ApiVersions answer: error code and the broker's (min, max) version per API key."""

    error_code: int
    broker_versions: dict[int, tuple[int, int]]
    throttle_time_ms: int = 0


def api_versions_result(response: Any) -> ApiVersionsResult:
    """Normalise an ApiVersions response of any version (v0 has no throttle time)."""
    return ApiVersionsResult(
        error_code=int(response.error_code),
        broker_versions=broker_ranges(response),
        throttle_time_ms=to_millis(response.throttle_time, 0) if response.__version__ >= 1 else 0,
    )


# -- Metadata -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerMetadata:
    """One broker as a Metadata response lists it."""

    node_id: int
    host: str
    port: int
    rack: str | None


@dataclass(frozen=True, slots=True)
class PartitionMetadata:
    """One partition: leader (-1: none), leader epoch (-1 before Metadata v7), replicas."""

    partition: int
    error_code: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TopicMetadata:
    """One topic: its error code and partitions, sorted by partition number."""

    name: str
    error_code: int
    is_internal: bool
    partitions: tuple[PartitionMetadata, ...]


@dataclass(frozen=True, slots=True)
class MetadataResult:
    """A Metadata answer; ``cluster_id`` is None before v2, ``controller_id`` -1 when unknown."""

    brokers: tuple[BrokerMetadata, ...]
    cluster_id: str | None
    controller_id: int
    topics: tuple[TopicMetadata, ...]
    throttle_time_ms: int


def metadata_result(response: Any) -> MetadataResult:
    """Normalise a Metadata response of any version kprod speaks (v1+)."""
    version = response.__version__
    with_epoch = version >= 7
    with_offline = version >= 5
    topics = []
    for topic in response.topics:
        partitions = tuple(
            sorted(
                (
                    PartitionMetadata(
                        partition=int(p.partition_index),
                        error_code=int(p.error_code),
                        leader=int(p.leader_id),
                        leader_epoch=int(p.leader_epoch) if with_epoch else -1,
                        replicas=tuple(int(r) for r in p.replica_nodes),
                        isr=tuple(int(r) for r in p.isr_nodes),
                        offline_replicas=tuple(int(r) for r in p.offline_replicas) if with_offline else (),
                    )
                    for p in topic.partitions
                ),
                key=lambda p: p.partition,
            )
        )
        topics.append(TopicMetadata(topic.name, int(topic.error_code), bool(topic.is_internal), partitions))
    return MetadataResult(
        brokers=tuple(BrokerMetadata(int(b.node_id), b.host, int(b.port), b.rack) for b in response.brokers),
        cluster_id=response.cluster_id if version >= 2 else None,
        controller_id=int(response.controller_id),
        topics=tuple(topics),
        throttle_time_ms=to_millis(response.throttle_time, 0) if version >= 3 else 0,
    )


# -- InitProducerId ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitProducerIdResult:
    """An InitProducerId answer (the same fields at every version)."""

    error_code: int
    producer_id: int
    producer_epoch: int
    throttle_time_ms: int


def init_producer_id_result(response: Any) -> InitProducerIdResult:
    """Normalise an InitProducerId response of any version."""
    return InitProducerIdResult(
        error_code=int(response.error_code),
        producer_id=int(response.producer_id),
        producer_epoch=int(response.producer_epoch),
        throttle_time_ms=to_millis(response.throttle_time, 0),
    )


# -- Produce ------------------------------------------------------------------------------------


class RecordError(NamedTuple):
    """A record the broker refused inside a batch (Produce v8+)."""

    batch_index: int
    batch_index_error_message: str | None


class LeaderIdAndEpoch(NamedTuple):
    """The partition's new leader as a Produce error answer names it (KIP-951, v10+)."""

    leader_id: int
    leader_epoch: int


#: No leader hint: before Produce v10, or the broker gave none.
NO_LEADER = LeaderIdAndEpoch(-1, -1)


class ProduceResult(NamedTuple):
    """One partition's answer to a Produce request; field names are the protocol's.

    ``log_append_time`` is in ms, -1 unless the topic uses LogAppendTime;
    ``log_start_offset`` -1 before v5; ``error_message`` None and
    ``record_errors`` empty before v8; ``current_leader`` :data:`NO_LEADER`
    before v10 or without a hint.
    """

    error_code: int
    base_offset: int
    log_append_time: int
    log_start_offset: int
    error_message: str | None
    record_errors: tuple[RecordError, ...]
    current_leader: LeaderIdAndEpoch


class ProduceResults(NamedTuple):
    """A Produce answer: results by (topic, partition), and broker endpoints (v10+, else empty)."""

    partitions: dict[tuple[str, int], ProduceResult]
    node_endpoints: dict[int, tuple[str, int]]
    throttle_time_ms: int


_ONE_MS = datetime.timedelta(milliseconds=1)
# NamedTuple's generated __new__ costs ~0.4 us a call; tuple.__new__ builds the same object.
_new_tuple = tuple.__new__


def produce_results(response: Any) -> ProduceResults:
    """Normalise a Produce response of any version kprod speaks (v3+).

    Runs on the I/O thread once per response: fields a version lacks are
    decided once per response, and the optional error details are only read
    for a partition that failed.
    """
    version = response.__version__
    with_start = version >= 5
    with_errors = version >= 8
    with_leader = version >= 10
    results: dict[tuple[str, int], ProduceResult] = {}
    for topic in response.responses:
        name = topic.name
        for p in topic.partition_responses:
            code = int(p.error_code)
            append_time = p.log_append_time
            message: str | None = None
            record_errors: tuple[RecordError, ...] = ()
            leader = NO_LEADER
            if code:
                if with_errors:
                    message = p.error_message
                    record_errors = tuple(
                        RecordError(e.batch_index, e.batch_index_error_message) for e in p.record_errors
                    )
                if with_leader and p.current_leader is not None and p.current_leader.leader_id >= 0:
                    leader = LeaderIdAndEpoch(p.current_leader.leader_id, p.current_leader.leader_epoch)
            # kio reads int fields as plain ints: no int() calls needed on this path.
            results[(name, p.index)] = _new_tuple(ProduceResult, (
                code,
                p.base_offset,
                -1 if append_time is None else to_millis(append_time),
                p.log_start_offset if with_start else -1,
                message,
                record_errors,
                leader,
            ))
    endpoints: dict[int, tuple[str, int]] = {}
    if with_leader and response.node_endpoints:
        for e in response.node_endpoints:
            endpoints[e.node_id] = (e.host, e.port)
    return _new_tuple(ProduceResults, (results, endpoints, response.throttle_time // _ONE_MS))
