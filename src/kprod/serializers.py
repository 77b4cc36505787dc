"""Serializers: turn record keys and values into bytes before they are batched.

A serializer is any object with ``serialize(topic, data) -> bytes | None``
(Java's ``Serializer``), or a plain callable ``(topic, data) -> bytes | None``.
``None`` means a null key or value (a tombstone, for a value). The built-ins
write exactly the bytes Java's serializers of the same name write, so a Java
consumer using the matching deserializer reads them back.

``resolve_serializer`` turns whatever the user configured (an object, a
callable, a short name such as ``"string"`` or a Java class name taken from a
properties file) into one callable the producer calls per record. The default,
bytes pass-through, resolves to the module function ``serialize_bytes``; the
producer can test ``is_default_bytes`` and skip the call for ``bytes`` data.

A serializer reports bad input with ``SerializationError``; the producer adds
whether the key or the value failed with ``serialization_failure``.
"""

from __future__ import annotations

import codecs
import json
import struct
import uuid
from collections.abc import Callable, Mapping
from types import BuiltinFunctionType, FunctionType, MappingProxyType, ModuleType
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from kprod.errors import ConfigError, SerializationError

__all__ = [
    "SERIALIZER_NAMES",
    "SERIALIZER_SHORT_NAMES",
    "BooleanSerializer",
    "BytesSerializer",
    "DoubleSerializer",
    "FloatSerializer",
    "IntegerSerializer",
    "JsonSerializer",
    "LongSerializer",
    "SerializeFn",
    "Serializer",
    "ShortSerializer",
    "StringSerializer",
    "UUIDSerializer",
    "VoidSerializer",
    "is_default_bytes",
    "resolve_serializer",
    "serialization_failure",
    "serialize_bytes",
    "serializer_name",
]

SerializeFn: TypeAlias = Callable[[str, Any], "bytes | None"]
"""The resolved form the producer calls: ``fn(topic, data) -> bytes | None``."""


@runtime_checkable
class Serializer(Protocol):
    """What a serializer object provides (Java's ``Serializer.serialize``)."""

    def serialize(self, topic: str, data: Any) -> bytes | None: ...


def _rejected(
    serializer: str, topic: str, expected: str, received: str, *, why: str = ""
) -> SerializationError:
    """Build the error for data a serializer cannot take.

    ``expected`` and ``received`` are kept on the error so ``serialization_failure``
    can restate them with the key/value context the serializer does not know.
    """
    reason = why or f"it expects {expected}"
    return SerializationError(
        f"{serializer} cannot serialize {received} for topic '{topic}': {reason}."
        f" Pass {expected}, or configure a serializer that accepts this data.",
        topic=topic,
        expected=expected,
        received=received,
    )


def _type_of(data: Any) -> str:
    return f"a value of type {type(data).__qualname__}"


# ------------------------------------------------------------------ bytes


def serialize_bytes(topic: str, data: Any) -> bytes | None:
    """The default serializer: ``bytes`` and ``None`` pass through unchanged.

    ``bytearray`` and ``memoryview`` are copied to ``bytes`` so later changes by
    the caller cannot alter a record already in the buffer.
    """
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise _rejected(
        "BytesSerializer", topic, "bytes, bytearray, memoryview or None", _type_of(data)
    )


class BytesSerializer:
    """Bytes pass-through (Java ByteArraySerializer); the producer's default."""

    __slots__ = ()
    java_name: ClassVar[str] = "org.apache.kafka.common.serialization.ByteArraySerializer"

    def serialize(self, topic: str, data: Any) -> bytes | None:
        return serialize_bytes(topic, data)

    def __repr__(self) -> str:
        return "BytesSerializer()"


# ------------------------------------------------------------------ text


class StringSerializer:
    """``str`` encoded as text, UTF-8 by default (Java StringSerializer).

    ``encoding`` plays the part of Java's ``serializer.encoding`` setting; any
    Python codec name works, and an unknown one fails at construction.
    """

    __slots__ = ("encoding",)
    java_name: ClassVar[str] = "org.apache.kafka.common.serialization.StringSerializer"

    def __init__(self, encoding: str = "utf-8") -> None:
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise ConfigError(
                f"StringSerializer got the unknown encoding {encoding!r}. Use a Python codec name"
                " such as 'utf-8' or 'latin-1'."
            ) from None
        self.encoding = encoding

    def serialize(self, topic: str, data: Any) -> bytes | None:
        if type(data) is str or isinstance(data, str):
            try:
                return data.encode(self.encoding)
            except UnicodeEncodeError as exc:
                raise _rejected(
                    "StringSerializer",
                    topic,
                    f"text that {self.encoding} can encode",
                    "a str",
                    why=f"{self.encoding} cannot encode {data[exc.start:exc.end]!r}",
                ) from exc
        if data is None:
            return None
        raise _rejected("StringSerializer", topic, "a str or None", _type_of(data))

    def __repr__(self) -> str:
        return f"StringSerializer(encoding={self.encoding!r})"


