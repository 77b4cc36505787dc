"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: topic settings read and changed.

Topic resources hold the keys of :mod:`kprod.cluster.config`; a change takes
effect at once (retention is applied on the next append, ``max.message.bytes``
and ``min.insync.replicas`` on the next Produce). Broker resources are
described (every broker shares the cluster's settings) but fixed at start:
altering one answers INVALID_REQUEST. An alteration of several resources is
checked per resource, and a refused resource changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kprod.cluster.config import ConfigEntry, describe_broker_config, describe_topic_config
from kprod.cluster.entities import error, make, millis
from kprod.cluster.state import TopicRequestError
from kprod.protocol.messages import response_module

if TYPE_CHECKING:
    from kprod.cluster.engine import Engine, Reply, RequestContext

__all__ = ["handle_alter_configs", "handle_describe_configs", "handle_incremental_alter_configs"]

DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
INCREMENTAL_ALTER_CONFIGS = 44

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_CONFIG = 40
INVALID_REQUEST = 42

TOPIC = 2
BROKER = 4

# IncrementalAlterConfigs operations
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def _reply(context: RequestContext, entity: Any) -> Reply:
    from kprod.cluster.engine import Reply

    return Reply(entity, context.frame.correlation_id)


def _entries(engine: Engine, resource_type: int, name: str) -> list[ConfigEntry]:
    """The settings of one resource, or TopicRequestError."""
    state = engine.state
    if resource_type == TOPIC:
        return describe_topic_config(state.topic(name).overrides, state.config)
    if resource_type == BROKER:
        if name != "":
            try:
                state.broker(int(name))
            except Exception:
                raise TopicRequestError(INVALID_REQUEST, f"There is no broker {name!r}; brokers are {sorted(state.brokers)}.") from None
        return describe_broker_config(state.config)
    raise TopicRequestError(
        INVALID_REQUEST, f"Resource type {resource_type} is not served: only topics (2) and brokers (4)."
    )


def handle_describe_configs(engine: Engine, context: RequestContext) -> Reply:
    version = context.version
    request = context.request
    module = response_module(DESCRIBE_CONFIGS, version)
    with_synonyms = bool(getattr(request, "include_synonyms", False))
    results = []
    for resource in request.resources:
        code, message, configs = context.injected_error, None, ()
        if not code:
            try:
                entries = _entries(engine, resource.resource_type, resource.resource_name)
                wanted = resource.configuration_keys
                configs = tuple(
                    make(
                        module.DescribeConfigsResourceResult,
                        name=e.name,
                        value=e.value,
                        read_only=resource.resource_type == BROKER,
                        config_source=e.source,
                        is_default=e.source == 5,
                        is_sensitive=False,
                        synonyms=tuple(
                            module.DescribeConfigsSynonym(name=n, value=v, source=s) for n, v, s in e.synonyms
                        )
                        if with_synonyms
                        else (),
                        config_type=e.config_type,
                        documentation=None,
                    )
                    for e in entries
                    if wanted is None or e.name in wanted
                )
            except TopicRequestError as exc:
                code, message = exc.code, str(exc)
        results.append(
            module.DescribeConfigsResult(
                error_code=error(code),
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    entity = module.DescribeConfigsResponse(throttle_time=millis(context.throttle_ms), results=tuple(results))
    return _reply(context, entity)


def _alter(
    engine: Engine,
    context: RequestContext,
    api_key: int,
    new_overrides: Callable[[Any, dict[str, str]], dict[str, str]],
) -> Reply:
    state = engine.state
    request = context.request
    module = response_module(api_key, context.version)
    validate_only = bool(request.validate_only)
    responses = []
    for resource in request.resources:
        code, message = context.injected_error, None
        if not code:
            try:
                if resource.resource_type == BROKER:
                    raise TopicRequestError(
                        INVALID_REQUEST, "The embedded cluster's broker settings are fixed when it starts."
                    )
                if resource.resource_type != TOPIC:
                    raise TopicRequestError(
                        INVALID_REQUEST, f"Resource type {resource.resource_type} is not served: only topics (2)."
                    )
                topic = state.topic(resource.resource_name)
                overrides = new_overrides(resource, dict(topic.overrides))
                state.set_topic_config(topic.name, overrides, validate_only=validate_only)
            except TopicRequestError as exc:
                code, message = exc.code, str(exc)
        responses.append(
            module.AlterConfigsResourceResponse(
                error_code=error(code),
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
        )
    entity = make(getattr(module, _RESPONSE[api_key]), throttle_time=millis(context.throttle_ms), responses=tuple(responses))
    return _reply(context, entity)


_RESPONSE = {ALTER_CONFIGS: "AlterConfigsResponse", INCREMENTAL_ALTER_CONFIGS: "IncrementalAlterConfigsResponse"}


def handle_alter_configs(engine: Engine, context: RequestContext) -> Reply:
    """AlterConfigs: the given keys become the topic's whole set of overrides."""

    def replace_all(resource: Any, overrides: dict[str, str]) -> dict[str, str]:
        return {c.name: c.value for c in resource.configs if c.value is not None}

    return _alter(engine, context, ALTER_CONFIGS, replace_all)


def _incremental(resource: Any, overrides: dict[str, str], default_policy: str) -> dict[str, str]:
    names = [c.name for c in resource.configs]
    if len(set(names)) != len(names):
        raise TopicRequestError(INVALID_REQUEST, f"A key appears more than once among {names}.")
    for change in resource.configs:
        operation, key, value = change.config_operation, change.name, change.value
        if operation == SET:
            if value is None:
                raise TopicRequestError(INVALID_REQUEST, f"SET {key} needs a value.")
            overrides[key] = value
        elif operation == DELETE:
            overrides.pop(key, None)
        elif operation in (APPEND, SUBTRACT):
            if key != "cleanup.policy":
                raise TopicRequestError(INVALID_CONFIG, f"{key} is not a list: APPEND and SUBTRACT apply to cleanup.policy.")
            current = overrides.get(key, default_policy)
            items = [p for p in current.split(",") if p]
            given = [p.strip() for p in (value or "").split(",") if p.strip()]
            if operation == APPEND:
                items += [p for p in given if p not in items]
            else:
                items = [p for p in items if p not in given]
            if not items:
                raise TopicRequestError(INVALID_CONFIG, "cleanup.policy cannot become empty.")
            overrides[key] = ",".join(items)
        else:
            raise TopicRequestError(INVALID_REQUEST, f"Unknown config operation {operation} for {key}.")
    return overrides


def handle_incremental_alter_configs(engine: Engine, context: RequestContext) -> Reply:
    """IncrementalAlterConfigs: SET, DELETE (back to the default), APPEND / SUBTRACT (lists)."""
    default_policy = engine.state.config.topic_defaults.cleanup_policy

    def apply(resource: Any, overrides: dict[str, str]) -> dict[str, str]:
        return _incremental(resource, overrides, default_policy)

    return _alter(engine, context, INCREMENTAL_ALTER_CONFIGS, apply)
