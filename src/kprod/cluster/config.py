"""Cluster-wide and per-topic settings, under Kafka's own key names.

The embedded cluster takes the broker keys a Kafka operator would set
(``num.partitions``, ``min.insync.replicas``, ...) so a test reads like the
production config it stands in for. Keys it does not implement are refused
with the list of those it does, instead of being silently ignored.

Defaults follow Kafka, except ``log.retention.bytes``: Kafka keeps everything
by default, but this cluster holds logs in memory, so each partition keeps at
most 64 MiB (the oldest batches go first) unless told otherwise; and
``group.initial.rebalance.delay.ms`` is 0, as in the ``server.properties``
Kafka ships for development, so a test's first rebalance does not wait 3 s.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from kprod.cluster.exceptions import ClusterError

__all__ = [
    "BrokerConfig",
    "TopicConfig",
    "CREATE_TIME",
    "LOG_APPEND_TIME",
    "DEFAULT_RETENTION_BYTES",
    "parse_broker_config",
    "parse_topic_config",
]

CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"
DEFAULT_RETENTION_BYTES = 64 * 1024 * 1024
_KAFKA_MESSAGE_MAX_BYTES = 1048588
_TIMESTAMP_TYPES = (CREATE_TIME, LOG_APPEND_TIME)


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The settings of one topic that the cluster enforces."""

    min_insync_replicas: int = 1
    max_message_bytes: int = _KAFKA_MESSAGE_MAX_BYTES
    message_timestamp_type: str = CREATE_TIME
    retention_bytes: int = DEFAULT_RETENTION_BYTES

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == LOG_APPEND_TIME

    def as_kafka(self) -> dict[str, str]:
        """Key/value strings as Kafka's DescribeConfigs or CreateTopics would list them."""
        return {
            "min.insync.replicas": str(self.min_insync_replicas),
            "max.message.bytes": str(self.max_message_bytes),
            "message.timestamp.type": self.message_timestamp_type,
            "retention.bytes": str(self.retention_bytes),
        }


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Cluster-wide settings (every broker of the embedded cluster shares them)."""

    auto_create_topics: bool = True
    num_partitions: int = 1
    default_replication_factor: int = 1
    topic_defaults: TopicConfig = TopicConfig()
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1800000
    group_initial_rebalance_delay_ms: int = 0
    offsets_topic_num_partitions: int = 50
    group_consumer_session_timeout_ms: int = 45000
    group_consumer_heartbeat_interval_ms: int = 5000


# topic key -> TopicConfig field
_TOPIC_KEYS = {
    "min.insync.replicas": "min_insync_replicas",
    "max.message.bytes": "max_message_bytes",
    "message.timestamp.type": "message_timestamp_type",
    "retention.bytes": "retention_bytes",
}
# Kafka topic keys accepted for compatibility with tools that always send them;
# the value they must hold (None: any value) and no effect here.
_TOPIC_KEYS_WITHOUT_EFFECT: dict[str, str | None] = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "retention.ms": None,
    "segment.bytes": None,
    "segment.ms": None,
}
# broker key -> topic key whose cluster-wide default it sets
_BROKER_TOPIC_DEFAULTS = {
    "min.insync.replicas": "min.insync.replicas",
    "message.max.bytes": "max.message.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.retention.bytes": "retention.bytes",
}
# broker key -> (BrokerConfig field, minimum): the group coordinator's settings
_BROKER_INT_KEYS = {
    "group.min.session.timeout.ms": ("group_min_session_timeout_ms", 1),
    "group.max.session.timeout.ms": ("group_max_session_timeout_ms", 1),
    "group.initial.rebalance.delay.ms": ("group_initial_rebalance_delay_ms", 0),
    "offsets.topic.num.partitions": ("offsets_topic_num_partitions", 1),
    "group.consumer.session.timeout.ms": ("group_consumer_session_timeout_ms", 1),
    "group.consumer.heartbeat.interval.ms": ("group_consumer_heartbeat_interval_ms", 1),
}
_BROKER_KEYS = (
    "auto.create.topics.enable",
    "num.partitions",
    "default.replication.factor",
    *_BROKER_TOPIC_DEFAULTS,
    *_BROKER_INT_KEYS,
)


def _unknown_key(kind: str, key: str, known: list[str]) -> ClusterError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ClusterError(
        f"Unknown {kind} config {key!r}.{hint} The embedded cluster supports: {', '.join(sorted(known))}."
    )


def _as_int(kind: str, key: str, value: Any, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ClusterError(f"{kind} config {key}={value!r} is not an integer.") from None
    if number < minimum:
        raise ClusterError(f"{kind} config {key}={number} is below its minimum {minimum}.")
    return number


def _set_topic_key(config: TopicConfig, key: str, value: Any, kind: str) -> TopicConfig:
    field = _TOPIC_KEYS[key]
    if key == "message.timestamp.type":
        text = str(value).strip()
        if text not in _TIMESTAMP_TYPES:
            raise ClusterError(f"{kind} config {key}={value!r} must be {CREATE_TIME!r} or {LOG_APPEND_TIME!r}.")
        changes: dict[str, Any] = {field: text}
    elif key == "retention.bytes":
        changes = {field: _as_int(kind, key, value, -1)}
    else:
        minimum = 1 if key == "min.insync.replicas" else 0
        changes = {field: _as_int(kind, key, value, minimum)}
    return replace(config, **changes)


def parse_topic_config(values: Mapping[str, Any] | None, defaults: TopicConfig) -> TopicConfig:
    """A topic's settings: ``defaults`` overridden by Kafka topic keys in ``values``.

    Raises ``ClusterError`` naming the key for an unknown key or a bad value.
    """
    config = defaults
    for key, value in (values or {}).items():
        if key in _TOPIC_KEYS:
            if value is None:
                continue  # Kafka: a null value means "use the default"
            config = _set_topic_key(config, key, value, "topic")
        elif key in _TOPIC_KEYS_WITHOUT_EFFECT:
            required = _TOPIC_KEYS_WITHOUT_EFFECT[key]
            if required is not None and value is not None and str(value) != required:
                raise ClusterError(
                    f"topic config {key}={value!r} is not supported by the embedded cluster: only {required!r}."
                )
        else:
            raise _unknown_key("topic", key, [*_TOPIC_KEYS, *_TOPIC_KEYS_WITHOUT_EFFECT])
    return config


def parse_broker_config(values: Mapping[str, Any] | None) -> BrokerConfig:
    """The cluster-wide settings from Kafka broker keys (``num.partitions``, ...)."""
    config = BrokerConfig()
    topic = config.topic_defaults
    for key, value in (values or {}).items():
        if key == "auto.create.topics.enable":
            text = str(value).strip().lower()
            if text not in ("true", "false"):
                raise ClusterError(f"broker config {key}={value!r} must be true or false.")
            config = replace(config, auto_create_topics=text == "true")
        elif key == "num.partitions":
            config = replace(config, num_partitions=_as_int("broker", key, value, 1))
        elif key == "default.replication.factor":
            config = replace(config, default_replication_factor=_as_int("broker", key, value, 1))
        elif key in _BROKER_TOPIC_DEFAULTS:
            topic = _set_topic_key(topic, _BROKER_TOPIC_DEFAULTS[key], value, "broker")
        elif key in _BROKER_INT_KEYS:
            field, minimum = _BROKER_INT_KEYS[key]
            config = replace(config, **{field: _as_int("broker", key, value, minimum)})  # type: ignore[arg-type]
        else:
            raise _unknown_key("broker", key, list(_BROKER_KEYS))
    if config.group_min_session_timeout_ms > config.group_max_session_timeout_ms:
        raise ClusterError(
            f"broker config group.min.session.timeout.ms={config.group_min_session_timeout_ms} is above"
            f" group.max.session.timeout.ms={config.group_max_session_timeout_ms}."
        )
    return replace(config, topic_defaults=topic)
