"""kprod.config: the table, parsing of every accepted form, validators and Java's cross-field rules."""

from __future__ import annotations

import dataclasses
import importlib.util
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from kprod.config import (
    PRODUCER_CONFIG,
    ConfigKey,
    ConfigType,
    Importance,
    ProducerConfig,
    Support,
    config_key,
    parse_host_port,
)
from kprod.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE = {"bootstrap.servers": "localhost:9092"}


def make(**overrides: Any) -> ProducerConfig:
    """Build a config from BASE plus dotted keys given with underscores for dots."""
    conf = dict(BASE)
    conf.update({name.replace("__", "."): value for name, value in overrides.items()})
    return ProducerConfig(conf)


def config_error(conf: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        ProducerConfig({**BASE, **conf})
    return info.value


# ------------------------------------------------------------------ the table

# Every key of the Java 4.x producer's ConfigDef (ProducerConfig + CommonClientConfigs,
# without the TLS/SASL keys, which are checked by prefix below).
JAVA_PRODUCER_KEYS = {
    "bootstrap.servers", "client.dns.lookup", "buffer.memory", "retries", "acks",
    "compression.type", "compression.gzip.level", "compression.lz4.level",
    "compression.zstd.level", "batch.size", "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms", "partitioner.ignore.keys", "linger.ms",
    "delivery.timeout.ms", "client.id", "send.buffer.bytes", "receive.buffer.bytes",
    "max.request.size", "reconnect.backoff.ms", "reconnect.backoff.max.ms", "retry.backoff.ms",
    "retry.backoff.max.ms", "enable.metrics.push", "max.block.ms", "request.timeout.ms",
    "metadata.max.age.ms", "metadata.max.idle.ms", "metrics.sample.window.ms",
    "metrics.num.samples", "metrics.recording.level", "metric.reporters",
    "max.in.flight.requests.per.connection", "key.serializer", "value.serializer",
    "socket.connection.setup.timeout.ms", "socket.connection.setup.timeout.max.ms",
    "connections.max.idle.ms", "partitioner.class", "interceptor.classes", "security.protocol",
    "security.providers", "enable.idempotence", "transaction.timeout.ms", "transactional.id",
    "metadata.recovery.strategy", "metadata.recovery.rebootstrap.trigger.ms",
}

JAVA_4X_DEFAULTS = {
    "acks": -1,
    "enable.idempotence": True,
    "retries": 2147483647,
    "linger.ms": 5,
    "batch.size": 16384,
    "buffer.memory": 33554432,
    "delivery.timeout.ms": 120000,
    "request.timeout.ms": 30000,
    "max.block.ms": 60000,
    "max.request.size": 1048576,
    "retry.backoff.ms": 100,
    "retry.backoff.max.ms": 1000,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 1000,
    "max.in.flight.requests.per.connection": 5,
    "metadata.max.age.ms": 300000,
    "metadata.max.idle.ms": 300000,
    "compression.type": "none",
    "compression.gzip.level": -1,
    "compression.lz4.level": 9,
    "compression.zstd.level": 3,
    "partitioner.class": None,
    "partitioner.ignore.keys": False,
    "partitioner.adaptive.partitioning.enable": True,
    "partitioner.availability.timeout.ms": 0,
    "send.buffer.bytes": 131072,
    "receive.buffer.bytes": 32768,
    "socket.connection.setup.timeout.ms": 10000,
    "socket.connection.setup.timeout.max.ms": 30000,
    "connections.max.idle.ms": 540000,
    "client.dns.lookup": "use_all_dns_ips",
    "security.protocol": "PLAINTEXT",
    "transactional.id": None,
    "transaction.timeout.ms": 60000,
    "metadata.recovery.strategy": "rebootstrap",
    "metadata.recovery.rebootstrap.trigger.ms": 300000,
    "interceptor.classes": (),
    "key.serializer": "bytes",
    "value.serializer": "bytes",
    "enable.metrics.push": True,
    "metrics.num.samples": 2,
    "metrics.sample.window.ms": 30000,
    "metrics.recording.level": "INFO",
}


def test_table_has_every_java_producer_key() -> None:
    names = {key.name for key in PRODUCER_CONFIG}
    assert JAVA_PRODUCER_KEYS <= names
    extra = names - JAVA_PRODUCER_KEYS
    kprod_extensions = {"statistics.interval.ms", "stats.callback"}  # librdkafka's statistics hook
    assert all(name.startswith(("ssl.", "sasl.")) or name == "config.providers" or name in kprod_extensions
               for name in extra)
    # kprod's own security keys (confluent-kafka's names and Python-only hooks)
    assert {"ssl.context", "sasl.username", "sasl.password", "sasl.oauthbearer.token.provider"} <= extra
    assert {"ssl.truststore.location", "ssl.keystore.password", "sasl.mechanism",
            "sasl.jaas.config", "sasl.oauthbearer.token.endpoint.url"} <= extra


def test_table_entries_are_well_formed() -> None:
    assert isinstance(PRODUCER_CONFIG, tuple)
    assert len({key.name for key in PRODUCER_CONFIG}) == len(PRODUCER_CONFIG)
    for key in PRODUCER_CONFIG:
        assert isinstance(key, ConfigKey)
        assert not hasattr(key, "__dict__")  # slots
        with pytest.raises(dataclasses.FrozenInstanceError):
            key.name = "x"  # type: ignore[misc]
        assert isinstance(key.type, ConfigType) and isinstance(key.importance, Importance)
        assert key.doc and "\n" not in key.doc and key.doc.endswith("."), key.name
        assert len(key.doc) < 200, key.name
        if "kerberos" in key.name or key.name.startswith("sasl.oauthbearer.assertion"):
            assert key.support is Support.UNSUPPORTED
    assert config_key("linger.ms").default == 5
    with pytest.raises(KeyError, match="linger.ms"):
        config_key("linger.msx")


def test_defaults_match_java_4x() -> None:
    cfg = ProducerConfig(BASE)
    for name, expected in JAVA_4X_DEFAULTS.items():
        assert cfg[name] == expected, name
        assert not cfg.is_explicit(name)
    assert cfg.idempotence_enabled is True
    assert cfg["bootstrap.servers"] == ("localhost:9092",)
    assert len(cfg) == len(PRODUCER_CONFIG)


# ------------------------------------------------------------------ accepted forms


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [(1, 1), ("1", 1), (-1, -1), ("-1", -1), ("all", -1), ("ALL", -1), (" all ", -1),
     (0, 0), ("0", 0)],
)
def test_acks_forms(raw: Any, parsed: int) -> None:
    conf = {**BASE, "acks": raw}
    if parsed != -1:
        conf["enable.idempotence"] = False
    assert ProducerConfig(conf)["acks"] == parsed


