"""Fetch (with long polling), ListOffsets and OffsetForLeaderEpoch: what a consumer with
assigned partitions needs.

A Fetch that finds fewer than ``min_bytes`` waits up to ``max_wait_ms``: the
handler returns a ``ParkedFetch`` that the event loop registers on each
partition it reads, and completes early when an append brings enough bytes,
or when a partition's leadership changes. Stored batches go out as they are,
spliced into the encoded response (see :mod:`kprod.cluster.splice`).

There are no fetch sessions (KIP-227): every answer has session id 0, which
tells a client to keep sending full fetches; a client that believes it holds
a session gets FETCH_SESSION_ID_NOT_FOUND and starts over.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kprod.cluster.entities import error, make, millis
from kprod.cluster.splice import new_placeholder
from kprod.cluster.state import Partition
from kprod.protocol.messages import ApiKey, response_module

if TYPE_CHECKING:
    from kprod.cluster.engine import Engine, Reply, RequestContext

__all__ = ["ParkedFetch", "complete_fetch", "handle_fetch", "handle_list_offsets", "handle_offset_for_leader_epoch"]

NONE = 0
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
FETCH_SESSION_ID_NOT_FOUND = 70
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
_INT32_MAX = (1 << 31) - 1
_ONE_MS = 0.001

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


class ParkedFetch:
    """A Fetch waiting for data: woken by appends, changes of leadership, or its deadline."""

    __slots__ = ("context", "deadline", "min_bytes", "pending_bytes", "partitions", "connection", "timer")

    def __init__(self, context: RequestContext, deadline: float, min_bytes: int, partitions: list[Partition]) -> None:
        self.context = context
        self.deadline = deadline
        self.min_bytes = min_bytes
        self.pending_bytes = 0
        self.partitions = partitions
        self.connection: Any = None  # set by the event loop
        self.timer: Any = None

    def note_append(self, size: int) -> bool:
        """Count appended bytes; True once the fetch can be answered."""
        self.pending_bytes += size
        return self.pending_bytes >= self.min_bytes


def _check_epoch(requested: int, current: int) -> int:
    if requested < 0 or requested == current:
        return NONE
    return FENCED_LEADER_EPOCH if requested < current else UNKNOWN_LEADER_EPOCH


def _served_partition(topic: Any, index: int, node_id: int, current_leader_epoch: int) -> tuple[int, Any]:
    """(error code, partition) for a partition this broker must serve as its leader."""
    if topic is None or not 0 <= index < len(topic.partitions):
        return UNKNOWN_TOPIC_OR_PARTITION, None
    partition = topic.partitions[index]
    if partition.leader != node_id:
        return NOT_LEADER_OR_FOLLOWER, partition
    return _check_epoch(current_leader_epoch, partition.leader_epoch), partition


def _build_fetch(engine: Engine, context: RequestContext) -> tuple[Reply, int, bool, list[Partition]]:
    """(reply, record bytes in it, whether an error makes it urgent, partitions read)."""
    from kprod.cluster.engine import Reply

    state = engine.state
    request = context.request
    version = context.version
    node_id = context.node_id
    module = response_module(ApiKey.FETCH, version)
    partition_cls = module.PartitionData
    injected = context.injected_error
    read_committed = getattr(request, "isolation_level", 0) == 1
    remaining = getattr(request, "max_bytes", _INT32_MAX)
    total = 0
    urgent = False
    payloads: list[tuple[bytes, list[bytes]]] = []
    read_from: list[Partition] = []
    topics_out = []
    top_error = NONE
    if getattr(request, "session_id", 0) != 0 or getattr(request, "session_epoch", -1) > 0:
        top_error = FETCH_SESSION_ID_NOT_FOUND
    for fetch_topic in request.topics:
        topic = state.topics.get(fetch_topic.topic)
        partitions_out = []
        for fetch_partition in fetch_topic.partitions:
            index = fetch_partition.partition
            code = NONE
            high_watermark = log_start = -1
            records: bytes = b""
            leader_hint = None
            if top_error:
                code = top_error
            elif injected:
                code = injected
            else:
                code, partition = _served_partition(
                    topic, index, node_id, getattr(fetch_partition, "current_leader_epoch", -1))
                if code == NOT_LEADER_OR_FOLLOWER and hasattr(module, "LeaderIdAndEpoch"):
                    leader_hint = module.LeaderIdAndEpoch(
                        leader_id=partition.leader, leader_epoch=partition.leader_epoch)
                if not code:
                    log = partition.log
                    offset = fetch_partition.fetch_offset
                    if not log.log_start_offset <= offset <= log.end_offset:
                        code = OFFSET_OUT_OF_RANGE
                    else:
                        high_watermark = log.end_offset
                        log_start = log.log_start_offset
                        read_from.append(partition)
                        limit = min(fetch_partition.partition_max_bytes, remaining)
                        batches, size = log.read(offset, limit, min_one=total == 0)
                        if batches:
                            records = new_placeholder()
                            payloads.append((records, batches))
                            total += size
                            remaining -= size
            if code:
                urgent = True
            values: dict[str, Any] = {
                "partition_index": index,
                "error_code": error(code),
                "high_watermark": high_watermark,
                "last_stable_offset": high_watermark,
                "log_start_offset": log_start,
                "aborted_transactions": () if read_committed else None,
                "preferred_read_replica": -1,
                "records": records,
            }
            if leader_hint is not None:
                values["current_leader"] = leader_hint
            partitions_out.append(make(partition_cls, **values))
        topics_out.append(module.FetchableTopicResponse(topic=fetch_topic.topic, partitions=tuple(partitions_out)))
    entity = make(
        module.FetchResponse,
        throttle_time=millis(context.throttle_ms),
        error_code=error(top_error),
        session_id=0,
        responses=tuple(topics_out),
    )
    return Reply(entity, context.frame.correlation_id, payloads), total, urgent, read_from


def handle_fetch(engine: Engine, context: RequestContext) -> Reply | ParkedFetch:
    request = context.request
    reply, total, urgent, read_from = _build_fetch(engine, context)
    max_wait_ms = int(request.max_wait.total_seconds() * 1000)
    min_bytes = max(request.min_bytes, 1)
    if urgent or total >= min_bytes or max_wait_ms <= 0 or not read_from:
        return reply
    return ParkedFetch(context, time.monotonic() + max_wait_ms * _ONE_MS, min_bytes - total, read_from)


def complete_fetch(engine: Engine, parked: ParkedFetch) -> Reply:
    """The answer to a parked fetch, read afresh now that it woke up."""
    reply, _, _, _ = _build_fetch(engine, parked.context)
    return reply


# -- ListOffsets ------------------------------------------------------------------------


def handle_list_offsets(engine: Engine, context: RequestContext) -> Reply:
    from kprod.cluster.engine import Reply

    state = engine.state
    request = context.request
    module = response_module(ApiKey.LIST_OFFSETS, context.version)
    injected = context.injected_error
    topics_out = []
    for list_topic in request.topics:
        topic = state.topics.get(list_topic.name)
        partitions_out = []
        for item in list_topic.partitions:
            index = item.partition_index
            offset = found_timestamp = -1
            epoch = -1
            if injected:
                code = injected
            else:
                code, partition = _served_partition(
                    topic, index, context.node_id, getattr(item, "current_leader_epoch", -1))
                if not code:
                    epoch = partition.leader_epoch
                    offset, found_timestamp = _lookup(partition, item.timestamp)
            partitions_out.append(
                make(
                    module.ListOffsetsPartitionResponse,
                    partition_index=index,
                    error_code=error(code),
                    timestamp=found_timestamp,
                    offset=offset,
                    leader_epoch=epoch,
                )
            )
        topics_out.append(module.ListOffsetsTopicResponse(name=list_topic.name, partitions=tuple(partitions_out)))
    entity = make(module.ListOffsetsResponse, throttle_time=millis(context.throttle_ms), topics=tuple(topics_out))
    return Reply(entity, context.frame.correlation_id)


def _lookup(partition: Partition, wanted: int) -> tuple[int, int]:
    """(offset, timestamp) for a ListOffsets timestamp: latest, earliest, max timestamp or a time."""
    log = partition.log
    if wanted == LATEST:
        return log.end_offset, -1
    if wanted == EARLIEST:
        return log.log_start_offset, -1
    if wanted == MAX_TIMESTAMP:
        found = log.max_timestamp()
    else:
        found = log.offset_for_timestamp(wanted)
    return found if found is not None else (-1, -1)


# -- OffsetForLeaderEpoch -----------------------------------------------------------------

OFFSET_FOR_LEADER_EPOCH = 23


def handle_offset_for_leader_epoch(engine: Engine, context: RequestContext) -> Reply:
    """Where a leader epoch's records end, so a consumer can check its position after a
    leader change (KIP-320; kafka-python and librdkafka ask once the epoch moves)."""
    from kprod.cluster.engine import Reply

    state = engine.state
    request = context.request
    module = response_module(OFFSET_FOR_LEADER_EPOCH, context.version)
    injected = context.injected_error
    topics_out = []
    for item_topic in request.topics:
        topic = state.topics.get(item_topic.topic)
        partitions_out = []
        for item in item_topic.partitions:
            index = item.partition
            epoch = end_offset = -1
            if injected:
                code = injected
            else:
                code, partition = _served_partition(topic, index, context.node_id, item.current_leader_epoch)
                if not code:
                    epoch, end_offset = partition.end_offset_for_epoch(item.leader_epoch)
            partitions_out.append(
                module.EpochEndOffset(
                    error_code=error(code), partition=index, leader_epoch=epoch, end_offset=end_offset
                )
            )
        topics_out.append(module.OffsetForLeaderTopicResult(topic=item_topic.topic, partitions=tuple(partitions_out)))
    entity = module.OffsetForLeaderEpochResponse(throttle_time=millis(context.throttle_ms), topics=tuple(topics_out))
    return Reply(entity, context.frame.correlation_id)
