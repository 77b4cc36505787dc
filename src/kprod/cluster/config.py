"""Cluster-wide and per-topic settings, under Kafka's own key names.

The embedded cluster takes the broker keys a Kafka operator would set
(``num.partitions``, ``min.insync.replicas``, ...) so a test reads like the
production config it stands in for. Keys it does not implement are refused
with the list of those it does, instead of being silently ignored.

Defaults follow Kafka, except three settings. ``log.retention.bytes``:
Kafka keeps everything by default, but this cluster holds logs in memory, so
each partition keeps at most 64 MiB (the oldest batches go first) unless told
otherwise. ``log.retention.ms``: Kafka's 7 days would delete the fixed, old
timestamps tests like to write, so time-based retention is off (-1) unless set.
``group.initial.rebalance.delay.ms`` is 0, as in the ``server.properties``
Kafka ships for development, so a test's first rebalance does not wait 3 s.

:func:`describe_topic_config` lists a topic's settings the way DescribeConfigs
does: every key with its value and where the value comes from (set on the
topic, set on the cluster, or the default).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from kprod.cluster.exceptions import ClusterError

__all__ = [
    "BrokerConfig",
    "ConfigEntry",
    "TopicConfig",
    "describe_broker_config",
    "describe_topic_config",
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
_CLEANUP_POLICIES = ("delete", "compact")

# DescribeConfigs config sources and types (Kafka's ConfigSource / ConfigType ids)
SOURCE_TOPIC = 1  # DYNAMIC_TOPIC_CONFIG
SOURCE_BROKER = 4  # STATIC_BROKER_CONFIG
SOURCE_DEFAULT = 5  # DEFAULT_CONFIG
TYPE_BOOLEAN, TYPE_STRING, TYPE_INT, TYPE_LONG, TYPE_LIST = 1, 2, 3, 5, 7


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The settings of one topic that the cluster enforces."""

    min_insync_replicas: int = 1
    max_message_bytes: int = _KAFKA_MESSAGE_MAX_BYTES
    message_timestamp_type: str = CREATE_TIME
    retention_bytes: int = DEFAULT_RETENTION_BYTES
    retention_ms: int = -1
    cleanup_policy: str = "delete"

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == LOG_APPEND_TIME

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    def as_kafka(self) -> dict[str, str]:
        """Key/value strings of the enforced settings, as CreateTopics lists them."""
        return {key: str(getattr(self, field)) for key, field in _TOPIC_KEYS.items()}


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Cluster-wide settings (every broker of the embedded cluster shares them)."""

    auto_create_topics: bool = True
    num_partitions: int = 1
    default_replication_factor: int = 1
    topic_defaults: TopicConfig = TopicConfig()
    #: ``connections.max.reauth.ms``: SASL session lifetime (0: sessions never expire)
    max_reauth_ms: int = 0
    given: tuple[tuple[str, str], ...] = ()  # the broker keys set at start, as strings
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
    "retention.ms": "retention_ms",
    "cleanup.policy": "cleanup_policy",
}
_TOPIC_KEY_TYPES = {
    "min.insync.replicas": TYPE_INT,
    "max.message.bytes": TYPE_INT,
    "message.timestamp.type": TYPE_STRING,
    "retention.bytes": TYPE_LONG,
    "retention.ms": TYPE_LONG,
    "cleanup.policy": TYPE_LIST,
    "compression.type": TYPE_STRING,
    "segment.bytes": TYPE_INT,
    "segment.ms": TYPE_LONG,
}
# Kafka topic keys accepted for compatibility with tools that always send them;
# the value they must hold (None: any value) and no effect here.
_TOPIC_KEYS_WITHOUT_EFFECT: dict[str, str | None] = {
    "compression.type": "producer",
    "segment.bytes": None,
    "segment.ms": None,
}
# Kafka's defaults of the keys without effect (shown by DescribeConfigs)
_DEFAULTS_WITHOUT_EFFECT = {"compression.type": "producer", "segment.bytes": "1073741824", "segment.ms": "604800000"}
# broker key -> topic key whose cluster-wide default it sets
_BROKER_TOPIC_DEFAULTS = {
    "min.insync.replicas": "min.insync.replicas",
    "message.max.bytes": "max.message.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.retention.bytes": "retention.bytes",
    "log.retention.ms": "retention.ms",
    "log.cleanup.policy": "cleanup.policy",
}
_BROKER_KEY_OF = {topic_key: broker_key for broker_key, topic_key in _BROKER_TOPIC_DEFAULTS.items()}
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
    "connections.max.reauth.ms",
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
    elif key in ("retention.bytes", "retention.ms"):
        changes = {field: _as_int(kind, key, value, -1)}
    elif key == "cleanup.policy":
        policies = [p.strip() for p in str(value).split(",")]
        if not policies or any(p not in _CLEANUP_POLICIES for p in policies):
            raise ClusterError(f"{kind} config {key}={value!r} must be delete, compact or compact,delete.")
        changes = {field: ",".join(dict.fromkeys(policies))}
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
    config = BrokerConfig(given=tuple((str(k), str(v)) for k, v in (values or {}).items()))
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
        elif key == "connections.max.reauth.ms":
            config = replace(config, max_reauth_ms=_as_int("broker", key, value, 0))
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


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One setting as DescribeConfigs lists it."""

    name: str
    value: str
    source: int  # SOURCE_TOPIC, SOURCE_BROKER or SOURCE_DEFAULT
    config_type: int
    synonyms: tuple[tuple[str, str, int], ...]  # (name, value, source), most specific first


