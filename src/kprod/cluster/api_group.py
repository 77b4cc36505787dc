"""FindCoordinator and the classic consumer group APIs, over :mod:`kprod.cluster.groups`.

Each handler reads a kio request at any version it is advertised for, asks
the group coordinator, and writes the kio response. A group request that
reaches a broker other than the group's coordinator gets NOT_COORDINATOR, so
clients look the coordinator up again after it moves. JoinGroup and SyncGroup
may wait for other members: they return a ``DeferredReply`` that the
coordinator resolves when the rebalance or the leader's assignment completes.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kprod.cluster.consumer_protocol import assignment_bytes
from kprod.cluster.deferred import DeferredReply
from kprod.cluster.entities import error, make, millis
from kprod.cluster.groups import STABLE, JoinResult, SyncResult
from kprod.protocol.messages import ApiKey, response_module

if TYPE_CHECKING:
    from kprod.cluster.engine import Engine, Reply, RequestContext
    from kprod.cluster.state import Topic

__all__ = [
    "GROUP_VERSIONS",
    "handle_consumer_group_heartbeat",
    "handle_delete_groups",
    "handle_describe_groups",
    "handle_find_coordinator",
    "handle_heartbeat",
    "handle_join_group",
    "handle_leave_group",
    "handle_list_groups",
    "handle_offset_commit",
    "handle_offset_delete",
    "handle_offset_fetch",
    "handle_sync_group",
]

log = logging.getLogger("kprod.cluster.groups")

#: API key -> (min, max) version served here (the engine advertises these).
GROUP_VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.OFFSET_COMMIT: (2, 10),
    ApiKey.OFFSET_FETCH: (1, 10),
    ApiKey.FIND_COORDINATOR: (0, 6),
    ApiKey.JOIN_GROUP: (0, 9),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 5),
    ApiKey.SYNC_GROUP: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 6),
    ApiKey.LIST_GROUPS: (0, 5),
    ApiKey.DELETE_GROUPS: (0, 2),
    ApiKey.OFFSET_DELETE: (0, 0),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: (0, 1),
}

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_GROUP_ID = 24
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
GROUP_SUBSCRIBED_TO_TOPIC = 86
UNKNOWN_TOPIC_ID = 100

GROUP_KEY = 0
TRANSACTION_KEY = 1
_MAX_METADATA = 4096  # Kafka's offset.metadata.max.bytes
_ONE_MS = datetime.timedelta(milliseconds=1)
# Kafka's "authorized operations not requested" marker, and READ|DELETE|DESCRIBE on a group
_OPERATIONS_NOT_REQUESTED = -(2**31)
_GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)


def _reply(context: RequestContext, entity: Any) -> Reply:
    from kprod.cluster.engine import Reply

    return Reply(entity, context.frame.correlation_id)


def _ms(value: datetime.timedelta) -> int:
    return value // _ONE_MS


def _owner_error(engine: Engine, context: RequestContext, group_id: str) -> int:
    """NONE when this broker coordinates ``group_id``; the error to answer otherwise."""
    if context.injected_error:
        return context.injected_error
    coordinator = engine.groups.coordinator(group_id)
    if coordinator == context.node_id:
        return NONE
    return COORDINATOR_NOT_AVAILABLE if coordinator < 0 else NOT_COORDINATOR


# -- FindCoordinator --------------------------------------------------------------------


def handle_find_coordinator(engine: Engine, context: RequestContext) -> Reply:
    version = context.version
    module = response_module(ApiKey.FIND_COORDINATOR, version)
    request = context.request
    state = engine.state
    if version >= 4:
        keys = list(request.coordinator_keys)
    else:
        keys = [request.key]
    key_type = getattr(request, "key_type", GROUP_KEY)
    found = []
    for key in keys:
        node, message = -1, None
        if context.injected_error:
            code = context.injected_error
        elif key_type == GROUP_KEY:
            node = engine.groups.coordinator(key)
            code = NONE if node >= 0 else COORDINATOR_NOT_AVAILABLE
        elif key_type == TRANSACTION_KEY:
            code, message = COORDINATOR_NOT_AVAILABLE, "The embedded cluster has no transaction coordinator."
        else:
            code, message = INVALID_REQUEST, f"Key type {key_type} is not served by the embedded cluster."
        broker = state.brokers[node] if node >= 0 else None
        found.append((key, node, broker.host if broker else "", broker.port if broker else -1, code, message))
    throttle = millis(context.throttle_ms)
    if version >= 4:
        entity = module.FindCoordinatorResponse(
            throttle_time=throttle,
            coordinators=tuple(
                module.Coordinator(key=k, node_id=n, host=h, port=p, error_code=error(c), error_message=m)
                for k, n, h, p, c, m in found
            ),
        )
    else:
        _, node, host, port, code, message = found[0]
        entity = make(
            module.FindCoordinatorResponse,
            throttle_time=throttle,
            error_code=error(code),
            error_message=message,
            node_id=node,
            host=host,
            port=port,
        )
    return _reply(context, entity)


# -- JoinGroup / SyncGroup ----------------------------------------------------------------


def handle_join_group(engine: Engine, context: RequestContext) -> Reply | DeferredReply:
    version = context.version
    request = context.request
    module = response_module(ApiKey.JOIN_GROUP, version)

    def to_reply(result: JoinResult) -> Reply:
        members = tuple(
            make(module.JoinGroupResponseMember, member_id=m, group_instance_id=i, metadata=metadata)
            for m, i, metadata in result.members
        )
        entity = make(
            module.JoinGroupResponse,
            throttle_time=millis(context.throttle_ms),
            error_code=error(result.error),
            generation_id=result.generation,
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name if version >= 7 else result.protocol_name or "",
            leader=result.leader,
            skip_assignment=result.skip_assignment,
            member_id=result.member_id,
            members=members,
        )
        return _reply(context, entity)

    group_id = request.group_id
    code = INVALID_GROUP_ID if not group_id else _owner_error(engine, context, group_id)
    if code:
        return to_reply(JoinResult(code, request.member_id))
    session_ms = _ms(request.session_timeout)
    rebalance = getattr(request, "rebalance_timeout", None)
    deferred = DeferredReply()
    log.debug("broker %d: JoinGroup v%d %s member %r", context.node_id, version, group_id, request.member_id)
    engine.groups.join(
        group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        context.frame.client_id or "",
        "/" + engine.state.brokers[context.node_id].host,
        session_ms,
        _ms(rebalance) if rebalance is not None else session_ms,
        request.protocol_type,
        [(p.name, bytes(p.metadata)) for p in request.protocols],
        version >= 4,
        _resolver(deferred, to_reply),
    )
    return deferred


def _resolver(deferred: DeferredReply, to_reply: Callable[[Any], Reply]) -> Callable[[Any], None]:
    def resolve(result: Any) -> None:
        log.debug("answer: %s", result)
        deferred.resolve(to_reply(result))

    return resolve


def handle_sync_group(engine: Engine, context: RequestContext) -> Reply | DeferredReply:
    version = context.version
    request = context.request
    module = response_module(ApiKey.SYNC_GROUP, version)

    def to_reply(result: SyncResult) -> Reply:
        entity = make(
            module.SyncGroupResponse,
            throttle_time=millis(context.throttle_ms),
            error_code=error(result.error),
            protocol_type=result.protocol_type,
            protocol_name=result.protocol_name,
            assignment=result.assignment,
        )
        return _reply(context, entity)

    group_id = request.group_id
    code = INVALID_GROUP_ID if not group_id else _owner_error(engine, context, group_id)
    if code:
        return to_reply(SyncResult(code))
    deferred = DeferredReply()
    log.debug(
        "broker %d: SyncGroup v%d %s member %r generation %d", context.node_id, version, group_id,
        request.member_id, request.generation_id,
    )
    engine.groups.sync(
        group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        request.generation_id,
        getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
        {a.member_id: bytes(a.assignment) for a in request.assignments},
        _resolver(deferred, to_reply),
    )
    return deferred


# -- Heartbeat / LeaveGroup ----------------------------------------------------------------


def handle_heartbeat(engine: Engine, context: RequestContext) -> Reply:
    request = context.request
    module = response_module(ApiKey.HEARTBEAT, context.version)
    group_id = request.group_id
    code = INVALID_GROUP_ID if not group_id else _owner_error(engine, context, group_id)
    if not code:
        code = engine.groups.heartbeat(
            group_id, request.member_id, getattr(request, "group_instance_id", None), request.generation_id
        )
    log.debug("broker %d: Heartbeat %s member %r generation %d: %d", context.node_id, group_id,
              request.member_id, request.generation_id, code)
    entity = make(module.HeartbeatResponse, throttle_time=millis(context.throttle_ms), error_code=error(code))
    return _reply(context, entity)


def handle_leave_group(engine: Engine, context: RequestContext) -> Reply:
    version = context.version
    request = context.request
    module = response_module(ApiKey.LEAVE_GROUP, version)
    if version >= 3:
        leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        leaving = [(request.member_id, None)]
    group_id = request.group_id
    top = INVALID_GROUP_ID if not group_id else _owner_error(engine, context, group_id)
    codes = [top] * len(leaving) if top else engine.groups.leave(group_id, leaving)
    if version >= 3:
        entity = module.LeaveGroupResponse(
            throttle_time=millis(context.throttle_ms),
            error_code=error(top),
            members=tuple(
                module.MemberResponse(member_id=m, group_instance_id=i, error_code=error(c))
                for (m, i), c in zip(leaving, codes)
            ),
        )
    else:
        entity = make(module.LeaveGroupResponse, throttle_time=millis(context.throttle_ms), error_code=error(codes[0]))
    return _reply(context, entity)


# -- OffsetCommit / OffsetFetch / OffsetDelete -----------------------------------------------


def _topic_by_id(engine: Engine, topic_id: Any) -> Topic | None:
    for topic in engine.state.topics.values():
        if topic.topic_id == topic_id:
            return topic
    return None


def handle_offset_commit(engine: Engine, context: RequestContext) -> Reply:
    version = context.version
    request = context.request
    module = response_module(ApiKey.OFFSET_COMMIT, version)
    state = engine.state
    group_id = request.group_id
    code = _owner_error(engine, context, group_id)
    if not code:
        code = engine.groups.check_commit(
            group_id,
            request.member_id,
            getattr(request, "group_instance_id", None),
            request.generation_id_or_member_epoch,
        )
    by_id = version >= 10
    accepted: dict[tuple[str, int], tuple[int, int, str | None]] = {}
    topics_out = []
    for item in request.topics:
        topic = _topic_by_id(engine, item.topic_id) if by_id else state.topics.get(item.name)
        missing = UNKNOWN_TOPIC_ID if by_id else UNKNOWN_TOPIC_OR_PARTITION
        partitions_out = []
        for p in item.partitions:
            index = p.partition_index
            metadata = p.committed_metadata
            if code:
                result = code
            elif topic is None or not 0 <= index < len(topic.partitions):
                result = missing if topic is None else UNKNOWN_TOPIC_OR_PARTITION
            elif metadata is not None and len(metadata.encode()) > _MAX_METADATA:
                result = OFFSET_METADATA_TOO_LARGE
            else:
                result = NONE
                accepted[(topic.name, index)] = (
                    p.committed_offset,
                    getattr(p, "committed_leader_epoch", -1),
                    metadata,
                )
            partitions_out.append(
                module.OffsetCommitResponsePartition(partition_index=index, error_code=error(result))
            )
        topics_out.append(
            make(
                module.OffsetCommitResponseTopic,
                name=getattr(item, "name", None),
                topic_id=getattr(item, "topic_id", None),
                partitions=tuple(partitions_out),
            )
        )
    if accepted:
        engine.groups.commit(group_id, accepted)
    entity = make(module.OffsetCommitResponse, throttle_time=millis(context.throttle_ms), topics=tuple(topics_out))
    return _reply(context, entity)


def handle_offset_fetch(engine: Engine, context: RequestContext) -> Reply:
    version = context.version
    request = context.request
    module = response_module(ApiKey.OFFSET_FETCH, version)
    throttle = millis(context.throttle_ms)
    if version >= 8:
        groups_out = []
        for item in request.groups:
            code, topics = _fetch_group(engine, context, module, item.group_id, item.topics)
            groups_out.append(
                module.OffsetFetchResponseGroup(group_id=item.group_id, topics=topics, error_code=error(code))
            )
        entity = module.OffsetFetchResponse(throttle_time=throttle, groups=tuple(groups_out))
    else:
        code, topics = _fetch_group(engine, context, module, request.group_id, request.topics)
        entity = make(module.OffsetFetchResponse, throttle_time=throttle, topics=topics, error_code=error(code))
    return _reply(context, entity)


def _fetch_group(
    engine: Engine, context: RequestContext, module: Any, group_id: str, wanted: Any
) -> tuple[int, tuple[Any, ...]]:
    """(group error, response topics) for one group of an OffsetFetch."""
    version = context.version
    by_id = version >= 10
    topic_cls = getattr(module, "OffsetFetchResponseTopics", None) or module.OffsetFetchResponseTopic
    partition_cls = getattr(module, "OffsetFetchResponsePartitions", None) or module.OffsetFetchResponsePartition
    code = _owner_error(engine, context, group_id)
    committed = engine.groups.committed(group_id) if not code else {}
    state = engine.state
    requested: list[tuple[Any, str | None, list[int]]] = []  # (key as sent, topic name, partitions)
    if wanted is None:
        for committed_topic in sorted({topic for topic, _ in committed}):
            topic = state.topics.get(committed_topic)
            if by_id and topic is None:
                continue
            key = topic.topic_id if by_id and topic is not None else committed_topic
            requested.append((key, committed_topic, sorted(p for t, p in committed if t == committed_topic)))
    else:
        for item in wanted:
            if by_id:
                topic = _topic_by_id(engine, item.topic_id)
                requested.append((item.topic_id, topic.name if topic is not None else None, list(item.partition_indexes)))
            else:
                requested.append((item.name, item.name, list(item.partition_indexes)))
    # Before v2 there is no group-level error: it goes into every partition.
    partition_error = code if version < 2 else NONE
    topics_out = []
    for key, name, partitions in requested:
        partitions_out = []
        for index in partitions:
            found = committed.get((name, index)) if name is not None else None
            result = partition_error or (UNKNOWN_TOPIC_ID if name is None else NONE)
            partitions_out.append(
                make(
                    partition_cls,
                    partition_index=index,
                    committed_offset=found.offset if found else -1,
                    committed_leader_epoch=found.leader_epoch if found else -1,
                    metadata=(found.metadata if found else "") if not result else "",
                    error_code=error(result),
                )
            )
        topics_out.append(
            make(topic_cls, name=key if not by_id else None, topic_id=key if by_id else None, partitions=tuple(partitions_out))
        )
    return code, tuple(topics_out)


def handle_offset_delete(engine: Engine, context: RequestContext) -> Reply:
    request = context.request
    module = response_module(ApiKey.OFFSET_DELETE, context.version)
    group_id = request.group_id
    code = _owner_error(engine, context, group_id)
    group = engine.groups.groups.get(group_id) if not code else None
    if not code and group is None:
        code = GROUP_ID_NOT_FOUND
    topics_out = []
    if not code and group is not None:
        subscribed = group.subscribed_topics()
        deleted = []
        for item in request.topics:
            topic = engine.state.topics.get(item.name)
            partitions_out = []
            for p in item.partitions:
                index = p.partition_index
                if topic is None or not 0 <= index < len(topic.partitions):
                    result = UNKNOWN_TOPIC_OR_PARTITION
                elif subscribed is None or item.name in subscribed:
                    result = GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    result = NONE
                    deleted.append((item.name, index))
                partitions_out.append(
                    module.OffsetDeleteResponsePartition(partition_index=index, error_code=error(result))
                )
            topics_out.append(module.OffsetDeleteResponseTopic(name=item.name, partitions=tuple(partitions_out)))
        engine.groups.delete_offsets(group_id, deleted)
    entity = module.OffsetDeleteResponse(
        error_code=error(code), throttle_time=millis(context.throttle_ms), topics=tuple(topics_out)
    )
    return _reply(context, entity)


# -- ListGroups / DescribeGroups / DeleteGroups ----------------------------------------------


def handle_list_groups(engine: Engine, context: RequestContext) -> Reply:
    request = context.request
    module = response_module(ApiKey.LIST_GROUPS, context.version)
    states = {s.lower() for s in getattr(request, "states_filter", ())}
    types = {t.lower() for t in getattr(request, "types_filter", ())}
    listed = []
    if not context.injected_error:
        coordinator = engine.groups
        for group in coordinator.groups.values():
            if coordinator.coordinator(group.group_id) != context.node_id:
                continue
            if types and group.group_type not in types:
                continue
            if states and group.state.lower() not in states:
                continue
            listed.append(
                make(
                    module.ListedGroup,
                    group_id=group.group_id,
                    protocol_type=group.protocol_type or "",
                    group_state=group.state,
                    group_type=group.group_type,
                )
            )
    entity = make(
        module.ListGroupsResponse,
        throttle_time=millis(context.throttle_ms),
        error_code=error(context.injected_error),
        groups=tuple(listed),
    )
    return _reply(context, entity)


def handle_describe_groups(engine: Engine, context: RequestContext) -> Reply:
    version = context.version
    request = context.request
    module = response_module(ApiKey.DESCRIBE_GROUPS, version)
    operations = _GROUP_OPERATIONS if getattr(request, "include_authorized_operations", False) else _OPERATIONS_NOT_REQUESTED
    described = []
    for group_id in request.groups:
        code = _owner_error(engine, context, group_id)
        message = None
        group = engine.groups.groups.get(group_id) if not code else None
        state, protocol_type, protocol, members = "", "", "", ()
        if not code:
            state = "Dead"
            if group is None and version >= 6:
                code, message = GROUP_ID_NOT_FOUND, f"Group {group_id} not found."
        if group is not None:
            state, protocol_type = group.state, group.protocol_type or ""
            stable = group.state == STABLE
            protocol = (group.protocol_name or "") if stable else ""
            members = tuple(
                make(
                    module.DescribedGroupMember,
                    member_id=m.member_id,
                    group_instance_id=m.instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    member_metadata=m.metadata(group.protocol_name) if stable else b"",
                    member_assignment=m.assignment if stable else b"",
                )
                for m in group.members.values()
            )
            if group.consumer is not None:  # KIP-848 members: their partitions as a classic Assignment
                members = tuple(
                    make(module.DescribedGroupMember, member_id=m.member_id, group_instance_id=m.instance_id,
                         client_id=m.client_id, client_host=m.client_host, member_metadata=b"",
                         member_assignment=assignment_bytes(m.assigned))
                    for m in group.consumer.members.values()
                )
        described.append(
            make(
                module.DescribedGroup,
                error_code=error(code),
                error_message=message,
                group_id=group_id,
                group_state=state,
                protocol_type=protocol_type,
                protocol_data=protocol,
                members=members,
                authorized_operations=operations,
            )
        )
    entity = make(module.DescribeGroupsResponse, throttle_time=millis(context.throttle_ms), groups=tuple(described))
    return _reply(context, entity)


def handle_delete_groups(engine: Engine, context: RequestContext) -> Reply:
    request = context.request
    module = response_module(ApiKey.DELETE_GROUPS, context.version)
    results = []
    for group_id in request.groups_names:
        code = _owner_error(engine, context, group_id) or engine.groups.delete_group(group_id)
        results.append(module.DeletableGroupResult(group_id=group_id, error_code=error(code)))
    entity = module.DeleteGroupsResponse(throttle_time=millis(context.throttle_ms), results=tuple(results))
    return _reply(context, entity)


# -- ConsumerGroupHeartbeat (KIP-848) ------------------------------------------------------------


def handle_consumer_group_heartbeat(engine: Engine, context: RequestContext) -> Reply:
    request = context.request
    module = response_module(ApiKey.CONSUMER_GROUP_HEARTBEAT, context.version)
    state = engine.state
    group_id = request.group_id
    code = INVALID_GROUP_ID if not group_id else _owner_error(engine, context, group_id)
    result = None
    if not code:
        owned: list[tuple[str, int]] | None = None
        if request.topic_partitions is not None:
            owned = []
            for item in request.topic_partitions:
                topic = _topic_by_id(engine, item.topic_id)
                if topic is not None:
                    owned.extend((topic.name, p) for p in item.partitions)
        result = engine.groups.consumer_heartbeat(
            group_id,
            request.member_id,
            request.member_epoch,
            request.instance_id,
            context.frame.client_id or "",
            "/" + state.brokers[context.node_id].host,
            _ms(request.rebalance_timeout),
            request.subscribed_topic_names,
            request.server_assignor,
            owned,
        )
        code = result.error
    assignment = None
    if result is not None and result.assignment is not None and not code:
        by_topic: dict[str, list[int]] = {}
        for topic_name, index in sorted(result.assignment):
            by_topic.setdefault(topic_name, []).append(index)
        assignment = module.Assignment(
            topic_partitions=tuple(
                module.TopicPartitions(topic_id=state.topics[name].topic_id, partitions=tuple(parts))
                for name, parts in by_topic.items()
                if name in state.topics
            )
        )
    log.debug("broker %d: ConsumerGroupHeartbeat %s member %r epoch %d: %s", context.node_id, group_id,
              request.member_id, request.member_epoch, result)
    entity = module.ConsumerGroupHeartbeatResponse(
        throttle_time=millis(context.throttle_ms),
        error_code=error(code),
        error_message=result.message if result is not None else None,
        member_id=result.member_id if result is not None and not code else None,
        member_epoch=result.member_epoch if result is not None else -1,
        heartbeat_interval=millis(engine.state.config.group_consumer_heartbeat_interval_ms),
        assignment=assignment,
    )
    return _reply(context, entity)
