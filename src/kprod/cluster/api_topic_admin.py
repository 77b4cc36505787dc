"""CreatePartitions, DeleteRecords, DescribeCluster and DescribeLogDirs: admin clients' topic tooling.

Any broker accepts CreatePartitions (Kafka forwards it to the controller);
DeleteRecords must reach each partition's leader, as in Kafka. Logs live in
memory, so DescribeLogDirs reports one made-up directory per broker holding
that broker's replicas, with their sizes and how far each lags its leader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kprod.cluster.entities import error, make, millis
from kprod.cluster.state import TopicRequestError
from kprod.protocol.messages import response_module

if TYPE_CHECKING:
    from kprod.cluster.engine import Engine, Reply, RequestContext

__all__ = [
    "handle_create_partitions",
    "handle_delete_records",
    "handle_describe_cluster",
    "handle_describe_log_dirs",
    "log_dir",
]

DELETE_RECORDS = 21
DESCRIBE_LOG_DIRS = 35
CREATE_PARTITIONS = 37
DESCRIBE_CLUSTER = 60

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
INVALID_REQUEST = 42
UNSUPPORTED_ENDPOINT_TYPE = 119
_OPERATIONS_NOT_REQUESTED = -(2**31)
_BROKERS_ENDPOINT = 1


def log_dir(node_id: int) -> str:
    """The (in-memory) log directory DescribeLogDirs reports for a broker."""
    return f"/kprod-embedded/broker-{node_id}"


def _reply(context: RequestContext, entity: Any) -> Reply:
    from kprod.cluster.engine import Reply

    return Reply(entity, context.frame.correlation_id)


def handle_create_partitions(engine: Engine, context: RequestContext) -> Reply:
    state = engine.state
    request = context.request
    module = response_module(CREATE_PARTITIONS, context.version)
    names = [t.name for t in request.topics]
    results = []
    for item in request.topics:
        code, message = context.injected_error, None
        if not code:
            try:
                if names.count(item.name) > 1:
                    raise TopicRequestError(INVALID_REQUEST, f"Topic {item.name!r} appears more than once.")
                assignments = None
                if item.assignments is not None:
                    assignments = [tuple(a.broker_ids) for a in item.assignments]
                state.create_partitions(item.name, item.count, assignments, validate_only=bool(request.validate_only))
            except TopicRequestError as exc:
                code, message = exc.code, str(exc)
        results.append(module.CreatePartitionsTopicResult(name=item.name, error_code=error(code), error_message=message))
    entity = module.CreatePartitionsResponse(throttle_time=millis(context.throttle_ms), results=tuple(results))
    return _reply(context, entity)


def handle_delete_records(engine: Engine, context: RequestContext) -> Reply:
    state = engine.state
    request = context.request
    module = response_module(DELETE_RECORDS, context.version)
    topics_out = []
    for item in request.topics:
        topic = state.topics.get(item.name)
        partitions_out = []
        for wanted in item.partitions:
            index = wanted.partition_index
            code, low_watermark = context.injected_error, -1
            if not code:
                if topic is None or not 0 <= index < len(topic.partitions):
                    code = UNKNOWN_TOPIC_OR_PARTITION
                elif topic.partitions[index].leader != context.node_id:
                    code = NOT_LEADER_OR_FOLLOWER
                else:
                    try:
                        low_watermark = state.delete_records(topic.partitions[index], wanted.offset)
                    except TopicRequestError as exc:
                        code = exc.code
            partitions_out.append(
                module.DeleteRecordsPartitionResult(
                    partition_index=index, low_watermark=low_watermark, error_code=error(code)
                )
            )
        topics_out.append(module.DeleteRecordsTopicResult(name=item.name, partitions=tuple(partitions_out)))
    entity = module.DeleteRecordsResponse(throttle_time=millis(context.throttle_ms), topics=tuple(topics_out))
    return _reply(context, entity)


def handle_describe_cluster(engine: Engine, context: RequestContext) -> Reply:
    state = engine.state
    module = response_module(DESCRIBE_CLUSTER, context.version)
    code = context.injected_error
    message = None
    if not code and getattr(context.request, "endpoint_type", _BROKERS_ENDPOINT) != _BROKERS_ENDPOINT:
        code, message = UNSUPPORTED_ENDPOINT_TYPE, "The embedded cluster has no separate controllers."
    with_fenced = bool(getattr(context.request, "include_fenced_brokers", False))  # v2: stopped brokers too
    brokers = tuple(
        make(
            module.DescribeClusterBroker,
            broker_id=b.node_id,
            host=b.host,
            port=b.port,
            rack=None,
            is_fenced=not b.running,
        )
        for b in state.brokers.values()
        if (b.running or with_fenced) and not code
    )
    entity = make(
        module.DescribeClusterResponse,
        throttle_time=millis(context.throttle_ms),
        error_code=error(code),
        error_message=message,
        endpoint_type=_BROKERS_ENDPOINT,
        cluster_id=state.cluster_id,
        controller_id=state.controller_id(),
        brokers=brokers,
        cluster_authorized_operations=_OPERATIONS_NOT_REQUESTED,
    )
    return _reply(context, entity)


def handle_describe_log_dirs(engine: Engine, context: RequestContext) -> Reply:
    state = engine.state
    node_id = context.node_id
    module = response_module(DESCRIBE_LOG_DIRS, context.version)
    wanted: dict[str, set[int]] | None = None
    if context.request.topics is not None:
        wanted = {}
        for item in context.request.topics:
            wanted.setdefault(item.topic, set()).update(item.partitions)
    topics_out = []
    for name in sorted(state.topics):
        if wanted is not None and name not in wanted:
            continue
        partitions = tuple(
            module.DescribeLogDirsPartition(
                partition_index=p.index,
                partition_size=p.log.size_bytes,
                offset_lag=p.log.end_offset - p.replica_end_offset(node_id),
                is_future_key=False,
            )
            for p in state.topics[name].partitions
            if node_id in p.replicas and (wanted is None or p.index in wanted[name])
        )
        if partitions:
            topics_out.append(module.DescribeLogDirsTopic(name=name, partitions=partitions))
    code = context.injected_error
    result = make(
        module.DescribeLogDirsResult,
        error_code=error(code),
        log_dir=log_dir(node_id),
        topics=() if code else tuple(topics_out),
        total_bytes=-1,
        usable_bytes=-1,
    )
    entity = make(
        module.DescribeLogDirsResponse,
        throttle_time=millis(context.throttle_ms),
        error_code=error(code),
        results=(result,),
    )
    return _reply(context, entity)