@pytest.mark.parametrize(("raw", "parsed"), [(7, 7), ("7", 7), (" 7 ", 7), ("+7", 7), (0, 0)])
def test_integer_forms(raw: Any, parsed: int) -> None:
    assert make(linger__ms=raw)["linger.ms"] == parsed
    assert make(batch__size=raw)["batch.size"] == parsed


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [(True, True), (False, False), ("true", True), ("FALSE", False), (" True ", True)],
)
def test_boolean_forms(raw: Any, parsed: bool) -> None:
    assert make(partitioner__ignore__keys=raw)["partitioner.ignore.keys"] is parsed


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("a:1", ("a:1",)),
        ("a:1,b:2", ("a:1", "b:2")),
        (" a:1 , b:2 ,", ("a:1", "b:2")),
        (["a:1", " b:2"], ("a:1", "b:2")),
        (("a:1",), ("a:1",)),
        ("[::1]:9092,PLAINTEXT://h:9093", ("[::1]:9092", "PLAINTEXT://h:9093")),
    ],
)
def test_bootstrap_servers_forms(raw: Any, parsed: tuple[str, ...]) -> None:
    assert ProducerConfig({"bootstrap.servers": raw})["bootstrap.servers"] == parsed


def test_parse_host_port() -> None:
    assert parse_host_port("localhost:9092") == ("localhost", 9092)
    assert parse_host_port(" 10.0.0.1:1 ") == ("10.0.0.1", 1)
    assert parse_host_port("[::1]:9092") == ("::1", 9092)
    assert parse_host_port("SASL_SSL://broker:9094") == ("broker", 9094)
    for bad in ("localhost", ":9092", "h:0", "h:65536", "h:x", "[::1:9092"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


def test_other_value_forms() -> None:
    cfg = make(
        compression__type="ZSTD",
        security__protocol="plaintext",
        client__dns__lookup="USE_ALL_DNS_IPS",
        metadata__recovery__strategy="None",
        interceptor__classes="com.a.One, com.b.Two",
        client__id=" my-app ",
    )
    assert cfg["compression.type"] == "zstd"
    assert cfg["security.protocol"] == "PLAINTEXT"
    assert cfg["client.dns.lookup"] == "use_all_dns_ips"
    assert cfg["metadata.recovery.strategy"] == "none"
    assert cfg["interceptor.classes"] == ("com.a.One", "com.b.Two")
    assert cfg["client.id"] == "my-app"
    hook = object()
    assert make(interceptor__classes=[hook])["interceptor.classes"] == (hook,)
    assert make(partitioner__class=hook)["partitioner.class"] is hook
    assert make(compression__gzip__level=-1)["compression.gzip.level"] == -1
    assert make(compression__gzip__level="9")["compression.gzip.level"] == 9
    assert make(compression__zstd__level=-131072)["compression.zstd.level"] == -131072
    assert make(send__buffer__bytes=-1)["send.buffer.bytes"] == -1
    assert make(connections__max__idle__ms=-1)["connections.max.idle.ms"] == -1


def test_serializer_settings_keep_the_spec() -> None:
    fn = lambda topic, data: b""  # noqa: E731
    cfg = make(key__serializer="org.apache.kafka.common.serialization.StringSerializer",
               value__serializer=fn)
    assert cfg["key.serializer"] == "org.apache.kafka.common.serialization.StringSerializer"
    assert cfg["value.serializer"] is fn


# ------------------------------------------------------------------ rejections


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("linger.ms", "abc", "expected an integer, in [0,...]"),
        ("linger.ms", -1, "expected a value in [0,...]"),
        ("linger.ms", 1.5, "expected an integer, not float, in [0,...]"),
        ("linger.ms", True, "expected an integer, not a bool"),
        ("linger.ms", None, "not None"),
        ("request.timeout.ms", 2**31, "32-bit integer"),
        ("acks", 2, "expected all, -1, 0 or 1"),
        ("acks", "none", "expected all, -1, 0 or 1"),
        ("acks", True, "not a bool"),
        ("compression.type", "brotli", "one of none, gzip, snappy, lz4, zstd"),
        ("compression.gzip.level", 0, "[1,...,9] or -1"),
        ("compression.lz4.level", 18, "[1,...,17]"),
        ("compression.zstd.level", 23, "[-131072,...,22]"),
        ("batch.size", -1, "[0,...]"),
        ("retries", -1, "[0,...,2147483647]"),
        ("max.in.flight.requests.per.connection", 0, "[1,...]"),
        ("metadata.max.idle.ms", 4999, "[5000,...]"),
        ("send.buffer.bytes", -2, "[-1,...]"),
        ("transaction.timeout.ms", 0, "[1,...]"),
        ("enable.idempotence", "yes", "expected true or false"),
        ("enable.idempotence", 1, "expected true or false"),
        ("bootstrap.servers", "localhost", "'localhost' has no host:port form"),
        ("bootstrap.servers", "h:99999", "port from 1 to 65535"),
        ("bootstrap.servers", "h:1,h2:x", "'h2:x'"),
        ("bootstrap.servers", 9092, "not int"),
        ("client.id", 5, "expected a string, not int"),
        ("transactional.id", "", "non-empty string"),
        ("client.dns.lookup", "default", "use_all_dns_ips, resolve_canonical_bootstrap_servers_only"),
        ("metadata.recovery.strategy", "restart", "one of none, rebootstrap"),
        ("interceptor.classes", 5, "not int"),
        ("partitioner.class", "", "not an empty string"),
        ("key.serializer", "strng", "did you mean 'string'?"),
        ("value.serializer", 3.5, "a serializer object with serialize(topic, data)"),
        ("metrics.num.samples", 0, "[1,...]"),
    ],
)
def test_bad_values_name_key_value_and_expectation(key: str, raw: Any, expected: str) -> None:
    conf = {key: raw}
    if key == "bootstrap.servers":
        with pytest.raises(ConfigError) as info:
            ProducerConfig(conf)
        err = info.value
    else:
        err = config_error(conf)
    assert err.keys == (key,)
    text = str(err)
    assert text.startswith(f"{key}={raw!r} is not valid: expected ") or "not None" in text
    assert expected in text
    assert isinstance(err, ValueError)


