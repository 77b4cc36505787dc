"""Producer configuration: the Java client's keys and 4.x defaults, in one table.

``PRODUCER_CONFIG`` lists every key of the Java producer (``ProducerConfig``
plus the common client keys it includes). Each ``ConfigKey`` carries its type,
Java 4.x default, validator, importance and a one-line description;
``docs/configuration.md`` is generated from it by ``scripts/gen_config_docs.py``.

``ProducerConfig(mapping)`` parses values the way a Java properties file holds
them or as Python values (``"5"`` or ``5``, ``"true"`` or ``True``, a
comma-separated string or a list), validates them, applies the Java client's
cross-field rules and is immutable afterwards: ``cfg["linger.ms"]`` is the
parsed, typed value.

Keys fall in three groups (``Support``):

* supported: kprod implements them;
* ignored: ``enable.metrics.push`` (KIP-714 pushing of client metrics to the
  brokers) and ``metrics.context.*``; since they never change what is
  delivered, they are validated and accepted so Java properties files load
  unchanged;
* unsupported: Java plugin classes, Kerberos and the other keys kprod does not
  implement yet. Leaving them at their default is fine; any other value raises
  ``ConfigError`` rather than silently ignoring what the user asked for.

TLS and SASL keys are parsed here; whether they fit together (credentials for
the mechanism, readable stores) is checked by ``kprod.net.security`` when the
producer is built, since that needs the files.
"""

from __future__ import annotations

import difflib
import enum
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kprod import serializers
from kprod.errors import ConfigError

__all__ = [
    "PRODUCER_CONFIG",
    "ConfigKey",
    "ConfigType",
    "Importance",
    "OneOf",
    "ProducerConfig",
    "Range",
    "Support",
    "config_key",
    "parse_host_port",
]

INT32_MAX = 2**31 - 1
MAX_IN_FLIGHT_FOR_IDEMPOTENCE = 5
DOCS_PAGE = "docs/configuration.md"


class ConfigType(enum.StrEnum):
    """How a value is parsed. The names follow Java's ``ConfigDef.Type`` where one exists."""

    STRING = "string"
    PASSWORD = "password"
    INT = "int"
    LONG = "long"
    SHORT = "short"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    LIST = "list"
    CLASS = "class"
    ACKS = "acks"
    SERIALIZER = "serializer"
    PLUGIN = "plugin"
    PLUGIN_LIST = "plugin list"


