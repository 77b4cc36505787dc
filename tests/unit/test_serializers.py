"""kprod.serializers: exact bytes (as Java's serializers write them), errors, resolution."""

from __future__ import annotations

import enum
import math
import uuid
from typing import Any

import pytest

from kprod.errors import ConfigError, SerializationError
from kprod.serializers import (
    SERIALIZER_NAMES,
    SERIALIZER_SHORT_NAMES,
    BooleanSerializer,
    BytesSerializer,
    DoubleSerializer,
    FloatSerializer,
    IntegerSerializer,
    JsonSerializer,
    LongSerializer,
    Serializer,
    ShortSerializer,
    StringSerializer,
    UUIDSerializer,
    VoidSerializer,
    is_default_bytes,
    resolve_serializer,
    serialization_failure,
    serialize_bytes,
    serializer_name,
)

T = "orders"


class Color(enum.IntEnum):
    RED = 7


# ------------------------------------------------------------------ exact bytes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"\x00\x00\x00\x00"),
        (1, b"\x00\x00\x00\x01"),
        (-1, b"\xff\xff\xff\xff"),
        (256, b"\x00\x00\x01\x00"),
        (2**31 - 1, b"\x7f\xff\xff\xff"),
        (-(2**31), b"\x80\x00\x00\x00"),
        (Color.RED, b"\x00\x00\x00\x07"),
    ],
)
def test_integer_serializer_bytes(value: int, expected: bytes) -> None:
    assert IntegerSerializer().serialize(T, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, b"\x00\x00\x00\x00\x00\x00\x00\x01"),
        (-1, b"\xff" * 8),
        (2**63 - 1, b"\x7f" + b"\xff" * 7),
        (-(2**63), b"\x80" + b"\x00" * 7),
        (1_700_000_000_000, bytes.fromhex("0000018bcfe56800")),
    ],
)
def test_long_serializer_bytes(value: int, expected: bytes) -> None:
    assert LongSerializer().serialize(T, value) == expected


def test_short_serializer_bytes() -> None:
    s = ShortSerializer()
    assert s.serialize(T, 1) == b"\x00\x01"
    assert s.serialize(T, -1) == b"\xff\xff"
    assert s.serialize(T, 32767) == b"\x7f\xff"
    assert s.serialize(T, -32768) == b"\x80\x00"


@pytest.mark.parametrize(
    ("cls", "value", "low", "high"),
    [
        (IntegerSerializer, 2**31, -(2**31), 2**31 - 1),
        (IntegerSerializer, -(2**31) - 1, -(2**31), 2**31 - 1),
        (LongSerializer, 2**63, -(2**63), 2**63 - 1),
        (ShortSerializer, 32768, -32768, 32767),
    ],
)
def test_integers_out_of_range(cls: type, value: int, low: int, high: int) -> None:
    with pytest.raises(SerializationError) as info:
        cls().serialize(T, value)
    text = str(info.value)
    assert f"topic '{T}'" in text and str(value) in text and f"{low}..{high}" in text
    assert info.value.topic == T
    assert info.value.expected == f"an int from {low} to {high}"


@pytest.mark.parametrize("bad", [True, "1", 1.0, b"\x01"])
def test_integer_serializer_rejects_other_types(bad: Any) -> None:
    with pytest.raises(SerializationError) as info:
        IntegerSerializer().serialize(T, bad)
    assert info.value.received == f"a value of type {type(bad).__qualname__}"
    assert info.value.expected == "an int or None"
    assert "IntegerSerializer cannot serialize" in str(info.value)


def test_double_and_float_bytes() -> None:
    assert DoubleSerializer().serialize(T, 1.0) == bytes.fromhex("3ff0000000000000")
    assert DoubleSerializer().serialize(T, -2.5) == bytes.fromhex("c004000000000000")
    assert DoubleSerializer().serialize(T, 2) == bytes.fromhex("4000000000000000")
    assert DoubleSerializer().serialize(T, math.inf) == bytes.fromhex("7ff0000000000000")
    assert FloatSerializer().serialize(T, 1.0) == bytes.fromhex("3f800000")
    assert FloatSerializer().serialize(T, -0.5) == bytes.fromhex("bf000000")


