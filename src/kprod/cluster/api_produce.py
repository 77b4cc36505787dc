"""Produce: validate a batch by its header and CRC, check idempotence, append.

The hot path of a performance run. Each partition's batch is checked the way
a Kafka broker checks it before it decompresses anything (one magic-2 batch,
sane header, CRC-32C, size limit, producer sequence), stamped with its base
offset (and LogAppendTime when the topic asks for it) by
``assign_offsets``, and stored as bytes. Records are not decoded: the
embedded cluster trusts a batch whose CRC matches, where Kafka would also
decompress and walk every record of a compressed batch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kprod.cluster.entities import error, field_names, make, millis, timestamp
from kprod.cluster.state import Partition
from kprod.protocol.messages import ApiKey, response_module
from kprod.protocol.records import CorruptRecordError, assign_offsets, parse_batch_header

if TYPE_CHECKING:
    from kprod.cluster.engine import Engine, Reply, RequestContext

__all__ = ["handle_produce"]

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
MESSAGE_TOO_LARGE = 10
NOT_ENOUGH_REPLICAS = 19
INVALID_REQUIRED_ACKS = 21
INVALID_TXN_STATE = 48
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87

_MAGIC_OFFSET = 16
_CODEC_MASK = 0x07
_CONTROL_BIT = 0x20
_TRANSACTIONAL_BIT = 0x10
_ZSTD = 4
_INT32_MAX = (1 << 31) - 1


class _Result:
    """One partition's outcome, before it becomes a kio entity."""

    __slots__ = ("index", "code", "base_offset", "log_append_time", "log_start_offset", "message", "partition")

    def __init__(
        self,
        index: int,
        code: int,
        base_offset: int = -1,
        log_append_time: int = -1,
        log_start_offset: int = -1,
        message: str | None = None,
        partition: Partition | None = None,
    ) -> None:
        self.index = index
        self.code = code
        self.base_offset = base_offset
        self.log_append_time = log_append_time
        self.log_start_offset = log_start_offset
        self.message = message
        self.partition = partition


def _append(
    engine: Engine, partition: Partition, records: bytes | None, acks: int, version: int, now_ms: int
) -> _Result:
    """Validate ``records`` for ``partition`` (led by this broker) and append it."""
    index = partition.index
    if not records:
        return _Result(index, INVALID_RECORD, message="The request carries no record batch for this partition.")
    if len(records) > _MAGIC_OFFSET and records[_MAGIC_OFFSET] != 2:
        return _Result(
            index, INVALID_RECORD, message=f"Record batch magic {records[_MAGIC_OFFSET]}: only magic 2 is accepted."
        )
    try:
        header = parse_batch_header(records)
        size = header.size_in_bytes
        if size != len(records):
            return _Result(
                index,
                INVALID_RECORD,
                message=f"The partition data holds {len(records)} bytes but its first batch {size}:"
                " send exactly one record batch per partition.",
            )
        header.check_crc()
    except CorruptRecordError as exc:
        return _Result(index, CORRUPT_MESSAGE, message=str(exc))
    config = partition.topic.config
    if size > config.max_message_bytes:
        return _Result(
            index,
            MESSAGE_TOO_LARGE,
            message=f"The record batch is {size} bytes, more than max.message.bytes={config.max_message_bytes}.",
        )
    count = header.record_count
    attributes = header.attributes
    if count < 1 or header.last_offset_delta != count - 1:
        return _Result(
            index,
            INVALID_RECORD,
            message=f"Record batch has {count} records but lastOffsetDelta {header.last_offset_delta}.",
        )
    if attributes & _CONTROL_BIT:
        return _Result(index, INVALID_RECORD, message="Clients may not write control batches.")
    codec = attributes & _CODEC_MASK
    if codec > _ZSTD:
        return _Result(index, CORRUPT_MESSAGE, message=f"Record batch names unknown compression codec {codec}.")
    if codec == _ZSTD and version < 7:
        return _Result(index, UNSUPPORTED_COMPRESSION_TYPE, message="zstd needs Produce v7 or newer.")
    if attributes & _TRANSACTIONAL_BIT:
        return _Result(index, INVALID_TXN_STATE, message="The embedded cluster does not serve transactions.")
    producer_id = header.producer_id
    if producer_id >= 0 and header.base_sequence < 0:
        return _Result(index, INVALID_RECORD, message=f"Producer {producer_id} sent a batch without a base sequence.")
    if acks == -1 and len(partition.isr) < config.min_insync_replicas:
        return _Result(
            index,
            NOT_ENOUGH_REPLICAS,
            message=f"The ISR {partition.isr} has fewer than min.insync.replicas={config.min_insync_replicas}"
            " replicas, so acks=all cannot be met.",
        )
    log = partition.log
    first = last = -1
    if producer_id >= 0:
        first = header.base_sequence
        last = (first + count - 1) & _INT32_MAX
        verdict = partition.producers.check(producer_id, header.producer_epoch, first, last)
        if verdict.error_code:
            return _Result(index, verdict.error_code, log_start_offset=log.log_start_offset, message=verdict.message)
        original = verdict.duplicate_of
        if original is not None:
            return _Result(index, NONE, original.base_offset, original.log_append_time, log.log_start_offset)
    base_offset = log.end_offset
    append_time = now_ms if config.log_append_time else -1
    stamped = assign_offsets(
        records, base_offset, append_time if append_time >= 0 else None, partition.leader_epoch
    )
    log.append(stamped, count)
    if producer_id >= 0:
        partition.producers.record(producer_id, header.producer_epoch, first, last, base_offset, append_time)
    if partition.waiters:
        engine.on_append(partition, len(stamped))
    return _Result(index, NONE, base_offset, append_time, log.log_start_offset)