def test_all_bad_keys_are_reported_together() -> None:
    err = config_error({"linger.ms": "x", "acks": 5, "lingr.ms": 1})
    assert set(err.keys) == {"linger.ms", "acks", "lingr.ms"}
    text = str(err)
    assert text.startswith("The producer configuration has 3 problems:")
    assert "linger.ms='x'" in text and "acks=5" in text and "'lingr.ms'" in text


def test_bootstrap_servers_is_required() -> None:
    for conf in ({}, {"bootstrap.servers": ""}, {"bootstrap.servers": []}):
        with pytest.raises(ConfigError, match="bootstrap.servers is required") as info:
            ProducerConfig(conf)
        assert info.value.keys == ("bootstrap.servers",)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        ProducerConfig([("bootstrap.servers", "a:1")])  # type: ignore[arg-type]


# ------------------------------------------------------------------ unknown keys


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("linger.msx", "linger.ms"), ("linger_ms", "linger.ms"), ("Linger.Ms", "linger.ms"),
     ("bootstrap.server", "bootstrap.servers"), ("compresion.type", "compression.type"),
     ("enable.idempotency", "enable.idempotence")],
)
def test_unknown_key_suggests_the_closest(typo: str, suggestion: str) -> None:
    err = config_error({typo: 1})
    assert err.keys == (typo,)
    assert str(err) == (
        f"'{typo}' is not a Kafka producer configuration key. Did you mean '{suggestion}'?"
        " See docs/configuration.md for every key kprod accepts."
    )


