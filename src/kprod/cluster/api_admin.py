"""ApiVersions, Metadata, CreateTopics, DeleteTopics, InitProducerId.

Everything a client asks before it produces or fetches (FindCoordinator is
with the group APIs, in :mod:`kprod.cluster.api_group`). Transactions are not
served: InitProducerId with a transactional id answers INVALID_REQUEST so a
transactional producer fails at once instead of waiting.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from kprod.cluster.entities import error, make, millis
from kprod.cluster.state import TopicRequestError, check_topic_name
from kprod.protocol.framing import RequestFrame
from kprod.protocol.messages import ApiKey, response_module, response_type

if TYPE_CHECKING:
    from kprod.cluster.engine import Engine, Reply, RequestContext

__all__ = [
    "api_versions_fallback",
    "handle_api_versions",
    "handle_create_topics",
    "handle_delete_topics",
    "handle_init_producer_id",
    "handle_metadata",
]

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
UNKNOWN_TOPIC_ID = 100
_ZERO_UUID = uuid.UUID(int=0)
_SOFTWARE_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")
# Kafka's "authorized operations not requested" marker
_OPERATIONS_NOT_REQUESTED = -(2**31)
_DEFAULT_CONFIG_SOURCE = 5


def _reply(context: RequestContext, entity: Any) -> Reply:
    from kprod.cluster.engine import Reply

    return Reply(entity, context.frame.correlation_id)


# -- ApiVersions --------------------------------------------------------------------


def _api_keys(module: Any, advertised: dict[int, tuple[int, int]]) -> tuple[Any, ...]:
    return tuple(
        module.ApiVersion(api_key=key, min_version=low, max_version=high)
        for key, (low, high) in sorted(advertised.items())
    )


def api_versions_fallback(frame: RequestFrame) -> Reply:
    """The KIP-511 answer to an ApiVersions version we cannot read: a v0 body with our range."""
    from kprod.cluster.engine import ADVERTISED_VERSIONS, Reply

    module = response_module(ApiKey.API_VERSIONS, 0)
    low, high = ADVERTISED_VERSIONS[ApiKey.API_VERSIONS]
    entity = module.ApiVersionsResponse(
        error_code=error(UNSUPPORTED_VERSION),
        api_keys=(module.ApiVersion(api_key=ApiKey.API_VERSIONS, min_version=low, max_version=high),),
    )
    return Reply(entity, frame.correlation_id)


def handle_api_versions(engine: Engine, context: RequestContext) -> Reply:
    version = context.version
    module = response_module(ApiKey.API_VERSIONS, version)
    code = context.injected_error
    request = context.request
    if not code and version >= 3:
        for value in (request.client_software_name, request.client_software_version):
            if not _SOFTWARE_NAME.fullmatch(value or ""):
                code = INVALID_REQUEST
    entity = make(
        module.ApiVersionsResponse,
        error_code=error(code),
        api_keys=_api_keys(module, engine.advertised),
        throttle_time=millis(context.throttle_ms),
    )
    return _reply(context, entity)


# -- Metadata ------------------------------------------------------------------------


def _requested_topics(engine: Engine, request: Any) -> list[tuple[str | None, Any]]:
    """(name, topic id) of each requested topic; None for "all topics"."""
    names: list[tuple[str | None, Any]] = []
    for item in request.topics:
        name = item.name
        topic_id = getattr(item, "topic_id", _ZERO_UUID)
        if name is None and topic_id != _ZERO_UUID:
            for topic in engine.state.topics.values():
                if topic.topic_id == topic_id:
                    name = topic.name
                    break
        names.append((name, topic_id))
    return names


def handle_metadata(engine: Engine, context: RequestContext) -> Reply:
    state = engine.state
    version = context.version
    request = context.request
    module = response_module(ApiKey.METADATA, version)
    allow_auto = getattr(request, "allow_auto_topic_creation", True) and state.config.auto_create_topics
    injected = context.injected_error

    if request.topics is None or (version == 0 and not request.topics):  # v0: empty means all
        wanted: list[tuple[str | None, Any]] = [(name, None) for name in sorted(state.topics)]
    else:
        wanted = _requested_topics(engine, request)

    topic_cls = module.MetadataResponseTopic
    partition_cls = module.MetadataResponsePartition
    topics_out = []
    for name, topic_id in wanted:
        topic = state.topics.get(name) if name is not None else None
        code = NONE
        if topic is None and name is not None:
            try:
                check_topic_name(name)
                if allow_auto:
                    topic = state.create_topic(name)
                else:
                    code = UNKNOWN_TOPIC_OR_PARTITION
            except TopicRequestError as exc:
                code = exc.code
        elif topic is None:
            code = UNKNOWN_TOPIC_ID
        if injected:
            code = injected
        partitions_out: tuple[Any, ...] = ()
        if topic is not None and not injected:
            partitions_out = tuple(
                make(
                    partition_cls,
                    error_code=error(NONE if p.leader >= 0 else LEADER_NOT_AVAILABLE),
                    partition_index=p.index,
                    leader_id=p.leader,
                    leader_epoch=p.leader_epoch,
                    replica_nodes=p.replicas,
                    isr_nodes=tuple(p.isr),
                    offline_replicas=tuple(r for r in p.replicas if not state.brokers[r].running),
                )
                for p in topic.partitions
            )
        topics_out.append(
            make(
                topic_cls,
                error_code=error(code),
                name=name,
                topic_id=topic.topic_id if topic is not None else (topic_id or _ZERO_UUID),
                is_internal=False,
                partitions=partitions_out,
                topic_authorized_operations=_OPERATIONS_NOT_REQUESTED,
            )
        )
    brokers = tuple(
        make(module.MetadataResponseBroker, node_id=b.node_id, host=b.host, port=b.port, rack=None)
        for b in state.brokers.values()
        if b.running
    )
    entity = make(
        module.MetadataResponse,
        throttle_time=millis(context.throttle_ms),
        brokers=brokers,
        cluster_id=state.cluster_id,
        controller_id=state.controller_id(),
        topics=tuple(topics_out),
        cluster_authorized_operations=_OPERATIONS_NOT_REQUESTED,
    )
    return _reply(context, entity)


# -- CreateTopics / DeleteTopics ------------------------------------------------------


def handle_create_topics(engine: Engine, context: RequestContext) -> Reply:
    state = engine.state
    version = context.version
    request = context.request
    module = response_module(ApiKey.CREATE_TOPICS, version)
    names = [t.name for t in request.topics]
    duplicates = {n for n in names if names.count(n) > 1}
    validate_only = bool(getattr(request, "validate_only", False))
    results = []
    for item in request.topics:
        created = None
        message: str | None = None
        if context.injected_error:
            code = context.injected_error
        elif item.name in duplicates:
            code, message = INVALID_REQUEST, f"Topic {item.name!r} appears more than once in the request."
        else:
            try:
                created = state.create_topic(
                    item.name,
                    item.num_partitions,
                    item.replication_factor,
                    {c.name: c.value for c in item.configs},
                    {a.partition_index: tuple(a.broker_ids) for a in item.assignments},
                    validate_only=validate_only,
                )
                code = NONE
            except TopicRequestError as exc:
                code, message = exc.code, str(exc)
        configs = None
        if created is not None and hasattr(module, "CreatableTopicConfigs"):
            configs = tuple(
                module.CreatableTopicConfigs(
                    name=key, value=value, read_only=False, config_source=_DEFAULT_CONFIG_SOURCE, is_sensitive=False
                )
                for key, value in created.config.as_kafka().items()
            )
        results.append(
            make(
                module.CreatableTopicResult,
                name=item.name,
                topic_id=created.topic_id if created is not None else _ZERO_UUID,
                error_code=error(code),
                error_message=message,
                num_partitions=len(created.partitions) if created is not None else -1,
                replication_factor=len(created.partitions[0].replicas) if created is not None else -1,
                configs=configs,
            )
        )
    entity = make(module.CreateTopicsResponse, throttle_time=millis(context.throttle_ms), topics=tuple(results))
    return _reply(context, entity)


def handle_delete_topics(engine: Engine, context: RequestContext) -> Reply:
    state = engine.state
    version = context.version
    request = context.request
    module = response_module(ApiKey.DELETE_TOPICS, version)
    if version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = []
    for name, topic_id in wanted:
        message = None
        if name is None and topic_id is not None:
            name = next((t.name for t in state.topics.values() if t.topic_id == topic_id), None)
        if context.injected_error:
            code = context.injected_error
        elif name is None:
            code, message = UNKNOWN_TOPIC_ID, f"No topic has id {topic_id}."
        else:
            try:
                state.delete_topic(name)
                code = NONE
            except TopicRequestError as exc:
                code, message = exc.code, str(exc)
        results.append(
            make(
                module.DeletableTopicResult,
                name=name,
                topic_id=topic_id or _ZERO_UUID,
                error_code=error(code),
                error_message=message,
            )
        )
    entity = make(module.DeleteTopicsResponse, throttle_time=millis(context.throttle_ms), responses=tuple(results))
    return _reply(context, entity)


# -- InitProducerId -------------------------------------------------------------------


def handle_init_producer_id(engine: Engine, context: RequestContext) -> Reply:
    cls = response_type(ApiKey.INIT_PRODUCER_ID, context.version)
    code = context.injected_error
    if not code and context.request.transactional_id is not None:
        code = INVALID_REQUEST  # transactions are not served by the embedded cluster
    if code:
        entity = cls(throttle_time=millis(context.throttle_ms), error_code=error(code), producer_id=-1, producer_epoch=-1)
    else:
        # Kafka gives an idempotent-only producer a fresh id at epoch 0, whatever it sends.
        entity = cls(
            throttle_time=millis(context.throttle_ms),
            error_code=error(NONE),
            producer_id=engine.state.allocate_producer_id(),
            producer_epoch=0,
        )
    return _reply(context, entity)