def handle_produce(engine: Engine, context: RequestContext) -> Reply | None | Any:
    from kprod.cluster.engine import CLOSE, Reply

    state = engine.state
    request = context.request
    version = context.version
    node_id = context.node_id
    acks = request.acks
    injection = context.injection
    now_ms = int(time.time() * 1000)
    results: list[tuple[str, list[_Result]]] = []
    failed = False
    for topic_data in request.topic_data:
        name = topic_data.name
        topic = state.topics.get(name)
        partition_results: list[_Result] = []
        for data in topic_data.partition_data:
            index = data.index
            if injection is not None and not injection.after_append:
                partition = topic.partitions[index] if topic is not None and 0 <= index < len(topic.partitions) else None
                result = _Result(index, injection.error_code, partition=partition)
            elif acks not in (0, 1, -1):
                result = _Result(index, INVALID_REQUIRED_ACKS, message=f"acks={acks} is not 0, 1 or -1.")
            elif topic is None or not 0 <= index < len(topic.partitions):
                result = _Result(index, UNKNOWN_TOPIC_OR_PARTITION, message=f"{name}-{index} does not exist.")
            else:
                partition = topic.partitions[index]
                if partition.leader != node_id:
                    result = _Result(
                        index,
                        NOT_LEADER_OR_FOLLOWER,
                        message=f"Broker {node_id} is not the leader of {name}-{index}.",
                        partition=partition,
                    )
                elif request.transactional_id is not None:
                    result = _Result(index, INVALID_TXN_STATE, message="The embedded cluster does not serve transactions.")
                else:
                    result = _append(engine, partition, data.records, acks, version, now_ms)
                    if injection is not None:  # after_append: written, but report the error
                        result = _Result(index, injection.error_code, partition=partition)
            if result.code:
                failed = True
            partition_results.append(result)
        results.append((name, partition_results))
    if acks == 0:
        # No response; Kafka closes the connection to signal a failed acks=0 produce.
        return CLOSE if failed else None
    return Reply(_response(engine, context, results), context.frame.correlation_id)


def _response(engine: Engine, context: RequestContext, results: list[tuple[str, list[_Result]]]) -> Any:
    version = context.version
    module = response_module(ApiKey.PRODUCE, version)
    partition_cls = module.PartitionProduceResponse
    leader_hints = "current_leader" in field_names(partition_cls)
    with_start = "log_start_offset" in field_names(partition_cls)
    with_errors = "record_errors" in field_names(partition_cls)
    endpoints: dict[int, Any] = {}
    state = engine.state
    topics = []
    for name, partition_results in results:
        entities = []
        for r in partition_results:
            values: dict[str, Any] = {
                "index": r.index,
                "error_code": error(r.code),
                "base_offset": r.base_offset,
                "log_append_time": timestamp(r.log_append_time),
            }
            if with_start:
                values["log_start_offset"] = r.log_start_offset
            if with_errors:
                values["record_errors"] = ()
                values["error_message"] = r.message
            if leader_hints and r.code == NOT_LEADER_OR_FOLLOWER and r.partition is not None:
                leader = r.partition.leader
                values["current_leader"] = module.LeaderIdAndEpoch(
                    leader_id=leader, leader_epoch=r.partition.leader_epoch
                )
                if leader >= 0:
                    broker = state.brokers[leader]
                    endpoints[leader] = module.NodeEndpoint(node_id=leader, host=broker.host, port=broker.port, rack=None)
            entities.append(partition_cls(**values))
        topics.append(module.TopicProduceResponse(name=name, partition_responses=tuple(entities)))
    return make(
        module.ProduceResponse,
        responses=tuple(topics),
        throttle_time=millis(context.throttle_ms),
        node_endpoints=tuple(endpoints[n] for n in sorted(endpoints)),
    )