def test_unknown_key_without_a_close_match() -> None:
    text = str(config_error({"zzzz": 1}))
    assert "Did you mean" not in text and "'zzzz' is not a Kafka producer" in text
    assert "must be strings" in str(config_error({5: 1}))  # type: ignore[dict-item]


def test_unknown_key_on_lookup() -> None:
    cfg = ProducerConfig(BASE)
    with pytest.raises(KeyError, match="Did you mean 'linger.ms'"):
        cfg["linger.msx"]
    with pytest.raises(KeyError, match="linger.ms"):
        cfg.is_explicit("linger_ms")
    assert cfg.get("nope") is None
    assert "linger.ms" in cfg and "nope" not in cfg


# ------------------------------------------------------------------ unsupported / ignored


@pytest.mark.parametrize(
    ("key", "raw"),
    [("ssl.engine.factory.class", "com.example.Factory"), ("sasl.kerberos.service.name", "kafka"),
     ("sasl.login.class", "com.example.Login"), ("config.providers", "file"),
     ("ssl.keymanager.algorithm", "PKIX"), ("sasl.oauthbearer.assertion.file", "/a.jwt")],
)
def test_unsupported_keys_with_non_default_values_raise(key: str, raw: Any) -> None:
    err = config_error({key: raw})
    assert err.keys == (key,)
    text = str(err)
    assert text.startswith(f"{key}=") and "is not supported yet" in text
    assert f"Remove {key} or set it to its default" in text


def test_secrets_are_never_echoed() -> None:
    text = str(config_error({"ssl.keystore.password": 12}))
    assert "12" not in text and "[hidden]" in text
    text = str(ProducerConfig({**BASE, "ssl.keystore.password": "hunter2"}))
    assert "hunter2" not in text and "[hidden]" in text