class UUIDSerializer:
    """``uuid.UUID`` as its 36-character text form (Java UUIDSerializer)."""

    __slots__ = ()
    java_name: ClassVar[str] = "org.apache.kafka.common.serialization.UUIDSerializer"

    def serialize(self, topic: str, data: Any) -> bytes | None:
        if isinstance(data, uuid.UUID):
            return str(data).encode("ascii")
        if data is None:
            return None
        raise _rejected("UUIDSerializer", topic, "a uuid.UUID or None", _type_of(data))

    def __repr__(self) -> str:
        return "UUIDSerializer()"


class JsonSerializer:
    """Any JSON-encodable value as compact UTF-8 JSON; ``None`` stays a null record.

    ``None`` becomes a null value (a tombstone), not the four bytes ``null``, so
    deleting a key on a compacted topic works. NaN and infinities are refused:
    they are not JSON and other readers would reject them. ``default`` is passed
    to ``json`` for types it cannot encode (for example ``default=str`` for
    ``datetime``); ``sort_keys`` makes equal dicts encode to equal bytes.
    """

    __slots__ = ("_encode",)

    def __init__(
        self, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
    ) -> None:
        self._encode = json.JSONEncoder(
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            sort_keys=sort_keys,
            default=default,
        ).encode

    def serialize(self, topic: str, data: Any) -> bytes | None:
        if data is None:
            return None
        try:
            return self._encode(data).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise _rejected(
                "JsonSerializer",
                topic,
                "JSON-encodable data (dict, list, str, int, finite float, bool or None)",
                _type_of(data),
                why=f"json could not encode it ({exc})",
            ) from exc

    def __repr__(self) -> str:
        return "JsonSerializer()"


# ------------------------------------------------------------------ numbers


