"""Kafka varints: exact bytes from the protocol reference, extremes, round trips, errors."""

from __future__ import annotations

import random

import pytest

from kprod.protocol.varint import (
    TABLE_LIMIT,
    UVARINT_TABLE,
    decode_uvarint,
    decode_varint,
    encode_uvarint,
    encode_varint,
    size_of_uvarint,
    size_of_varint,
    zigzag_decode,
    zigzag_encode,
)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        # kafka-protocol.md §2
        (0, "00"),
        (-1, "01"),
        (1, "02"),
        (300, "d804"),
        (-2, "03"),
        (63, "7e"),
        (-64, "7f"),
        (64, "8001"),
        (INT32_MAX, "feffffff0f"),
        (INT32_MIN, "ffffffff0f"),
        (INT64_MAX, "feffffffffffffffff01"),
        (INT64_MIN, "ffffffffffffffffff01"),
    ],
)
def test_signed_varint_exact_bytes(value: int, encoded: str) -> None:
    assert encode_varint(value) == bytes.fromhex(encoded)
    assert decode_varint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)
    assert size_of_varint(value) == len(encoded) // 2


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16383, "ff7f"), (16384, "808001"),
     ((1 << 32) - 1, "ffffffff0f"), ((1 << 64) - 1, "ffffffffffffffffff01")],
)
def test_unsigned_varint_exact_bytes(value: int, encoded: str) -> None:
    assert encode_uvarint(value) == bytes.fromhex(encoded)
    assert decode_uvarint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)
    assert size_of_uvarint(value) == len(encoded) // 2


def test_zigzag_mapping() -> None:
    assert [zigzag_encode(v) for v in (0, -1, 1, -2, 2, INT64_MAX, INT64_MIN)] == [
        0, 1, 2, 3, 4, (1 << 64) - 2, (1 << 64) - 1,
    ]
    for v in (0, -1, 1, -2, 2, INT64_MAX, INT64_MIN):
        assert zigzag_decode(zigzag_encode(v)) == v


def test_table_matches_the_loop_encoding() -> None:
    assert len(UVARINT_TABLE) == TABLE_LIMIT
    for value in range(TABLE_LIMIT):
        enc = UVARINT_TABLE[value]
        assert decode_uvarint(enc) == (value, len(enc))
        assert len(enc) == (1 if value < 128 else 2)


def test_random_round_trips_at_an_offset() -> None:
    rng = random.Random(1234)
    values = [rng.randint(INT64_MIN, INT64_MAX) for _ in range(2000)]
    values += [rng.randint(-70000, 70000) for _ in range(2000)]
    buf = bytearray(b"\xaa\xbb")  # decoding must honour the start position
    for v in values:
        buf += encode_varint(v)
    pos = 2
    for v in values:
        got, pos = decode_varint(buf, pos)
        assert got == v
    assert pos == len(buf)


def test_out_of_range_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="signed 64-bit"):
        encode_varint(INT64_MAX + 1)
    with pytest.raises(ValueError, match="signed 64-bit"):
        encode_varint(INT64_MIN - 1)
    with pytest.raises(ValueError, match="negative"):
        encode_uvarint(-1)
    with pytest.raises(ValueError, match="64 bits"):
        encode_uvarint(1 << 64)


def test_truncated_and_overlong_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="past the end"):
        decode_uvarint(b"\x80\x80")
    with pytest.raises(ValueError, match="past the end"):
        decode_varint(b"")
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        decode_uvarint(b"\xff" * 11 + b"\x01")