@pytest.mark.parametrize(
    ("key", "raw"),
    [("ssl.protocol", "TLSv1.3"), ("sasl.mechanism", "GSSAPI"), ("ssl.truststore.type", "JKS"),
     ("ssl.enabled.protocols", "TLSv1.2, TLSv1.3"), ("ssl.keystore.location", None),
     ("metric.reporters", ""), ("metric.reporters", "org.apache.kafka.common.metrics.JmxReporter"),
     ("sasl.kerberos.ticket.renew.window.factor", "0.8"), ("security.providers", None)],
)
def test_unsupported_keys_at_their_default_are_accepted(key: str, raw: Any) -> None:
    cfg = make(**{key.replace(".", "__"): raw})
    assert cfg.is_explicit(key)


def test_metrics_keys_are_validated_and_accepted() -> None:
    cfg = make(metrics__num__samples="3", metrics__recording__level="debug",
               enable__metrics__push="false", metrics__sample__window__ms=1000)
    assert cfg["metrics.num.samples"] == 3
    assert cfg["metrics.recording.level"] == "DEBUG"
    assert cfg["enable.metrics.push"] is False
    assert config_key("metrics.num.samples").support is Support.SUPPORTED
    assert config_key("enable.metrics.push").support is Support.IGNORED
    ProducerConfig({**BASE, "metrics.context.resource.type": "app"})  # Java's reporter context


# ------------------------------------------------------------------ cross-field rules


@pytest.mark.parametrize(
    ("conf", "keys", "needle"),
    [
        ({"acks": "1"}, ("enable.idempotence", "acks"), "acks=all (it is 1)"),
        ({"acks": 0}, ("enable.idempotence", "acks"), "acks=all (it is 0)"),
        ({"retries": 0}, ("enable.idempotence", "retries"), "retries greater than 0"),
        ({"max.in.flight.requests.per.connection": 6},
         ("enable.idempotence", "max.in.flight.requests.per.connection"), "at most 5 (it is 6)"),
        ({"acks": 1, "retries": "0"}, ("enable.idempotence", "acks", "retries"),
         "Change acks, retries, or set enable.idempotence=false."),
    ],
)
def test_explicit_idempotence_conflicts_raise_naming_the_keys(
    conf: dict[str, Any], keys: tuple[str, ...], needle: str
) -> None:
    err = config_error({"enable.idempotence": "true", **conf})
    assert err.keys == keys
    assert str(err).startswith("enable.idempotence=true needs ")
    assert needle in str(err)


@pytest.mark.parametrize("conf", [{"acks": 1}, {"acks": "0"}, {"retries": 0},
                                  {"acks": 0, "max.in.flight.requests.per.connection": 10}])
def test_defaulted_idempotence_is_turned_off_silently(conf: dict[str, Any]) -> None:
    cfg = ProducerConfig({**BASE, **conf})
    assert cfg.idempotence_enabled is False
    assert cfg["enable.idempotence"] is False
    assert not cfg.is_explicit("enable.idempotence")


def test_defaulted_idempotence_with_too_many_in_flight_raises_like_java_4() -> None:
    err = config_error({"max.in.flight.requests.per.connection": "6"})
    assert err.keys == ("max.in.flight.requests.per.connection", "enable.idempotence")
    assert "set enable.idempotence=false" in str(err)
    cfg = make(max__in__flight__requests__per__connection=6, enable__idempotence=False)
    assert cfg["max.in.flight.requests.per.connection"] == 6
    assert cfg.idempotence_enabled is False


def test_idempotence_on_with_compatible_settings() -> None:
    cfg = make(enable__idempotence="true", acks="all", retries=3,
               max__in__flight__requests__per__connection=5)
    assert cfg.idempotence_enabled is True and cfg.is_explicit("enable.idempotence")


def test_transactional_id_requires_idempotence() -> None:
    err = config_error({"transactional.id": "tx", "enable.idempotence": False})
    assert err.keys == ("transactional.id", "enable.idempotence")
    assert "set enable.idempotence=true" in str(err)
    err = config_error({"transactional.id": "tx", "acks": "1"})
    assert err.keys == ("transactional.id", "acks")
    assert "idempotence was turned off because of acks" in str(err)
    cfg = make(transactional__id="tx-1")
    assert cfg["transactional.id"] == "tx-1" and cfg.idempotence_enabled
    assert cfg["client.id"] == "kprod-producer-tx-1"