def test_double_and_float_errors() -> None:
    with pytest.raises(SerializationError, match="a float, an int or None"):
        DoubleSerializer().serialize(T, "1.0")
    with pytest.raises(SerializationError):
        DoubleSerializer().serialize(T, True)
    with pytest.raises(SerializationError, match="1e\\+39"):
        FloatSerializer().serialize(T, 1e39)
    with pytest.raises(SerializationError):
        DoubleSerializer().serialize(T, 10**400)


def test_boolean_uuid_void() -> None:
    assert BooleanSerializer().serialize(T, True) == b"\x01"
    assert BooleanSerializer().serialize(T, False) == b"\x00"
    with pytest.raises(SerializationError):
        BooleanSerializer().serialize(T, 1)
    u = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
    assert UUIDSerializer().serialize(T, u) == b"123e4567-e89b-12d3-a456-426614174000"
    with pytest.raises(SerializationError, match="uuid.UUID"):
        UUIDSerializer().serialize(T, str(u))
    assert VoidSerializer().serialize(T, None) is None
    with pytest.raises(SerializationError, match="expects None"):
        VoidSerializer().serialize(T, b"")


@pytest.mark.parametrize(
    "serializer",
    [BytesSerializer(), StringSerializer(), IntegerSerializer(), LongSerializer(),
     ShortSerializer(), DoubleSerializer(), FloatSerializer(), BooleanSerializer(),
     UUIDSerializer(), VoidSerializer(), JsonSerializer()],
)
def test_none_is_a_null_record_for_every_builtin(serializer: Serializer) -> None:
    assert isinstance(serializer, Serializer)
    assert serializer.serialize(T, None) is None


def test_string_serializer() -> None:
    assert StringSerializer().serialize(T, "héllo €") == "héllo €".encode("utf-8")
    assert StringSerializer().serialize(T, "") == b""
    assert StringSerializer("latin-1").serialize(T, "é") == b"\xe9"
    assert StringSerializer("UTF-16-BE").serialize(T, "A") == b"\x00A"
    with pytest.raises(SerializationError) as info:
        StringSerializer("ascii").serialize(T, "é")
    assert "ascii cannot encode 'é'" in str(info.value)
    with pytest.raises(SerializationError) as info:
        StringSerializer().serialize(T, b"raw")
    assert "a str or None" in str(info.value) and "bytes" in str(info.value)
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        StringSerializer("klingon")


def test_bytes_serializer() -> None:
    data = b"abc"
    assert serialize_bytes(T, data) is data
    assert BytesSerializer().serialize(T, data) is data
    buf = bytearray(b"xyz")
    out = serialize_bytes(T, buf)
    assert type(out) is bytes and out == b"xyz"
    buf[0] = 0
    assert out == b"xyz"  # copied, not shared
    view = memoryview(b"0123456789")[2:5]
    assert serialize_bytes(T, view) == b"234"
    with pytest.raises(SerializationError) as info:
        serialize_bytes(T, "text")
    text = str(info.value)
    assert text.startswith("BytesSerializer cannot serialize a value of type str for topic 'orders'")
    assert "bytes, bytearray, memoryview or None" in text


def test_json_serializer() -> None:
    js = JsonSerializer()
    assert js.serialize(T, {"a": 1, "b": [1, 2.5, None, True]}) == b'{"a":1,"b":[1,2.5,null,true]}'
    assert js.serialize(T, {"k": "é"}) == '{"k":"é"}'.encode("utf-8")
    assert js.serialize(T, "s") == b'"s"'
    assert JsonSerializer(sort_keys=True).serialize(T, {"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    assert JsonSerializer(default=str).serialize(T, {"u": uuid.UUID(int=0)}) == (
        b'{"u":"00000000-0000-0000-0000-000000000000"}'
    )
    with pytest.raises(SerializationError, match="JSON-encodable"):
        js.serialize(T, {1, 2})
    with pytest.raises(SerializationError):
        js.serialize(T, {"x": math.nan})


# ------------------------------------------------------------------ resolution


@pytest.mark.parametrize(
    "spec",
    [None, "bytes", "BYTES", " bytes ", BytesSerializer(), BytesSerializer, serialize_bytes,
     "org.apache.kafka.common.serialization.ByteArraySerializer",
     "org.apache.kafka.common.serialization.BytesSerializer",
     "org.apache.kafka.common.serialization.ByteBufferSerializer"],
)
def test_default_bytes_forms_resolve_to_the_same_function(spec: Any) -> None:
    assert resolve_serializer(spec) is serialize_bytes
    assert is_default_bytes(spec)


@pytest.mark.parametrize("spec", ["string", "json", IntegerSerializer(), lambda t, d: b""])
def test_other_serializers_are_not_default_bytes(spec: Any) -> None:
    assert not is_default_bytes(spec)
    assert resolve_serializer(spec) is not serialize_bytes


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("string", "a", b"a"),
        ("String", "a", b"a"),
        ("org.apache.kafka.common.serialization.StringSerializer", "a", b"a"),
        ("integer", 1, b"\x00\x00\x00\x01"),
        ("org.apache.kafka.common.serialization.IntegerSerializer", 1, b"\x00\x00\x00\x01"),
        ("long", 1, b"\x00" * 7 + b"\x01"),
        ("short", 1, b"\x00\x01"),
        ("double", 1.0, bytes.fromhex("3ff0000000000000")),
        ("org.apache.kafka.common.serialization.FloatSerializer", 1.0, bytes.fromhex("3f800000")),
        ("boolean", True, b"\x01"),
        ("uuid", uuid.UUID(int=1), b"00000000-0000-0000-0000-000000000001"),
        ("void", None, None),
        ("json", [1], b"[1]"),
    ],
)
def test_resolve_by_name(name: str, data: Any, expected: bytes | None) -> None:
    assert resolve_serializer(name)(T, data) == expected