class _FixedWidthSerializer:
    """Big-endian two's-complement integers of one width, as Java writes them."""

    __slots__ = ()
    java_name: ClassVar[str]
    _label: ClassVar[str]
    _pack: ClassVar[Callable[[int], bytes]]
    _low: ClassVar[int]
    _high: ClassVar[int]

    def serialize(self, topic: str, data: Any) -> bytes | None:
        if type(data) is int:
            if self._low <= data <= self._high:
                return type(self)._pack(data)
        elif data is None:
            return None
        elif isinstance(data, int) and not isinstance(data, bool):
            data = int(data)
            if self._low <= data <= self._high:
                return type(self)._pack(data)
        else:
            raise _rejected(type(self).__name__, topic, "an int or None", _type_of(data))
        raise _rejected(
            type(self).__name__,
            topic,
            f"an int from {self._low} to {self._high}",
            f"the int {data}",
            why=f"it is outside the {self._label} range {self._low}..{self._high}",
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class IntegerSerializer(_FixedWidthSerializer):
    """4-byte big-endian signed int32 (Java IntegerSerializer)."""

    __slots__ = ()
    java_name = "org.apache.kafka.common.serialization.IntegerSerializer"
    _label = "int32"
    _pack = struct.Struct(">i").pack
    _low, _high = -(2**31), 2**31 - 1


class LongSerializer(_FixedWidthSerializer):
    """8-byte big-endian signed int64 (Java LongSerializer)."""

    __slots__ = ()
    java_name = "org.apache.kafka.common.serialization.LongSerializer"
    _label = "int64"
    _pack = struct.Struct(">q").pack
    _low, _high = -(2**63), 2**63 - 1


class ShortSerializer(_FixedWidthSerializer):
    """2-byte big-endian signed int16 (Java ShortSerializer)."""

    __slots__ = ()
    java_name = "org.apache.kafka.common.serialization.ShortSerializer"
    _label = "int16"
    _pack = struct.Struct(">h").pack
    _low, _high = -(2**15), 2**15 - 1


class _FloatingSerializer:
    """IEEE 754 big-endian floats; ints are accepted and converted."""

    __slots__ = ()
    java_name: ClassVar[str]
    _pack: ClassVar[Callable[[float], bytes]]

    def serialize(self, topic: str, data: Any) -> bytes | None:
        if type(data) is float or (
            isinstance(data, (float, int)) and not isinstance(data, bool)
        ):
            try:
                return type(self)._pack(data)
            except (OverflowError, struct.error) as exc:
                raise _rejected(
                    type(self).__name__,
                    topic,
                    "a number the format can hold",
                    f"the number {data!r}",
                    why=str(exc),
                ) from exc
        if data is None:
            return None
        raise _rejected(type(self).__name__, topic, "a float, an int or None", _type_of(data))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DoubleSerializer(_FloatingSerializer):
    """8-byte big-endian IEEE 754 double (Java DoubleSerializer); Python's float."""

    __slots__ = ()
    java_name = "org.apache.kafka.common.serialization.DoubleSerializer"
    _pack = struct.Struct(">d").pack


class FloatSerializer(_FloatingSerializer):
    """4-byte big-endian IEEE 754 single precision (Java FloatSerializer)."""

    __slots__ = ()
    java_name = "org.apache.kafka.common.serialization.FloatSerializer"
    _pack = struct.Struct(">f").pack


class BooleanSerializer:
    """One byte, 1 for True and 0 for False (Java BooleanSerializer)."""

    __slots__ = ()
    java_name: ClassVar[str] = "org.apache.kafka.common.serialization.BooleanSerializer"

    def serialize(self, topic: str, data: Any) -> bytes | None:
        if data is True:
            return b"\x01"
        if data is False:
            return b"\x00"
        if data is None:
            return None
        raise _rejected("BooleanSerializer", topic, "a bool or None", _type_of(data))

    def __repr__(self) -> str:
        return "BooleanSerializer()"


class VoidSerializer:
    """Only ``None`` (Java VoidSerializer): for topics whose keys are always null."""

    __slots__ = ()
    java_name: ClassVar[str] = "org.apache.kafka.common.serialization.VoidSerializer"

    def serialize(self, topic: str, data: Any) -> bytes | None:
        if data is None:
            return None
        raise _rejected("VoidSerializer", topic, "None", _type_of(data))

    def __repr__(self) -> str:
        return "VoidSerializer()"


# ------------------------------------------------------------------ resolution

_JAVA_PACKAGE = "org.apache.kafka.common.serialization."

_SHORT_NAMES: dict[str, Callable[[], Any]] = {
    "bytes": BytesSerializer,
    "string": StringSerializer,
    "integer": IntegerSerializer,
    "long": LongSerializer,
    "short": ShortSerializer,
    "double": DoubleSerializer,
    "boolean": BooleanSerializer,
    "uuid": UUIDSerializer,
    "void": VoidSerializer,
    "json": JsonSerializer,
}

_JAVA_NAMES: dict[str, Callable[[], Any]] = {
    _JAVA_PACKAGE + "ByteArraySerializer": BytesSerializer,
    _JAVA_PACKAGE + "ByteBufferSerializer": BytesSerializer,
    _JAVA_PACKAGE + "BytesSerializer": BytesSerializer,
    _JAVA_PACKAGE + "StringSerializer": StringSerializer,
    _JAVA_PACKAGE + "IntegerSerializer": IntegerSerializer,
    _JAVA_PACKAGE + "LongSerializer": LongSerializer,
    _JAVA_PACKAGE + "ShortSerializer": ShortSerializer,
    _JAVA_PACKAGE + "DoubleSerializer": DoubleSerializer,
    _JAVA_PACKAGE + "FloatSerializer": FloatSerializer,
    _JAVA_PACKAGE + "BooleanSerializer": BooleanSerializer,
    _JAVA_PACKAGE + "UUIDSerializer": UUIDSerializer,
    _JAVA_PACKAGE + "VoidSerializer": VoidSerializer,
}

_BY_LOWER_NAME: dict[str, Callable[[], Any]] = {
    name.lower(): factory for name, factory in (_SHORT_NAMES | _JAVA_NAMES).items()
}

SERIALIZER_NAMES: Mapping[str, Callable[[], Any]] = MappingProxyType(_SHORT_NAMES | _JAVA_NAMES)
"""Every name ``resolve_serializer`` accepts, to the factory of its serializer."""

SERIALIZER_SHORT_NAMES: tuple[str, ...] = tuple(_SHORT_NAMES)
"""The short names (``"string"``, ``"json"``, ...), for messages and docs."""


def _unknown_name(name: str, config_key: str) -> ConfigError:
    short = ", ".join(_SHORT_NAMES)
    return ConfigError(
        f"{config_key}={name!r} is not a serializer kprod knows. Use one of {short}; a Java class"
        f" name such as {_JAVA_PACKAGE}StringSerializer; a serializer object with"
        " serialize(topic, data); or a callable (topic, data) -> bytes | None.",
        keys=(config_key,) if "." in config_key else (),
    )


def _from_name(name: str, config_key: str) -> Any:
    factory = _BY_LOWER_NAME.get(name.strip().lower())
    if factory is None:
        raise _unknown_name(name, config_key)
    return factory()


def resolve_serializer(spec: Any = None, *, config_key: str = "serializer") -> SerializeFn:
    """Turn a configured serializer into the callable the producer calls per record.

    ``spec`` may be ``None`` (bytes pass-through), a name (see
    ``SERIALIZER_NAMES``; short names ignore case), a serializer object, a
    serializer class that takes no arguments, or a callable
    ``(topic, data) -> bytes | None``. ``config_key`` (``key.serializer`` or
    ``value.serializer``) only names the setting in errors. Anything else raises
    ``ConfigError``.
    """
    if spec is None:
        return serialize_bytes
    if isinstance(spec, str):
        spec = _from_name(spec, config_key)
    elif isinstance(spec, type):
        try:
            spec = spec()
        except TypeError as exc:
            raise ConfigError(
                f"{config_key}={spec.__qualname__} is a class that kprod could not create without"
                f" arguments ({exc}). Pass an instance instead, for example"
                f" {spec.__qualname__}(...).",
                keys=(config_key,) if "." in config_key else (),
            ) from exc
    if type(spec) is BytesSerializer:
        return serialize_bytes
    method = getattr(spec, "serialize", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if callable(spec):
        return spec  # type: ignore[no-any-return]
    raise ConfigError(
        f"{config_key} got {type(spec).__qualname__} {spec!r}, which is not a serializer. Pass a"
        " serializer object with serialize(topic, data), a callable (topic, data) -> bytes |"
        f" None, or one of the names {', '.join(_SHORT_NAMES)}.",
        keys=(config_key,) if "." in config_key else (),
    )


def is_default_bytes(spec: Any) -> bool:
    """True if ``spec`` resolves to bytes pass-through.

    The producer uses this to hand ``bytes`` keys and values straight to the
    accumulator without a call per record.
    """
    if spec is None or spec is serialize_bytes or spec is BytesSerializer:
        return True
    if type(spec) is BytesSerializer:
        return True
    if isinstance(spec, str):
        return _BY_LOWER_NAME.get(spec.strip().lower()) is BytesSerializer
    return False


def serializer_name(spec: Any) -> str:
    """A short human name for a configured serializer, for error messages."""
    if spec is None or spec is serialize_bytes:
        return "BytesSerializer"
    if isinstance(spec, str):
        return spec
    owner = getattr(spec, "__self__", None)
    if owner is not None and not isinstance(owner, (type, ModuleType)):
        spec = owner  # a bound serialize method: name its object
    if isinstance(spec, (type, FunctionType, BuiltinFunctionType)):
        return spec.__qualname__
    return type(spec).__qualname__


def serialization_failure(
    exc: BaseException, *, topic: str, is_key: bool, serializer: Any = None
) -> SerializationError:
    """Restate a serializer's failure with the record's key/value context.

    The producer calls this when a key or value serializer raises, and raises
    the result ``from exc``. The message names the topic, whether the key or the
    value failed, what was received, what the serializer expects, and which
    setting to change.
    """
    part = "key" if is_key else "value"
    setting = "key.serializer" if is_key else "value.serializer"
    name = serializer_name(serializer)
    expected = received = None
    if isinstance(exc, SerializationError):
        expected, received = exc.expected, exc.received
    if expected and received:
        text = (
            f"The record {part} for topic '{topic}' could not be serialized: {name} expects"
            f" {expected} but got {received}. Pass a {part} of that kind, or set {setting} to"
            " a serializer that accepts it."
        )
    else:
        detail = str(exc).strip() or type(exc).__name__
        if not isinstance(exc, SerializationError):
            detail = f"{type(exc).__name__}: {detail}"
        if not detail.endswith((".", "!", "?")):
            detail += "."
        text = (
            f"The record {part} for topic '{topic}' could not be serialized by {name}: {detail}"
            f" Fix the {part} or the serializer, or set {setting} to one that accepts it."
        )
    err = SerializationError(
        text, topic=topic, is_key=is_key, expected=expected, received=received
    )
    err.__cause__ = exc
    return err