def test_delivery_timeout_explicit_violation_names_the_keys() -> None:
    err = config_error({"delivery.timeout.ms": 30000, "linger.ms": 10})
    assert err.keys == ("delivery.timeout.ms", "linger.ms", "request.timeout.ms")
    assert str(err) == (
        "delivery.timeout.ms=30000 must be at least linger.ms + request.timeout.ms = 10 + 30000"
        " = 30010. Raise delivery.timeout.ms, or lower linger.ms or request.timeout.ms."
    )


def test_delivery_timeout_is_raised_when_not_explicit() -> None:
    cfg = make(request__timeout__ms=200000, linger__ms=100)
    assert cfg["delivery.timeout.ms"] == 200100
    assert make(delivery__timeout__ms=30005)["delivery.timeout.ms"] == 30005  # exactly enough
    assert make(linger__ms=2**62)["delivery.timeout.ms"] == 2**31 - 1  # capped like Java


def test_reconnect_backoff_max_follows_an_explicit_backoff() -> None:
    assert make(reconnect__backoff__ms=200)["reconnect.backoff.max.ms"] == 200
    cfg = make(reconnect__backoff__ms=200, reconnect__backoff__max__ms=5000)
    assert cfg["reconnect.backoff.max.ms"] == 5000
    assert make()["reconnect.backoff.max.ms"] == 1000


def test_client_id_default_is_generated_per_config() -> None:
    first, second = make()["client.id"], make()["client.id"]
    assert re.fullmatch(r"kprod-producer-\d+", first) and re.fullmatch(r"kprod-producer-\d+", second)
    assert int(second.rsplit("-", 1)[1]) > int(first.rsplit("-", 1)[1])
    assert make(client__id="")["client.id"] == ""
    assert make(client__id="app")["client.id"] == "app"


# ------------------------------------------------------------------ the object


def test_config_is_immutable() -> None:
    cfg = make(linger__ms=10)
    with pytest.raises(AttributeError, match="immutable"):
        cfg.linger = 5  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        cfg["linger.ms"] = 5  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.originals["linger.ms"] = 5  # type: ignore[index]
    copy = cfg.as_dict()
    copy["linger.ms"] = 99
    assert cfg["linger.ms"] == 10


def test_originals_and_explicit_keys() -> None:
    conf = {**BASE, "linger.ms": "10", "acks": "all"}
    cfg = ProducerConfig(conf)
    assert dict(cfg.originals) == conf
    conf["linger.ms"] = "20"  # later changes by the caller do not leak in
    assert cfg.originals["linger.ms"] == "10" and cfg["linger.ms"] == 10
    assert cfg.is_explicit("acks") and cfg.is_explicit("linger.ms")
    assert not cfg.is_explicit("batch.size")
    assert set(cfg.as_dict()) == {key.name for key in PRODUCER_CONFIG}


def test_config_from_config_and_pickle() -> None:
    cfg = make(linger__ms=10, acks=1)
    again = ProducerConfig(cfg)
    assert dict(again.originals) == dict(cfg.originals)
    assert again["linger.ms"] == 10 and again.idempotence_enabled is False
    copy = pickle.loads(pickle.dumps(cfg))
    assert copy == cfg and copy["client.id"] == cfg["client.id"]
    assert dict(copy.originals) == dict(cfg.originals)
    assert copy.idempotence_enabled is False


def test_repr_shows_the_explicit_settings() -> None:
    assert repr(make(linger__ms="10")) == (
        "ProducerConfig({'bootstrap.servers': ('localhost:9092',), 'linger.ms': 10})"
    )


# ------------------------------------------------------------------ generated docs


def _load_docs_script() -> Any:
    path = ROOT / "scripts" / "gen_config_docs.py"
    spec = importlib.util.spec_from_file_location("gen_config_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_docs_are_up_to_date() -> None:
    script = _load_docs_script()
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == script.render(), "run: python scripts/gen_config_docs.py"
    for key in PRODUCER_CONFIG:
        assert f"| `{key.name}` |" in committed