def describe_topic_config(overrides: Mapping[str, str], broker: BrokerConfig) -> list[ConfigEntry]:
    """Every topic key with its value and source, given the keys set on the topic."""
    effective = parse_topic_config(overrides, broker.topic_defaults)
    kafka_defaults = TopicConfig()
    given = dict(broker.given)
    entries = []
    for key in sorted([*_TOPIC_KEYS, *_TOPIC_KEYS_WITHOUT_EFFECT]):
        if key in _TOPIC_KEYS:
            value = str(getattr(effective, _TOPIC_KEYS[key]))
            default = str(getattr(kafka_defaults, _TOPIC_KEYS[key]))
        else:
            value = default = _DEFAULTS_WITHOUT_EFFECT[key]
            if overrides.get(key) is not None:
                value = str(overrides[key])
        synonyms: list[tuple[str, str, int]] = []
        if overrides.get(key) is not None:
            synonyms.append((key, value, SOURCE_TOPIC))
        broker_key = _BROKER_KEY_OF.get(key)
        if broker_key is not None and broker_key in given:
            synonyms.append((broker_key, str(getattr(broker.topic_defaults, _TOPIC_KEYS[key])), SOURCE_BROKER))
        synonyms.append((broker_key or key, default, SOURCE_DEFAULT))
        entries.append(ConfigEntry(key, value, synonyms[0][2], _TOPIC_KEY_TYPES[key], tuple(synonyms)))
    return entries


def describe_broker_config(broker: BrokerConfig) -> list[ConfigEntry]:
    """Every broker key of the cluster with its value and source."""
    given = dict(broker.given)
    defaults = BrokerConfig()
    values = {
        "auto.create.topics.enable": (str(broker.auto_create_topics).lower(), str(defaults.auto_create_topics).lower(), TYPE_BOOLEAN),
        "num.partitions": (str(broker.num_partitions), str(defaults.num_partitions), TYPE_INT),
        "default.replication.factor": (
            str(broker.default_replication_factor), str(defaults.default_replication_factor), TYPE_INT
        ),
    }
    for broker_key, topic_key in _BROKER_TOPIC_DEFAULTS.items():
        field = _TOPIC_KEYS[topic_key]
        values[broker_key] = (
            str(getattr(broker.topic_defaults, field)),
            str(getattr(defaults.topic_defaults, field)),
            _TOPIC_KEY_TYPES[topic_key],
        )
    entries = []
    for key in sorted(values):
        value, default, config_type = values[key]
        synonyms = ((key, value, SOURCE_BROKER),) if key in given else ()
        source = SOURCE_BROKER if key in given else SOURCE_DEFAULT
        entries.append(ConfigEntry(key, value, source, config_type, (*synonyms, (key, default, SOURCE_DEFAULT))))
    return entries