def test_every_registered_name_resolves() -> None:
    for name in SERIALIZER_NAMES:
        assert callable(resolve_serializer(name))
    assert SERIALIZER_SHORT_NAMES == (
        "bytes", "string", "integer", "long", "short", "double", "boolean", "uuid", "void", "json"
    )


def test_resolve_objects_callables_and_classes() -> None:
    ser = StringSerializer("latin-1")
    fn = resolve_serializer(ser)
    assert fn.__self__ is ser  # type: ignore[attr-defined]
    assert fn(T, "é") == b"\xe9"

    def plain(topic: str, data: Any) -> bytes:
        return f"{topic}:{data}".encode()

    assert resolve_serializer(plain) is plain
    assert resolve_serializer(LongSerializer)(T, 2) == b"\x00" * 7 + b"\x02"


def test_resolve_errors() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_serializer("strng", config_key="value.serializer")
    text = str(info.value)
    assert "value.serializer='strng'" in text
    for name in SERIALIZER_SHORT_NAMES:
        assert name in text
    assert info.value.keys == ("value.serializer",)
    with pytest.raises(ConfigError, match="not a serializer"):
        resolve_serializer(42, config_key="key.serializer")

    class NeedsArgs:
        def __init__(self, x: int) -> None:
            self.x = x

        def serialize(self, topic: str, data: Any) -> bytes:
            return b""

    with pytest.raises(ConfigError, match="Pass an instance instead"):
        resolve_serializer(NeedsArgs)


# ------------------------------------------------------------------ error context


def test_serialization_failure_adds_key_or_value_context() -> None:
    fn = resolve_serializer("string")
    try:
        fn(T, 42)
    except SerializationError as exc:
        err = serialization_failure(exc, topic=T, is_key=True, serializer=fn)
    assert isinstance(err, SerializationError)
    assert err.is_key is True and err.topic == T and err.__cause__ is not None
    assert str(err) == (
        "The record key for topic 'orders' could not be serialized: StringSerializer expects a"
        " str or None but got a value of type int. Pass a key of that kind, or set key.serializer"
        " to a serializer that accepts it."
    )


def test_serialization_failure_wraps_foreign_exceptions() -> None:
    def broken(topic: str, data: Any) -> bytes:
        raise KeyError("missing field")

    try:
        broken(T, {})
    except KeyError as exc:
        err = serialization_failure(exc, topic=T, is_key=False, serializer=broken)
    text = str(err)
    assert "The record value for topic 'orders' could not be serialized by" in text
    assert "broken" in text and "KeyError" in text and "missing field" in text
    assert "value.serializer" in text
    assert err.is_key is False and isinstance(err.__cause__, KeyError)


def test_serializer_name() -> None:
    assert serializer_name(None) == "BytesSerializer"
    assert serializer_name(serialize_bytes) == "BytesSerializer"
    assert serializer_name(JsonSerializer()) == "JsonSerializer"
    assert serializer_name(resolve_serializer("integer")) == "IntegerSerializer"
    assert serializer_name("json") == "json"