class Importance(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Support(enum.StrEnum):
    SUPPORTED = "supported"
    IGNORED = "ignored"
    UNSUPPORTED = "unsupported"


class _BadValue(Exception):
    """Internal: a value did not parse or validate; ``reason`` says what was expected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotYet(_BadValue):
    """Internal: a value Java accepts but kprod does not implement yet."""


Problem = tuple[tuple[str, ...], str]
"""The keys at fault and a sentence saying what is wrong and what to do."""


# ------------------------------------------------------------------ validators


@dataclass(frozen=True, slots=True)
class Range:
    """Numbers from ``low`` to ``high`` (either may be open), plus a few ``extra`` values."""

    low: int | float | None = None
    high: int | float | None = None
    extra: tuple[int, ...] = ()

    def __call__(self, value: Any) -> Any:
        if value in self.extra:
            return value
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise _BadValue(f"a value in {self.describe()}")
        return value

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"[{self.low},...,{self.high}]"
        elif self.low is not None:
            text = f"[{self.low},...]"
        else:
            text = f"[...,{self.high}]"
        if self.extra:
            text += " or " + ", ".join(str(x) for x in self.extra)
        return text


@dataclass(frozen=True, slots=True)
class OneOf:
    """One of ``values`` (case-insensitive, returned in the table's spelling).

    ``unsupported`` lists values Java accepts that kprod does not implement yet,
    so they get a "not supported yet" error instead of "not valid".
    """

    values: tuple[str, ...]
    unsupported: tuple[str, ...] = ()

    def __call__(self, value: Any) -> Any:
        folded = value.lower()
        for choice in self.values:
            if choice.lower() == folded:
                return choice
        for choice in self.unsupported:
            if choice.lower() == folded:
                raise _NotYet(f"one of {', '.join(self.values)}")
        raise _BadValue(f"one of {', '.join(self.values)}")

    def describe(self) -> str:
        return ", ".join(self.values)


@dataclass(frozen=True, slots=True)
class NonEmpty:
    """A string that is not empty; ``None`` (not set) is allowed."""

    def __call__(self, value: Any) -> Any:
        if value == "":
            raise _BadValue("a non-empty string (or leave the key out)")
        return value

    def describe(self) -> str:
        return "non-empty string"


@dataclass(frozen=True, slots=True)
class HostPorts:
    """A list of ``host:port`` entries (IPv6 hosts in brackets, ``[::1]:9092``)."""

    def __call__(self, value: Any) -> Any:
        for entry in value:
            try:
                parse_host_port(entry)
            except ValueError as exc:
                raise _BadValue(str(exc)) from None
        return value

    def describe(self) -> str:
        return "host:port[,host:port...]"


Validator = Range | OneOf | NonEmpty | HostPorts


def parse_host_port(entry: str) -> tuple[str, int]:
    """Split a ``bootstrap.servers`` entry into host and port.

    Accepts ``host:port``, ``[ipv6]:port`` and, like the Java client, a leading
    ``PROTOCOL://`` that is ignored. Raises ``ValueError`` saying what is wrong.
    """
    text = entry.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"host:port entries, but {entry!r} has no host:port form")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"host:port entries, but {entry!r} has an unclosed IPv6 bracket")
        host = host[1:-1]
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"host:port entries with a port from 1 to 65535, but {entry!r} has none")
    return host, int(port_text)


# ------------------------------------------------------------------ parsing


def _typename(value: Any) -> str:
    return type(value).__qualname__


def _parse_str(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    raise _BadValue(f"a string, not {_typename(value)}")


def _integer_parser(bits: int) -> Callable[[Any], int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise _BadValue("an integer, not a bool")
        if isinstance(value, int):
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                raise _BadValue("an integer") from None
        else:
            raise _BadValue(f"an integer, not {_typename(value)}")
        if not low <= number <= high:
            raise _BadValue(f"a {bits}-bit integer, from {low} to {high}")
        return number

    return parse


def _parse_double(value: Any) -> float:
    if isinstance(value, bool):
        raise _BadValue("a number, not a bool")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _BadValue("a number") from None
    raise _BadValue(f"a number, not {_typename(value)}")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded == "true":
            return True
        if folded == "false":
            return False
    raise _BadValue("true or false")


def _parse_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _BadValue(f"a comma-separated string or a list of strings, not {_typename(value)}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise _BadValue(f"a list of strings, but it holds a {_typename(item)}")
        if item.strip():
            out.append(item.strip())
    return tuple(out)


def _parse_acks(value: Any) -> int:
    if isinstance(value, bool):
        raise _BadValue("all, -1, 0 or 1, not a bool")
    if isinstance(value, int) and value in (0, 1, -1):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return -1
        if text in ("0", "1", "-1"):
            return int(text)
    raise _BadValue("all, -1, 0 or 1")


def _parse_plugin(value: Any) -> Any:
    """A class name (string) or a Python object; resolved by the component that uses it."""
    if isinstance(value, str):
        if not value.strip():
            raise _BadValue("a class name or an object, not an empty string")
        return value.strip()
    if isinstance(value, (bool, int, float)):
        raise _BadValue(f"a class name or an object, not {_typename(value)}")
    return value


def _parse_plugin_list(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str):
        return _parse_list(value)
    if isinstance(value, (list, tuple)):
        return tuple(_parse_plugin(item) for item in value)
    raise _BadValue(f"a comma-separated string or a list, not {_typename(value)}")


_SERIALIZER_EXPECTED = (
    f"a serializer name ({', '.join(serializers.SERIALIZER_SHORT_NAMES)}), a Java serializer"
    " class name, a serializer object with serialize(topic, data) or a callable (topic, data)"
)


def _parse_serializer(value: Any) -> Any:
    """A serializer name, object or callable; resolved now so a typo fails at construction."""
    if isinstance(value, str):
        value = value.strip()
    try:
        serializers.resolve_serializer(value)
    except ConfigError:
        reason = _SERIALIZER_EXPECTED
        if isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), serializers.SERIALIZER_SHORT_NAMES, 1)
            if close:
                reason += f"; did you mean '{close[0]}'?"
        raise _BadValue(reason) from None
    return value


_PARSERS: dict[ConfigType, Callable[[Any], Any]] = {
    ConfigType.STRING: _parse_str,
    ConfigType.PASSWORD: _parse_str,
    ConfigType.INT: _integer_parser(32),
    ConfigType.LONG: _integer_parser(64),
    ConfigType.SHORT: _integer_parser(16),
    ConfigType.DOUBLE: _parse_double,
    ConfigType.BOOLEAN: _parse_bool,
    ConfigType.LIST: _parse_list,
    ConfigType.CLASS: _parse_plugin,
    ConfigType.ACKS: _parse_acks,
    ConfigType.SERIALIZER: _parse_serializer,
    ConfigType.PLUGIN: _parse_plugin,
    ConfigType.PLUGIN_LIST: _parse_plugin_list,
}


# ------------------------------------------------------------------ the table


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One configuration key: how to parse it, its Java 4.x default and what it does.

    ``default`` is written as Java documents it (``acks`` is ``"all"``); the
    parsed form is what ``ProducerConfig`` returns. ``tolerated`` lists extra
    values an unsupported key may take because they change nothing.
    """

    name: str
    type: ConfigType
    default: Any
    importance: Importance
    doc: str
    validator: Validator | None = None
    support: Support = Support.SUPPORTED
    tolerated: tuple[Any, ...] = field(default=())

    def parse(self, value: Any) -> Any:
        """Parse and validate one value; raises ``_BadValue`` with what was expected."""
        if value is None:
            if self.default is None:
                return None
            raise _BadValue(
                f"{self._expected()}, not None (leave the key out to get the default,"
                f" {self.display_default()})"
            )
        try:
            parsed = _PARSERS[self.type](value)
        except _BadValue as bad:
            if isinstance(self.validator, Range):
                raise _BadValue(f"{bad.reason}, in {self.validator.describe()}") from None
            raise
        if self.validator is not None:
            parsed = self.validator(parsed)
        return parsed

    def _expected(self) -> str:
        if self.validator is not None:
            return self.validator.describe()
        return _TYPE_EXPECTATIONS[self.type]

    def display_default(self) -> str:
        """The default as a properties file would spell it."""
        return _display(self.default)

    def valid_values(self) -> str:
        """What the key accepts, for the reference docs."""
        if self.validator is not None:
            return self.validator.describe()
        return _TYPE_EXPECTATIONS[self.type]


_TYPE_EXPECTATIONS: dict[ConfigType, str] = {
    ConfigType.STRING: "string",
    ConfigType.PASSWORD: "string",
    ConfigType.INT: "32-bit integer",
    ConfigType.LONG: "64-bit integer",
    ConfigType.SHORT: "16-bit integer",
    ConfigType.DOUBLE: "number",
    ConfigType.BOOLEAN: "true, false",
    ConfigType.LIST: "comma-separated list",
    ConfigType.CLASS: "class name",
    ConfigType.ACKS: "all, -1, 0, 1",
    ConfigType.SERIALIZER: (
        f"{', '.join(serializers.SERIALIZER_SHORT_NAMES)}, a Java serializer class name, a"
        " serializer object or a callable (topic, data)"
    ),
    ConfigType.PLUGIN: "class name or object",
    ConfigType.PLUGIN_LIST: "list of class names or objects",
}


def _display(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if value else '""'
    if value == "":
        return '""'
    return str(value)


_S, _I, _L, _B = ConfigType.STRING, ConfigType.INT, ConfigType.LONG, ConfigType.BOOLEAN
_HIGH, _MED, _LOW = Importance.HIGH, Importance.MEDIUM, Importance.LOW
_IGNORED, _UNSUPPORTED = Support.IGNORED, Support.UNSUPPORTED
_AT_LEAST_0 = Range(0)


def _k(
    name: str,
    type_: ConfigType,
    default: Any,
    importance: Importance,
    doc: str,
    validator: Validator | None = None,
    support: Support = Support.SUPPORTED,
    tolerated: tuple[Any, ...] = (),
) -> ConfigKey:
    return ConfigKey(name, type_, default, importance, doc, validator, support, tolerated)


def _unsupported(name: str, type_: ConfigType, default: Any, doc: str) -> ConfigKey:
    return ConfigKey(name, type_, default, _LOW, doc, None, _UNSUPPORTED)


_JAVA_SECURITY_PROTOCOLS = ("SSL", "SASL_PLAINTEXT", "SASL_SSL")
_OAUTH = "sasl.oauthbearer."
_P = ConfigType.PASSWORD
_C = ConfigType.CLASS
_D = ConfigType.DOUBLE

PRODUCER_CONFIG: tuple[ConfigKey, ...] = (
    # -- where to connect and who we are
    _k("bootstrap.servers", ConfigType.LIST, (), _HIGH,
       "Brokers to contact first, as host:port pairs; the producer discovers the rest of the"
       " cluster from them. Required.", HostPorts()),
    _k("client.id", _S, "", _MED,
       "Name sent with every request so broker logs and quotas can tell clients apart; when"
       " unset it becomes kprod-producer-<transactional.id> or kprod-producer-<n>."),
    _k("client.dns.lookup", _S, "use_all_dns_ips", _MED,
       "How host names are resolved: try every address a name resolves to, or resolve"
       " bootstrap names to canonical names first.",
       OneOf(("use_all_dns_ips", "resolve_canonical_bootstrap_servers_only"))),
    # -- durability and delivery
    _k("acks", ConfigType.ACKS, "all", _LOW,
       "Acknowledgements the leader waits for: 0 (none), 1 (leader only) or all/-1 (every"
       " in-sync replica)."),
    _k("enable.idempotence", _B, True, _LOW,
       "Number batches so retries never duplicate or reorder records; needs acks=all,"
       " retries > 0, at most 5 in flight. Off: duplicates measured in docs/reliability.md."),
    _k("retries", _I, INT32_MAX, _HIGH,
       "How many times a failed batch is resent; delivery.timeout.ms is usually the better"
       " limit.", Range(0, INT32_MAX)),
    _k("delivery.timeout.ms", _I, 120000, _MED,
       "Upper bound on the time from send() returning to the record's success or failure,"
       " retries included; at least linger.ms + request.timeout.ms.", _AT_LEAST_0),
    _k("request.timeout.ms", _I, 30000, _MED,
       "How long to wait for a broker's response before the request is retried or failed.",
       _AT_LEAST_0),
    _k("retry.backoff.ms", _L, 100, _LOW,
       "First wait before retrying a failed request; it doubles on each further failure.",
       _AT_LEAST_0),
    _k("retry.backoff.max.ms", _L, 1000, _LOW,
       "Longest wait between retries, after exponential growth and 20% jitter.", _AT_LEAST_0),
    _k("max.in.flight.requests.per.connection", _I, 5, _LOW,
       "Unacknowledged requests allowed per broker connection; at most 5 with idempotence."
       " Without idempotence, more than 1 lets retries reorder records (docs/reliability.md).",
       Range(1)),
    # -- batching and memory
    _k("batch.size", _I, 16384, _MED,
       "Target size in bytes of a per-partition batch; 0 disables batching.", _AT_LEAST_0),
    _k("linger.ms", _L, 5, _MED,
       "How long a batch waits for more records before it is sent, unless it is full first.",
       _AT_LEAST_0),
    _k("buffer.memory", _L, 33554432, _HIGH,
       "Bytes of memory for records waiting to be sent; send() blocks up to max.block.ms when"
       " it is full.", _AT_LEAST_0),
    _k("max.block.ms", _L, 60000, _MED,
       "How long send() and other calls may block waiting for metadata or buffer space.",
       _AT_LEAST_0),
    _k("max.request.size", _I, 1048576, _MED,
       "Largest request in bytes the producer sends, which also caps a single record.",
       _AT_LEAST_0),
    _k("compression.type", _S, "none", _HIGH,
       "Codec applied to each batch.", OneOf(("none", "gzip", "snappy", "lz4", "zstd"))),
    _k("compression.gzip.level", _I, -1, _MED,
       "gzip level; -1 uses the codec's default.", Range(1, 9, extra=(-1,))),
    _k("compression.lz4.level", _I, 9, _MED, "lz4 level.", Range(1, 17)),
    _k("compression.zstd.level", _I, 3, _MED, "zstd level.", Range(-131072, 22)),
    # -- partitioning
    _k("partitioner.class", ConfigType.PLUGIN, None, _MED,
       "Custom partitioner (object or class name); null uses the built-in murmur2 / sticky"
       " partitioning."),
    _k("partitioner.ignore.keys", _B, False, _MED,
       "Ignore record keys when choosing a partition, spreading keyed records like unkeyed ones."),
    _k("partitioner.adaptive.partitioning.enable", _B, True, _LOW,
       "Let the sticky partitioner send more records to partitions whose brokers keep up."),
    _k("partitioner.availability.timeout.ms", _L, 0, _LOW,
       "Treat a partition as unavailable after its broker has not taken produce requests for"
       " this long; 0 disables the check.", _AT_LEAST_0),
    # -- serializers and interceptors
    _k("key.serializer", ConfigType.SERIALIZER, "bytes", _HIGH,
       "Turns record keys into bytes: a serializer name, object or callable (topic, data)."),
    _k("value.serializer", ConfigType.SERIALIZER, "bytes", _HIGH,
       "Turns record values into bytes: a serializer name, object or callable (topic, data)."),
    _k("interceptor.classes", ConfigType.PLUGIN_LIST, (), _LOW,
       "Interceptors that see every record before it is sent and every acknowledgement."),
    # -- metadata
    _k("metadata.max.age.ms", _L, 300000, _LOW,
       "Refresh cluster metadata at least this often, even without errors.", _AT_LEAST_0),
    _k("metadata.max.idle.ms", _L, 300000, _LOW,
       "Forget a topic's metadata when nothing has been sent to it for this long.", Range(5000)),
    _k("metadata.recovery.strategy", _S, "rebootstrap", _LOW,
       "What to do when no known broker is reachable: bootstrap again from bootstrap.servers,"
       " or keep trying the known brokers (none).", OneOf(("none", "rebootstrap"))),
    _k("metadata.recovery.rebootstrap.trigger.ms", _L, 300000, _LOW,
       "Bootstrap again after metadata could not be fetched from any known broker for this long.",
       _AT_LEAST_0),
    # -- connections
    _k("reconnect.backoff.ms", _L, 50, _LOW,
       "First wait before reconnecting to a broker; it grows exponentially per failure.",
       _AT_LEAST_0),
    _k("reconnect.backoff.max.ms", _L, 1000, _LOW,
       "Longest wait between reconnection attempts to one broker.", _AT_LEAST_0),
    _k("socket.connection.setup.timeout.ms", _L, 10000, _MED,
       "How long a connection attempt may take; it grows per consecutive failure.", _AT_LEAST_0),
    _k("socket.connection.setup.timeout.max.ms", _L, 30000, _MED,
       "Longest connection setup timeout after exponential growth.", _AT_LEAST_0),
    _k("connections.max.idle.ms", _L, 540000, _MED,
       "Close connections idle for this long; a negative value keeps them open."),
    _k("send.buffer.bytes", _I, 131072, _MED,
       "Socket send buffer (SO_SNDBUF) in bytes; -1 keeps the OS default.", Range(-1)),
    _k("receive.buffer.bytes", _I, 32768, _MED,
       "Socket receive buffer (SO_RCVBUF) in bytes; -1 keeps the OS default.", Range(-1)),
    _k("security.protocol", _S, "PLAINTEXT", _MED,
       "Protocol to talk to brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL"
       " over TLS). See docs/security.md.",
       OneOf(("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))),
    # -- TLS (docs/security.md)
    _k("ssl.context", ConfigType.PLUGIN, None, _MED,
       "A ready ssl.SSLContext (Python only); when set, the other ssl.* keys are not used."),
    _k("ssl.truststore.type", _S, "JKS", _MED,
       "Format of the trust store: PEM or PKCS12 (a JKS file gets an error saying how to convert"
       " it); the default reads the file's own format.", OneOf(("JKS", "PEM", "PKCS12"))),
    _k("ssl.truststore.location", _S, None, _HIGH,
       "File of CA certificates that sign the brokers' certificates; unset uses the system"
       " trust store."),
    _k("ssl.truststore.certificates", _P, None, _HIGH,
       "CA certificates in PEM form, inline (instead of ssl.truststore.location)."),
    _k("ssl.truststore.password", _P, None, _HIGH, "Password of a PKCS12 trust store."),
    _k("ssl.keystore.type", _S, "JKS", _MED,
       "Format of the client's key store for mTLS: PEM or PKCS12; the default reads the file's"
       " own format.", OneOf(("JKS", "PEM", "PKCS12"))),
    _k("ssl.keystore.location", _S, None, _HIGH,
       "File holding the client's private key and certificate chain, for mTLS."),
    _k("ssl.keystore.password", _P, None, _HIGH, "Password of a PKCS12 key store."),
    _k("ssl.keystore.certificate.chain", _P, None, _HIGH,
       "Client certificate chain in PEM form, inline (with ssl.keystore.key)."),
    _k("ssl.keystore.key", _P, None, _HIGH, "Client private key in PEM form, inline."),
    _k("ssl.key.password", _P, None, _HIGH, "Password of an encrypted private key."),
    _k("ssl.endpoint.identification.algorithm", _S, "https", _LOW,
       "https checks the broker's host name against its certificate; empty turns the check off"
       " (logged as a warning).", OneOf(("https", ""))),
    _k("ssl.protocol", _S, "TLSv1.3", _MED,
       "Highest TLS version offered, unless ssl.enabled.protocols says otherwise.",
       OneOf(("TLSv1.2", "TLSv1.3", "TLS"))),
    _k("ssl.enabled.protocols", ConfigType.LIST, ("TLSv1.2", "TLSv1.3"), _MED,
       "TLS versions allowed (TLSv1.2, TLSv1.3)."),
    _k("ssl.cipher.suites", ConfigType.LIST, (), _LOW,
       "TLS 1.2 cipher suites allowed, in OpenSSL names; empty keeps Python's defaults."),
    # -- SASL (docs/security.md)
    _k("sasl.mechanism", _S, "GSSAPI", _MED,
       "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (GSSAPI, Java's"
       " default, is not supported).",
       OneOf(("GSSAPI", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"))),
    _k("sasl.jaas.config", _P, None, _MED,
       "Java JAAS login line (PlainLoginModule, ScramLoginModule or OAuthBearerLoginModule with"
       " its options), as copied from a provider's Java page."),
    _k("sasl.username", _S, None, _HIGH,
       "SASL user name for PLAIN and SCRAM (kprod and confluent-kafka key; instead of the JAAS"
       " line)."),
    _k("sasl.password", _P, None, _HIGH, "SASL password for PLAIN and SCRAM."),
    _k("sasl.oauthbearer.token.provider", ConfigType.PLUGIN, None, _HIGH,
       "Callable returning (token, expiry in epoch seconds) or an object with .token and"
       " .expiry; called on the I/O thread before each expiry."),
    _k(_OAUTH + "token.endpoint.url", _S, None, _MED,
       "OIDC token endpoint for the client-credentials grant (an https:// URL or file://"
       " holding a token)."),
    _k(_OAUTH + "client.credentials.client.id", _S, None, _MED,
       "OAuth client id for the client-credentials grant."),
    _k(_OAUTH + "client.credentials.client.secret", _P, None, _MED,
       "OAuth client secret for the client-credentials grant."),
    _k(_OAUTH + "scope", _S, None, _MED, "OAuth scope requested with the token."),
    _k(_OAUTH + "header.urlencode", _B, False, _LOW,
       "URL-encode the client id and secret in the token request's authorization header."),
    _k("sasl.login.callback.handler.class", _C, None, _MED,
       "Java login callback handler; only Kafka's own OAuthBearerLoginCallbackHandler is"
       " accepted (it selects the token endpoint flow)."),
    _k("sasl.login.refresh.window.factor", _D, 0.8, _LOW,
       "Refresh an OAuth token after this fraction of its life.", Range(0.5, 1.0)),
    _k("sasl.login.refresh.window.jitter", _D, 0.05, _LOW,
       "Random extra fraction of the token's life added to the refresh time.", Range(0.0, 0.25)),
    _k("sasl.login.refresh.min.period.seconds", ConfigType.SHORT, 60, _LOW,
       "Least time between two token refreshes.", Range(0, 900)),
    _k("sasl.login.refresh.buffer.seconds", ConfigType.SHORT, 300, _LOW,
       "Refresh at least this long before the token expires.", Range(0, 3600)),
    _k("sasl.login.connect.timeout.ms", _I, None, _LOW,
       "Connect timeout towards the token endpoint (default 10000)."),
    _k("sasl.login.read.timeout.ms", _I, None, _LOW,
       "Read timeout towards the token endpoint (default 10000)."),
    _k("sasl.login.retry.backoff.ms", _L, 100, _LOW, "First wait between token fetch attempts.",
       _AT_LEAST_0),
    _k("sasl.login.retry.backoff.max.ms", _L, 10000, _LOW,
       "Longest wait between token fetch attempts.", _AT_LEAST_0),
    # -- transactions
    _k("transactional.id", _S, None, _LOW,
       "Stable id that enables transactions and fences older producers using the same id;"
       " requires idempotence.", NonEmpty()),
    _k("transaction.timeout.ms", _I, 60000, _LOW,
       "How long the coordinator waits for a transaction to finish before aborting it.",
       Range(1)),
    # -- metrics
    _k("metrics.sample.window.ms", _L, 30000, _LOW,
       "Window of one metrics sample; rates and averages cover metrics.num.samples such windows.",
       Range(1)),
    _k("metrics.num.samples", _I, 2, _LOW,
       "Samples (windows) kept per rate, average and maximum.", Range(1)),
    _k("metrics.recording.level", _S, "INFO", _LOW,
       "Most detailed metrics level recorded; every kprod metric is at INFO, so all are recorded.",
       OneOf(("INFO", "DEBUG", "TRACE"))),
    _k("metric.reporters", ConfigType.PLUGIN_LIST, ("org.apache.kafka.common.metrics.JmxReporter",),
       _LOW, "Metrics reporters (objects, classes or dotted names with init/metric_change/"
       "metric_removal/close); Java's JmxReporter is accepted and does nothing."),
    _k("statistics.interval.ms", _L, 0, _LOW,
       "Call stats.callback with a snapshot of every metric this often (librdkafka's key); 0: never.",
       _AT_LEAST_0),
    _k("stats.callback", ConfigType.PLUGIN, None, _LOW,
       "Called with the metrics snapshot (a dict) every statistics.interval.ms, on the I/O thread"
       " (kprod's counterpart of confluent-kafka's stats_cb)."),
    _k("enable.metrics.push", _B, True, _LOW,
       "Push client metrics to brokers that subscribe to them (accepted, no effect in kprod).",
       None, _IGNORED),
    # -- not supported yet
    _unsupported("security.providers", _S, None,
                 "Java security provider creators for TLS/SASL."),
    _unsupported("config.providers", ConfigType.LIST, (),
                 "Java config providers that resolve indirect values."),
    _unsupported("ssl.provider", _S, None, "Java security provider for TLS connections."),
    _unsupported("ssl.keymanager.algorithm", _S, "SunX509", "Java key manager algorithm for TLS."),
    _unsupported("ssl.trustmanager.algorithm", _S, "PKIX", "Java trust manager algorithm for TLS."),
    _unsupported("ssl.secure.random.implementation", _S, None,
                 "Java SecureRandom implementation for TLS."),
    _unsupported("ssl.engine.factory.class", _C, None,
                 "Java SSLEngine factory class; in Python, pass ssl.context instead."),
    _unsupported("sasl.client.callback.handler.class", _C, None,
                 "Java SASL client callback handler class; use sasl.oauthbearer.token.provider."),
    _unsupported("sasl.login.class", _C, None, "Java SASL login class."),
    _unsupported("sasl.kerberos.service.name", _S, None, "Kerberos principal the brokers run as."),
    _unsupported("sasl.kerberos.kinit.cmd", _S, "/usr/bin/kinit", "Path of kinit."),
    _unsupported("sasl.kerberos.ticket.renew.window.factor", _D, 0.8,
                 "Fraction of a Kerberos ticket's life after which it is renewed."),
    _unsupported("sasl.kerberos.ticket.renew.jitter", _D, 0.05,
                 "Random jitter added to Kerberos renewal."),
    _unsupported("sasl.kerberos.min.time.before.relogin", _L, 60000,
                 "Least time between Kerberos login refreshes."),
    ConfigKey(_OAUTH + "jwt.retriever.class", _C,
              "org.apache.kafka.common.security.oauthbearer.DefaultJwtRetriever", _LOW,
              "Java class that fetches OAuth tokens; Kafka's ClientCredentialsJwtRetriever is"
              " accepted (kprod's built-in client-credentials flow).", None, _UNSUPPORTED,
              tolerated=("org.apache.kafka.common.security.oauthbearer.ClientCredentialsJwtRetriever",)),
    _unsupported(_OAUTH + "jwt.validator.class", _C,
                 "org.apache.kafka.common.security.oauthbearer.DefaultJwtValidator",
                 "Class that validates OAuth tokens."),
    _unsupported(_OAUTH + "assertion.algorithm", _S, "RS256",
                 "Algorithm that signs a locally built JWT assertion."),
    _unsupported(_OAUTH + "assertion.claim.aud", _S, None, "aud claim of the JWT assertion."),
    _unsupported(_OAUTH + "assertion.claim.exp.seconds", _I, 300,
                 "Lifetime of the JWT assertion."),
    _unsupported(_OAUTH + "assertion.claim.iss", _S, None, "iss claim of the JWT assertion."),
    _unsupported(_OAUTH + "assertion.claim.jti.include", _B, False,
                 "Add a unique jti claim to the JWT assertion."),
    _unsupported(_OAUTH + "assertion.claim.nbf.seconds", _I, 60,
                 "How far back the JWT assertion is valid from."),
    _unsupported(_OAUTH + "assertion.claim.sub", _S, None, "sub claim of the JWT assertion."),
    _unsupported(_OAUTH + "assertion.file", _S, None, "File holding a pre-built JWT assertion."),
    _unsupported(_OAUTH + "assertion.private.key.file", _S, None,
                 "PEM private key that signs the JWT assertion."),
    _unsupported(_OAUTH + "assertion.private.key.passphrase", _P, None,
                 "Passphrase of that private key."),
    _unsupported(_OAUTH + "assertion.template.file", _S, None,
                 "Template of headers and claims for the JWT assertion."),
    _unsupported(_OAUTH + "scope.claim.name", _S, "scope", "Name of the scope claim."),
    _unsupported(_OAUTH + "sub.claim.name", _S, "sub", "Name of the subject claim."),
    _unsupported(_OAUTH + "jwks.endpoint.url", _S, None, "URL or file of the provider's JWKS."),
    _unsupported(_OAUTH + "jwks.endpoint.refresh.ms", _L, 3600000,
                 "How often the JWKS is refreshed."),
    _unsupported(_OAUTH + "jwks.endpoint.retry.backoff.ms", _L, 100,
                 "First wait between JWKS fetch attempts."),
    _unsupported(_OAUTH + "jwks.endpoint.retry.backoff.max.ms", _L, 10000,
                 "Longest wait between JWKS fetch attempts."),
    _unsupported(_OAUTH + "clock.skew.seconds", _I, 30,
                 "Clock difference allowed between the client and the OAuth provider."),
    _unsupported(_OAUTH + "expected.audience", ConfigType.LIST, (),
                 "Audiences a token must be issued for."),
    _unsupported(_OAUTH + "expected.issuer", _S, None, "Issuer a token must come from."),
)

_BY_NAME: dict[str, ConfigKey] = {key.name: key for key in PRODUCER_CONFIG}
if len(_BY_NAME) != len(PRODUCER_CONFIG):  # pragma: no cover - guards the table itself
    raise RuntimeError("PRODUCER_CONFIG lists a key twice")

# Parsing every default at import checks the table against its own validators.
_DEFAULTS: dict[str, Any] = {key.name: key.parse(key.default) for key in PRODUCER_CONFIG}

_IGNORED_PREFIXES = ("metrics.context.",)
"""Java passes ``metrics.context.*`` keys to reporters; kprod accepts and ignores them."""

_client_ids = itertools.count(1)


def config_key(name: str) -> ConfigKey:
    """The table entry for a key; ``KeyError`` with the closest key for a typo."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(_unknown_key_message(name)) from None


def _unknown_key_message(name: Any) -> str:
    if not isinstance(name, str):
        return (
            f"Configuration keys must be strings such as 'linger.ms', not"
            f" {_typename(name)} {name!r}."
        )
    guess = name.strip().lower().replace("_", ".")
    matches = [guess] if guess in _BY_NAME else difflib.get_close_matches(guess, _BY_NAME, n=1)
    hint = f" Did you mean '{matches[0]}'?" if matches else ""
    return (
        f"'{name}' is not a Kafka producer configuration key.{hint} See {DOCS_PAGE} for every"
        " key kprod accepts."
    )


def _shown(key: ConfigKey, value: Any) -> str:
    """A value for an error message; secrets are never echoed."""
    return "[hidden]" if key.type is ConfigType.PASSWORD else repr(value)


# ------------------------------------------------------------------ the config


class ProducerConfig(Mapping[str, Any]):
    """Parsed, validated, immutable producer settings.

    ``cfg[key]`` is the typed value of any key in ``PRODUCER_CONFIG`` (the
    default when the user did not set it); ``acks`` is 0, 1 or -1, lists are
    tuples. ``originals`` is what the user passed; ``is_explicit(key)`` says
    whether the user set a key. Invalid settings raise one ``ConfigError``
    naming every bad key.

    Cross-field rules follow the Java client 4.x:

    * ``enable.idempotence`` defaults to true. Set explicitly to true, it
      requires ``acks=all``, ``retries > 0`` and at most 5 requests in flight.
      Left at its default, ``acks`` other than all or ``retries=0`` turn it off
      silently. More than 5 in flight with idempotence still on is an error even
      when idempotence was only defaulted (Java 4.0 made this an error); when
      ``acks`` or ``retries`` already turned idempotence off, it is allowed.
    * ``transactional.id`` requires idempotence.
    * ``delivery.timeout.ms`` must be at least ``linger.ms + request.timeout.ms``;
      if the user did not set it, it is raised to that sum instead.
    * ``reconnect.backoff.max.ms`` follows ``reconnect.backoff.ms`` when only
      the latter is set, which turns off exponential reconnect backoff.
    * ``client.id`` defaults to ``kprod-producer-<transactional.id>`` or ``kprod-producer-<n>``.
    """

    __slots__ = ("_values", "_originals", "_idempotence")

    _values: dict[str, Any]
    _originals: Mapping[str, Any]
    _idempotence: bool

    def __init__(self, conf: Mapping[str, Any] | None = None) -> None:
        if conf is None:
            conf = {}
        elif isinstance(conf, ProducerConfig):
            conf = conf.originals
        elif not isinstance(conf, Mapping):
            raise ConfigError(
                "The producer configuration must be a mapping of Kafka keys to values, such as"
                f" {{'bootstrap.servers': 'localhost:9092'}}, not {_typename(conf)}."
            )
        originals = dict(conf)
        values = dict(_DEFAULTS)
        problems: list[Problem] = []
        for name, raw in originals.items():
            outcome = _parse_setting(name, raw)
            if isinstance(outcome, _Parsed):
                values[name] = outcome.value
            elif outcome is not None:
                problems.append(outcome)
        if not problems:
            problems = _apply_cross_field_rules(values, originals)
        if problems:
            raise _config_error(problems)
        set_ = object.__setattr__
        set_(self, "_values", values)
        set_(self, "_originals", MappingProxyType(originals))
        set_(self, "_idempotence", values["enable.idempotence"])

    # -- Mapping

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(_unknown_key_message(key)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    # -- the rest of the API

    @property
    def originals(self) -> Mapping[str, Any]:
        """The settings exactly as the user passed them (read-only)."""
        return self._originals

    @property
    def idempotence_enabled(self) -> bool:
        """Whether the producer runs idempotent, after the cross-field rules."""
        return self._idempotence

    def is_explicit(self, key: str) -> bool:
        """True if the user set ``key``; ``KeyError`` for a key that does not exist."""
        if key not in self._values:
            raise KeyError(_unknown_key_message(key))
        return key in self._originals

    def as_dict(self) -> dict[str, Any]:
        """Every key with its resolved value, as a new dict."""
        return dict(self._values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ProducerConfig is immutable; build a new one with the changes.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("ProducerConfig is immutable; build a new one with the changes.")

    def __reduce__(self) -> tuple[Any, ...]:
        # Restore the resolved values as they are: re-parsing would draw a new client.id.
        return (_restore, (dict(self._originals), dict(self._values)))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name!r}: {_shown(_BY_NAME[name], self._values[name])}"
            for name in self._originals
            if name in _BY_NAME
        )
        return f"ProducerConfig({{{shown}}})"


@dataclass(frozen=True, slots=True)
class _Parsed:
    value: Any


def _parse_setting(name: Any, raw: Any) -> _Parsed | Problem | None:
    """Parse one user setting: its value, the problem with it, or None to ignore it."""
    key = _BY_NAME.get(name) if isinstance(name, str) else None
    if key is None:
        if isinstance(name, str) and name.startswith(_IGNORED_PREFIXES):
            return None
        return ((str(name),), _unknown_key_message(name))
    try:
        value = key.parse(raw)
    except _NotYet:
        return ((name,), _unsupported_message(key, raw))
    except _BadValue as bad:
        if key.support is Support.UNSUPPORTED:
            return ((name,), _unsupported_message(key, raw))
        end = "" if bad.reason.endswith("?") else "."
        return ((name,), f"{name}={_shown(key, raw)} is not valid: expected {bad.reason}{end}")
    if key.support is Support.UNSUPPORTED and value != _DEFAULTS[name]:
        if value not in key.tolerated:
            return ((name,), _unsupported_message(key, raw))
    return _Parsed(value)


def _restore(originals: dict[str, Any], values: dict[str, Any]) -> ProducerConfig:
    """Unpickle a ``ProducerConfig`` without re-running the rules."""
    cfg = ProducerConfig.__new__(ProducerConfig)
    object.__setattr__(cfg, "_values", values)
    object.__setattr__(cfg, "_originals", MappingProxyType(originals))
    object.__setattr__(cfg, "_idempotence", values["enable.idempotence"])
    return cfg


def _unsupported_message(key: ConfigKey, raw: Any) -> str:
    if key.name.startswith(("ssl.", "sasl.", "security.")):
        why = "it names a Java plugin or Kerberos setting kprod has no equivalent for (see docs/security.md)"
    else:
        why = "kprod does not implement it yet"
    return (
        f"{key.name}={_shown(key, raw)} is not supported yet: {why}. Remove {key.name} or set it"
        f" to its default ({key.display_default()})."
    )


def _config_error(problems: list[Problem]) -> ConfigError:
    keys = tuple(dict.fromkeys(key for names, _ in problems for key in names))
    if len(problems) == 1:
        return ConfigError(problems[0][1], keys=keys)
    lines = "\n".join(f"  - {text}" for _, text in problems)
    return ConfigError(
        f"The producer configuration has {len(problems)} problems:\n{lines}", keys=keys
    )


def _apply_cross_field_rules(values: dict[str, Any], originals: Mapping[str, Any]) -> list[Problem]:
    """Java's post-processing of producer configs; updates ``values`` in place."""
    problems: list[Problem] = []

    if not values["bootstrap.servers"]:
        problems.append((
            ("bootstrap.servers",),
            "bootstrap.servers is required: set it to the brokers to contact first, such as"
            " 'localhost:9092' or 'host1:9092,host2:9092'.",
        ))

    if "reconnect.backoff.ms" in originals and "reconnect.backoff.max.ms" not in originals:
        values["reconnect.backoff.max.ms"] = values["reconnect.backoff.ms"]

    problems += _resolve_idempotence(values, originals)

    linger, request = values["linger.ms"], values["request.timeout.ms"]
    floor = min(linger + request, INT32_MAX)
    if values["delivery.timeout.ms"] < floor:
        if "delivery.timeout.ms" in originals:
            problems.append((
                ("delivery.timeout.ms", "linger.ms", "request.timeout.ms"),
                f"delivery.timeout.ms={values['delivery.timeout.ms']} must be at least linger.ms"
                f" + request.timeout.ms = {linger} + {request} = {floor}. Raise"
                " delivery.timeout.ms, or lower linger.ms or request.timeout.ms.",
            ))
        else:
            values["delivery.timeout.ms"] = floor

    if "client.id" not in originals:
        txn_id = values["transactional.id"]
        suffix = txn_id if txn_id is not None else str(next(_client_ids))
        values["client.id"] = f"kprod-producer-{suffix}"
    return problems


def _resolve_idempotence(values: dict[str, Any], originals: Mapping[str, Any]) -> list[Problem]:
    explicit = "enable.idempotence" in originals
    enabled: bool = values["enable.idempotence"]
    in_flight = values["max.in.flight.requests.per.connection"]
    conflicts: list[tuple[str, str]] = []
    if enabled:
        if values["acks"] != -1:
            conflicts.append(("acks", f"acks=all (it is {values['acks']})"))
        if values["retries"] == 0:
            conflicts.append(("retries", "retries greater than 0 (it is 0)"))
        if in_flight > MAX_IN_FLIGHT_FOR_IDEMPOTENCE:
            conflicts.append((
                "max.in.flight.requests.per.connection",
                f"max.in.flight.requests.per.connection of at most"
                f" {MAX_IN_FLIGHT_FOR_IDEMPOTENCE} (it is {in_flight})",
            ))
    keys = tuple(key for key, _ in conflicts)
    if conflicts and explicit:
        needs = "; ".join(text for _, text in conflicts)
        return [(
            ("enable.idempotence", *keys),
            f"enable.idempotence=true needs {needs}. Change {', '.join(keys)}, or set"
            " enable.idempotence=false.",
        )]
    silent = [key for key in keys if key != "max.in.flight.requests.per.connection"]
    if conflicts and not silent:
        return [(
            ("max.in.flight.requests.per.connection", "enable.idempotence"),
            f"max.in.flight.requests.per.connection={in_flight} is more than"
            f" {MAX_IN_FLIGHT_FOR_IDEMPOTENCE}, the most the idempotent producer allows, and"
            " enable.idempotence is true by default. Set it to 5 or less, or set"
            " enable.idempotence=false.",
        )]
    if silent:
        # Java: a defaulted enable.idempotence yields to conflicting settings.
        values["enable.idempotence"] = enabled = False
    if values["transactional.id"] is not None and not enabled:
        if silent:
            why = f"idempotence was turned off because of {' and '.join(silent)}"
            fix = f"Remove transactional.id, or change {' and '.join(silent)}"
            related = tuple(silent)
        else:
            why = "enable.idempotence is false"
            fix = "Remove transactional.id, or set enable.idempotence=true"
            related = ("enable.idempotence",)
        return [(
            ("transactional.id", *related),
            f"transactional.id is set, so the producer needs idempotence, but {why}. {fix}.",
        )]
    return []
