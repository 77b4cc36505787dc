"""Kafka's variable-length integers (protobuf style, ZigZag for signed values).

Records use signed ``varint``/``varlong`` (ZigZag, then 7 bits per byte, low
group first); flexible protocol versions use the unsigned form. Encoding small
values is on the producer's hot path, so every unsigned value below
``TABLE_LIMIT`` (all 1- and 2-byte encodings) is precomputed once in
``UVARINT_TABLE``: the record builder indexes it instead of looping.
"""

from __future__ import annotations

__all__ = [
    "TABLE_LIMIT",
    "UVARINT_TABLE",
    "decode_uvarint",
    "decode_varint",
    "encode_uvarint",
    "encode_varint",
    "size_of_uvarint",
    "size_of_varint",
    "zigzag_decode",
    "zigzag_encode",
]

_UINT64_MAX = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
# A varlong is at most 10 bytes; more continuation bytes mean corrupt input.
_MAX_VARINT_BYTES = 10


def _encode_unsigned_slow(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# 1 << 14 values: every 1- and 2-byte encoding (~0.7 MB once per process).
TABLE_LIMIT = 1 << 14
UVARINT_TABLE: tuple[bytes, ...] = tuple(_encode_unsigned_slow(i) for i in range(TABLE_LIMIT))


def zigzag_encode(value: int) -> int:
    """Map a signed 64-bit value to unsigned: 0→0, -1→1, 1→2, -2→3, ..."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"varlong value {value} is outside the signed 64-bit range")
    return (value << 1) ^ (value >> 63)


def zigzag_decode(value: int) -> int:
    """Inverse of :func:`zigzag_encode`."""
    return (value >> 1) ^ -(value & 1)


def encode_uvarint(value: int) -> bytes:
    """Unsigned varint bytes of ``value`` (0 ≤ value < 2**64)."""
    if value < TABLE_LIMIT:
        if value < 0:
            raise ValueError(f"unsigned varint value {value} is negative")
        return UVARINT_TABLE[value]
    if value > _UINT64_MAX:
        raise ValueError(f"unsigned varint value {value} does not fit in 64 bits")
    return _encode_unsigned_slow(value)


def encode_varint(value: int) -> bytes:
    """Signed (ZigZag) varint/varlong bytes of ``value``."""
    z = zigzag_encode(value)
    if z < TABLE_LIMIT:
        return UVARINT_TABLE[z]
    return _encode_unsigned_slow(z)


def size_of_uvarint(value: int) -> int:
    """Number of bytes of the unsigned varint encoding of ``value``."""
    return ((value | 1).bit_length() + 6) // 7


def size_of_varint(value: int) -> int:
    """Number of bytes of the signed (ZigZag) varint encoding of ``value``."""
    return (((value << 1) ^ (value >> 63) | 1).bit_length() + 6) // 7


def decode_uvarint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; return ``(value, position after it)``.

    Raises ``ValueError`` when the input ends inside the varint or the varint
    is longer than 10 bytes.
    """
    end = len(data)
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise ValueError(f"varint at byte {start} runs past the end of the data ({end} bytes)")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if pos - start >= _MAX_VARINT_BYTES:
            raise ValueError(f"varint at byte {start} is longer than {_MAX_VARINT_BYTES} bytes")


def decode_varint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read a signed (ZigZag) varint/varlong at ``pos``; return ``(value, next position)``."""
    b = data[pos] if pos < len(data) else -1
    if 0 <= b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    z, pos = decode_uvarint(data, pos)
    return (z >> 1) ^ -(z & 1), pos
