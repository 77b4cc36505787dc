"""Record batch v2 (magic 2): the builder on the produce hot path, the reader, broker helpers.

Layout (big-endian), 61-byte header then the records section::

    0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
    17 crc u32 (CRC-32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
    27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
    53 baseSequence i32 | 57 recordsCount i32 | 61 records (the only compressed part)

The builder appends every record into one ``bytearray`` with precomputed
varints, compresses once at ``close()``, and stamps producer id / epoch /
sequence at ``build()`` time, which may be repeated without recompressing
(the producer re-stamps after an epoch bump).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

from crc32c import crc32c as _crc32c

from kprod import _native
from kprod.errors import KafkaError
from kprod.protocol.compression import (
    CODEC_NAMES,
    DecompressionError,
    UnsupportedCodecError,
    decompress,
    validate_level,
)
from kprod.protocol.compression import compress as _compress
from kprod.protocol.varint import TABLE_LIMIT, UVARINT_TABLE, decode_uvarint, encode_uvarint

__all__ = [
    "BATCH_HEADER_SIZE",
    "CONTROL_ABORT",
    "CONTROL_COMMIT",
    "LOG_APPEND_TIME",
    "CREATE_TIME",
    "CorruptRecordError",
    "InvalidRecordError",
    "Record",
    "RecordBatch",
    "RecordBatchBuilder",
    "assign_offsets",
    "build_control_batch",
    "estimate_batch_size_upper_bound",
    "estimate_record_size",
    "parse_batch_header",
    "read_batches",
    "retain_records",
]


class CorruptRecordError(KafkaError, ValueError):
    """Record data that cannot be trusted: wrong CRC, bad magic, truncation, undecodable records.

    Kafka's error code 2 (CORRUPT_MESSAGE).
    """


class InvalidRecordError(CorruptRecordError):
    """A well-formed batch whose contents break Kafka's rules (e.g. lastOffsetDelta ≠ count - 1).

    Kafka's error code 87 (INVALID_RECORD).
    """


BATCH_HEADER_SIZE: Final = 61
# batchLength counts the bytes after itself: header minus baseOffset and batchLength
_LENGTH_OVERHEAD: Final = 12
_MIN_BATCH_LENGTH: Final = BATCH_HEADER_SIZE - _LENGTH_OVERHEAD
_CRC_START: Final = 21
MAGIC: Final = 2

CREATE_TIME: Final = 0
LOG_APPEND_TIME: Final = 1
_CODEC_MASK: Final = 0x07
_TIMESTAMP_TYPE_BIT: Final = 0x08
_TRANSACTIONAL_BIT: Final = 0x10
_CONTROL_BIT: Final = 0x20

CONTROL_ABORT: Final = 0
CONTROL_COMMIT: Final = 1

_INT32_MAX: Final = (1 << 31) - 1

# bytes 0..20 (not covered by the CRC) and 21..60 (covered)
_HEAD = struct.Struct(">qiibI")
_TAIL = struct.Struct(">hiqqqhii")
_HEADER = struct.Struct(">qiibIhiqqqhii")
_pack_head = _HEAD.pack
_pack_tail = _TAIL.pack
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")

# Varint bytes for small values, indexed by the ZigZag value (2n for n >= 0).
_T: Final = UVARINT_TABLE
_TLIM: Final = TABLE_LIMIT
_NONNEG_LIM: Final = TABLE_LIMIT >> 1  # non-negative n with 2n < TABLE_LIMIT
_NULL: Final = b"\x01"  # varint -1: null key, value or header value
_ZERO: Final = b"\x00"  # varint 0: record attributes, empty header count


def _varint(value: int) -> bytes:
    """ZigZag varint bytes outside the table's range (large or int64-overflowing values)."""
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"value {value} does not fit a Kafka varlong (signed 64-bit)")
    return encode_uvarint((value << 1) ^ (value >> 63))


def _encode_headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    n = len(headers)
    parts: list[bytes] = [_T[n << 1] if n < _NONNEG_LIM else _varint(n)]
    try:
        for hkey, hvalue in headers:
            kb = hkey.encode("utf-8")
            n = len(kb)
            if hvalue is None:
                parts += (_T[n << 1] if n < _NONNEG_LIM else _varint(n), kb, _NULL)
            else:
                m = len(hvalue)
                parts += (
                    _T[n << 1] if n < _NONNEG_LIM else _varint(n),
                    kb,
                    _T[m << 1] if m < _NONNEG_LIM else _varint(m),
                    hvalue,
                )
        return b"".join(parts)
    except (TypeError, ValueError, AttributeError):
        _raise_header_type_error(headers)
        raise


def _raise_header_type_error(headers: Sequence[object]) -> None:
    """Explain which header is malformed (called only after encoding failed)."""
    for item in headers:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"each header must be a (str key, bytes value) pair, got {item!r}") from None
        hkey, hvalue = item
        if type(hkey) is not str:
            raise TypeError(f"header key must be str, got {type(hkey).__name__}: {hkey!r}") from None
        if hvalue is not None and not isinstance(hvalue, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"value of header {hkey!r} must be bytes or None, got {type(hvalue).__name__}"
            ) from None


class _RecordsCore:
    """The builder's hot state and ``append``: the pure-Python reference.

    ``kprod._speedups.RecordsCore`` is its compiled twin (same fields, same
    bytes, tested against this code); :class:`RecordBatchBuilder` derives from
    whichever is in use.
    """

    __slots__ = ("_base_ts", "_buf", "_count", "_max_size", "_max_ts", "_requested_base", "_size",
                 "max_record_size")

    def __init__(self, base_timestamp: int | None = None, max_size: int | None = None) -> None:
        #: The largest record appended, in bytes as encoded (with its length prefix): for metrics.
        self.max_record_size = 0
        self._base_ts = base_timestamp
        self._requested_base = base_timestamp
        self._max_ts = -(1 << 63)
        self._buf: bytearray | None = bytearray()
        self._count = 0
        self._size = BATCH_HEADER_SIZE
        self._max_size = sys.maxsize if max_size is None else max_size

    def append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
    ) -> int:
        """Encode one record at offset delta ``record_count``.

        Returns the bytes it added (record plus its length varint), or 0 when
        ``max_size`` leaves no room for it (nothing is changed then).
        """
        buf = self._buf
        if buf is None:
            raise RuntimeError("record batch is closed: no record can be appended after close() or build()")
        count = self._count
        base = self._base_ts
        if base is None:
            base = self._base_ts = timestamp
        try:
            delta = timestamp - base
            z = (delta << 1) ^ (delta >> 63)
            if key is None:
                kh = _NULL
                key = b""
            else:
                n = len(key)
                kh = _T[n << 1] if n < _NONNEG_LIM else _varint(n)
            if value is None:
                vh = _NULL
                value = b""
            else:
                n = len(value)
                vh = _T[n << 1] if n < _NONNEG_LIM else _varint(n)
            body = b"".join(
                (
                    _ZERO,
                    _T[z] if 0 <= z < _TLIM else _varint(delta),
                    _T[count << 1] if count < _NONNEG_LIM else _varint(count),
                    kh,
                    key,
                    vh,
                    value,
                    _encode_headers(headers) if headers else _ZERO,
                )
            )
        except TypeError:
            if not count:
                self._base_ts = self._requested_base
            _raise_record_type_error(timestamp, key, value)
            raise
        n = len(body)
        lh = _T[n << 1] if n < _NONNEG_LIM else _varint(n)
        added = n + len(lh)
        size = self._size + added
        if size > self._max_size and count:
            return 0
        buf += lh
        buf += body
        self._count = count + 1
        self._size = size
        if added > self.max_record_size:
            self.max_record_size = added
        if timestamp > self._max_ts:
            self._max_ts = timestamp
        return added


if TYPE_CHECKING:
    _Core = _RecordsCore
else:
    _Core = _native.speedups.RecordsCore if _native.speedups is not None else _RecordsCore
if _native.speedups is not None:
    _native.speedups.configure(batch_header_size=BATCH_HEADER_SIZE)  # the compiled core's header size


class RecordBatchBuilder(_Core):
    """Accumulates records of one batch, then builds its wire bytes.

    ``append`` encodes each record straight into one buffer (compiled when
    ``kprod._speedups`` is built; the reference is :class:`_RecordsCore`).
    ``size_in_bytes`` is Java's estimate for ``batch.size`` decisions: the
    61-byte header plus the *uncompressed* records. With ``max_size`` set,
    ``append`` refuses (returns 0) a record that would take the batch past it,
    unless the batch is empty: the first record always goes in, as in Java.

    Not thread-safe: the accumulator appends under its own lock.
    """

    __slots__ = ("_codec", "_level", "_payload")

    def __init__(
        self,
        codec: int = 0,
        level: int | None = None,
        base_timestamp: int | None = None,
        max_size: int | None = None,
    ) -> None:
        validate_level(codec, level)
        if max_size is not None and max_size < BATCH_HEADER_SIZE:
            raise ValueError(f"max_size {max_size} is smaller than the {BATCH_HEADER_SIZE}-byte batch header")
        _Core.__init__(self, base_timestamp, max_size)
        self._codec = codec
        self._level = level
        self._payload: bytes | bytearray | None = None

    # -- state ------------------------------------------------------------------

    @property
    def record_count(self) -> int:
        return self._count

    @property
    def size_in_bytes(self) -> int:
        """Header plus uncompressed records: Java's estimate for batch.size and buffer accounting."""
        return self._size

    @property
    def is_full(self) -> bool:
        """True once the batch holds a record and has reached ``max_size`` (Java's ``isFull``)."""
        return self._count > 0 and self._size >= self._max_size

    @property
    def is_closed(self) -> bool:
        return self._buf is None

    @property
    def codec(self) -> int:
        return self._codec

    @property
    def base_timestamp(self) -> int | None:
        return self._base_ts

    @property
    def max_timestamp(self) -> int:
        """Largest record timestamp so far (-1 while the batch is empty)."""
        return self._max_ts if self._count else -1

    @property
    def built_size(self) -> int:
        """Exact length of ``build()``'s output; only known after ``close()``."""
        if self._payload is None:
            raise RuntimeError("built_size is known only after close()")
        return BATCH_HEADER_SIZE + len(self._payload)

    def close(self) -> None:
        """Compress the records once; no append after this. Idempotent."""
        buf = self._buf
        if buf is None:
            return
        self._payload = buf if self._codec == 0 else _compress(self._codec, buf, self._level)
        self._buf = None

    def build(
        self,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        transactional: bool = False,
    ) -> bytes:
        """The full batch bytes, stamped with the given producer state (closes the builder).

        Cheap to call again with another id / epoch / sequence: only the
        header and its CRC are recomputed.
        """
        if self._buf is not None:
            self.close()
        count = self._count
        if count == 0:
            raise ValueError("cannot build an empty record batch: append at least one record first")
        if producer_id >= 0:
            if producer_epoch < 0:
                raise ValueError(f"producer_epoch {producer_epoch} is negative although producer_id {producer_id} is set")
            if base_sequence < 0:
                raise ValueError(f"base_sequence {base_sequence} is negative although producer_id {producer_id} is set")
        elif transactional:
            raise ValueError("a transactional batch needs a producer id: pass producer_id >= 0")
        payload = self._payload
        assert payload is not None
        attributes = self._codec | _TRANSACTIONAL_BIT if transactional else self._codec
        try:
            tail = _pack_tail(
                attributes,
                count - 1,
                self._base_ts,
                self._max_ts,
                producer_id,
                producer_epoch,
                base_sequence,
                count,
            )
        except struct.error:
            raise ValueError(
                "batch field out of range: timestamps must be signed 64-bit"
                f" (base {self._base_ts}, max {self._max_ts}), producer_id signed 64-bit ({producer_id}),"
                f" producer_epoch signed 16-bit ({producer_epoch}), base_sequence signed 32-bit ({base_sequence})"
            ) from None
        # gil_release_mode=0: the producer's I/O thread builds batches, and a CRC takes ~5 µs for
        # 64 KiB, while getting the GIL back from a busy send() thread can take the whole
        # 5 ms switch interval (crc32c releases it by default from 32 KiB on).
        crc = _crc32c(payload, _crc32c(tail), 0)
        return b"".join((_pack_head(0, _MIN_BATCH_LENGTH + len(payload), -1, MAGIC, crc), tail, payload))


def _raise_record_type_error(timestamp: object, key: object, value: object) -> None:
    """Explain which argument of a failed append is of the wrong type."""
    if type(timestamp) is not int:
        raise TypeError(f"record timestamp must be an int (milliseconds), got {type(timestamp).__name__}")
    for name, item in (("key", key), ("value", value)):
        if not isinstance(item, (bytes, bytearray, memoryview)):
            raise TypeError(f"record {name} must be bytes or None, got {type(item).__name__}")


def estimate_record_size(
    key_len: int | None,
    value_len: int | None,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
) -> int:
    """Upper bound of one record's encoded size, whatever its offset and timestamp delta.

    Same bound as Java's ``DefaultRecord.recordSizeUpperBound``: offset delta and
    timestamp delta counted at their widest (5 and 10 bytes). ``None`` or a
    negative length means a null key or value.
    """
    size = 1 + 10 + 5  # attributes, timestampDelta, offsetDelta
    size += 1 if key_len is None or key_len < 0 else _vsize(key_len) + key_len
    size += 1 if value_len is None or value_len < 0 else _vsize(value_len) + value_len
    if headers:
        size += _vsize(len(headers))
        for hkey, hvalue in headers:
            n = len(hkey.encode("utf-8"))
            size += _vsize(n) + n
            size += 1 if hvalue is None else _vsize(len(hvalue)) + len(hvalue)
    else:
        size += 1
    return size + _vsize(size)


def estimate_batch_size_upper_bound(
    key_len: int | None,
    value_len: int | None,
    headers: Sequence[tuple[str, bytes | None]] | None = None,
) -> int:
    """Upper bound of a one-record batch: what Java checks against max.request.size."""
    return BATCH_HEADER_SIZE + estimate_record_size(key_len, value_len, headers)


def _vsize(n: int) -> int:
    """Bytes of the ZigZag varint of a non-negative ``n``."""
    return (((n << 1) | 1).bit_length() + 6) // 7


# -- control batches and broker-side stamping --------------------------------------


def build_control_batch(
    control_type: int,
    coordinator_epoch: int,
    producer_id: int,
    producer_epoch: int,
    timestamp: int,
) -> bytes:
    """A transaction marker batch (what a broker writes at commit or abort).

    ``control_type`` is ``CONTROL_ABORT`` (0) or ``CONTROL_COMMIT`` (1). The batch is
    transactional and control, baseSequence -1, one uncompressed record whose key is
    ``version 0, type`` and whose value is ``version 0, coordinator_epoch``.
    """
    if control_type not in (CONTROL_ABORT, CONTROL_COMMIT):
        raise ValueError(f"control_type {control_type} is not CONTROL_ABORT (0) or CONTROL_COMMIT (1)")
    builder = RecordBatchBuilder()
    builder.append(timestamp, struct.pack(">hh", 0, control_type), struct.pack(">hi", 0, coordinator_epoch))
    payload = builder._buf
    assert payload is not None
    count = 1
    tail = _pack_tail(
        _TRANSACTIONAL_BIT | _CONTROL_BIT, 0, timestamp, timestamp, producer_id, producer_epoch, -1, count
    )
    crc = _crc32c(payload, _crc32c(tail))
    return b"".join((_pack_head(0, _MIN_BATCH_LENGTH + len(payload), -1, MAGIC, crc), tail, payload))


def assign_offsets(
    batch: bytes | bytearray | memoryview,
    base_offset: int,
    log_append_time: int | None = None,
    partition_leader_epoch: int | None = None,
) -> bytes:
    """Stamp a batch the way a broker does on append, without re-encoding its records.

    Sets baseOffset (and partitionLeaderEpoch when given); neither is covered by
    the CRC. With ``log_append_time``, also sets the LogAppendTime attribute bit and
    maxTimestamp, then recomputes the CRC, after checking the old one so that
    corrupt input is never given a valid CRC.
    """
    header = parse_batch_header(batch)
    size = header.size_in_bytes
    if len(batch) != size:
        raise CorruptRecordError(
            f"assign_offsets takes exactly one batch: got {len(batch)} bytes, the batch declares {size}"
        )
    out = bytearray(batch)
    _I64.pack_into(out, 0, base_offset)
    if partition_leader_epoch is not None:
        _I32.pack_into(out, 12, partition_leader_epoch)
    if log_append_time is not None:
        header.check_crc()
        _I16.pack_into(out, 21, header.attributes | _TIMESTAMP_TYPE_BIT)
        _I64.pack_into(out, 35, log_append_time)
        _U32.pack_into(out, 17, _crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out)


# -- reader ------------------------------------------------------------------------


class Record(NamedTuple):
    """One decoded record: absolute offset and timestamp, key, value, headers."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class RecordBatch:
    """A magic-2 batch read from bytes: header fields parsed, records decoded on demand."""

    __slots__ = (
        "_data",
        "_start",
        "attributes",
        "base_offset",
        "base_sequence",
        "base_timestamp",
        "batch_length",
        "crc",
        "last_offset_delta",
        "magic",
        "max_timestamp",
        "partition_leader_epoch",
        "producer_epoch",
        "producer_id",
        "record_count",
    )

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    def __init__(self, data: memoryview, start: int) -> None:
        self._data = data
        self._start = start
        (
            self.base_offset,
            self.batch_length,
            self.partition_leader_epoch,
            self.magic,
            self.crc,
            self.attributes,
            self.last_offset_delta,
            self.base_timestamp,
            self.max_timestamp,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.record_count,
        ) = _HEADER.unpack_from(data, start)

    def __repr__(self) -> str:
        return (
            f"RecordBatch(base_offset={self.base_offset}, record_count={self.record_count},"
            f" codec={CODEC_NAMES.get(self.codec, self.codec)}, producer_id={self.producer_id},"
            f" producer_epoch={self.producer_epoch}, base_sequence={self.base_sequence},"
            f" transactional={self.is_transactional}, control={self.is_control})"
        )

    # -- derived header fields --------------------------------------------------

    @property
    def codec(self) -> int:
        return self.attributes & _CODEC_MASK

    @property
    def timestamp_type(self) -> int:
        """``CREATE_TIME`` (0) or ``LOG_APPEND_TIME`` (1)."""
        return LOG_APPEND_TIME if self.attributes & _TIMESTAMP_TYPE_BIT else CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_BIT)

    @property
    def size_in_bytes(self) -> int:
        """Whole batch on the wire: batchLength + 12."""
        return self.batch_length + _LENGTH_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record (wraps after 2**31 - 1 as in Java); -1 without a sequence."""
        base = self.base_sequence
        if base < 0:
            return -1
        return (base + self.last_offset_delta) & _INT32_MAX

    @property
    def raw(self) -> memoryview:
        """The batch's bytes, as read (a view, not a copy)."""
        return self._data[self._start : self._start + self.size_in_bytes]

    @property
    def records_payload(self) -> memoryview:
        """The records section as stored (still compressed when ``codec`` is not 0)."""
        return self._data[self._start + BATCH_HEADER_SIZE : self._start + self.size_in_bytes]

    # -- checks ----------------------------------------------------------------------

    def compute_crc(self) -> int:
        """CRC-32C of bytes 21..end, what the crc field must hold."""
        crc: int = _crc32c(self._data[self._start + _CRC_START : self._start + self.size_in_bytes])
        return crc

    def check_crc(self) -> None:
        """Raise ``CorruptRecordError`` when the stored CRC does not match the bytes."""
        actual = self.compute_crc()
        if actual != self.crc:
            raise CorruptRecordError(
                f"record batch at offset {self.base_offset} failed its CRC check: stored"
                f" {self.crc:#010x}, computed {actual:#010x} over bytes 21..{self.size_in_bytes}"
                " (the data was corrupted in transit or on disk)"
            )

    def validate(self) -> None:
        """Check the CRC, decode every record and check the batch's internal consistency.

        Raises ``CorruptRecordError`` for bad bytes and ``InvalidRecordError`` for a
        well-formed batch whose header and records disagree.
        """
        self.check_crc()
        count = self.record_count
        if count < 1:
            raise InvalidRecordError(f"record batch at offset {self.base_offset} has record count {count}: at least 1 is needed")
        if self.last_offset_delta != count - 1:
            raise InvalidRecordError(
                f"record batch at offset {self.base_offset} has lastOffsetDelta {self.last_offset_delta}"
                f" but {count} records: it must be {count - 1}"
            )
        base = self.base_offset
        for index, record in enumerate(self.records()):
            if record.offset - base != index:
                raise InvalidRecordError(
                    f"record {index} of the batch at offset {base} has offset delta"
                    f" {record.offset - base}: deltas must run 0, 1, 2, ..."
                )

    # -- records ---------------------------------------------------------------------

    def records(self) -> list[Record]:
        """Decode (decompressing once) and return the batch's records."""
        payload = self.records_payload
        codec = self.codec
        if codec == 0:
            data = bytes(payload)
        else:
            try:
                data = decompress(codec, payload)
            except UnsupportedCodecError:
                raise CorruptRecordError(
                    f"record batch at offset {self.base_offset} names unknown codec id {codec}"
                    " (attributes bits 0-2 allow 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)"
                ) from None
            except DecompressionError as exc:
                raise CorruptRecordError(f"record batch at offset {self.base_offset}: {exc}") from None
        log_append_time = self.max_timestamp if self.attributes & _TIMESTAMP_TYPE_BIT else None
        return _decode_records(data, self.record_count, self.base_offset, self.base_timestamp, log_append_time)


def _decode_records(
    data: bytes, count: int, base_offset: int, base_timestamp: int, log_append_time: int | None
) -> list[Record]:
    # Varints of one byte (values -64..63) are decoded inline; longer ones by _read_varint.
    records: list[Record] = []
    append = records.append
    new_record = tuple.__new__
    end = len(data)
    pos = 0
    index = 0
    try:
        for index in range(count):
            b = data[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                length, pos = _read_varint(data, pos)
            record_end = pos + length
            if record_end > end or length < 6:
                raise CorruptRecordError(
                    f"record {index} of the batch at offset {base_offset} declares {length} bytes"
                    + (
                        f" but only {end - pos} remain in the records section"
                        if record_end > end
                        else ", fewer than the 6 that a record takes at least"
                    )
                )
            b = data[pos + 1]  # after the attributes byte (unused, 0)
            if b < 0x80:
                ts_delta = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                ts_delta, pos = _read_varint(data, pos + 1)
            b = data[pos]
            if b < 0x80:
                offset_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                offset_delta, pos = _read_varint(data, pos)
            b = data[pos]
            if b < 0x80:
                key_len = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                key_len, pos = _read_varint(data, pos)
            if key_len < 0:
                key = None
            else:
                key = data[pos : pos + key_len]
                pos += key_len
            b = data[pos]
            if b < 0x80:
                value_len = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                value_len, pos = _read_varint(data, pos)
            if value_len < 0:
                value = None
            else:
                value = data[pos : pos + value_len]
                pos += value_len
            header_count, pos = _read_varint(data, pos)
            headers: list[tuple[str, bytes | None]] = []
            if header_count:
                if header_count < 0:
                    raise CorruptRecordError(
                        f"record {index} of the batch at offset {base_offset} has header count {header_count}"
                    )
                for _ in range(header_count):
                    hkey_len, pos = _read_varint(data, pos)
                    if hkey_len < 0:
                        raise CorruptRecordError(
                            f"record {index} of the batch at offset {base_offset} has a null header key"
                        )
                    hkey = data[pos : pos + hkey_len].decode("utf-8")
                    pos += hkey_len
                    hvalue_len, pos = _read_varint(data, pos)
                    if hvalue_len < 0:
                        hvalue = None
                    else:
                        hvalue = data[pos : pos + hvalue_len]
                        pos += hvalue_len
                    headers.append((hkey, hvalue))
            if pos != record_end:
                raise CorruptRecordError(
                    f"record {index} of the batch at offset {base_offset} declares {length} bytes"
                    f" but its fields take {length + pos - record_end}"
                )
            append(
                new_record(
                    Record,
                    (
                        base_offset + offset_delta,
                        base_timestamp + ts_delta if log_append_time is None else log_append_time,
                        key,
                        value,
                        headers,
                    ),
                )
            )
    except (IndexError, ValueError) as exc:
        if isinstance(exc, CorruptRecordError):
            raise
        raise CorruptRecordError(
            f"record {index} of the batch at offset {base_offset} cannot be decoded: {exc}"
        ) from None
    if len(records) != count:
        raise CorruptRecordError(f"the batch at offset {base_offset} declares {count} records but holds {len(records)}")
    if pos != end:
        raise CorruptRecordError(
            f"the records section of the batch at offset {base_offset} has {end - pos} bytes"
            f" left after the {count} records its header declares"
        )
    return records


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    b2 = data[pos + 1]
    if b2 < 0x80:
        z = (b & 0x7F) | (b2 << 7)
        return (z >> 1) ^ -(z & 1), pos + 2
    z, pos = decode_uvarint(data, pos)
    return (z >> 1) ^ -(z & 1), pos


def _batch_at(view: memoryview, start: int, allow_truncated: bool) -> RecordBatch | None:
    """Parse the batch header at ``start``; None for a truncated batch when allowed."""
    remaining = len(view) - start
    if remaining < _LENGTH_OVERHEAD:
        if allow_truncated:
            return None
        raise CorruptRecordError(
            f"record data truncated: {remaining} bytes at byte {start} are too few for a batch header"
        )
    (batch_length,) = _I32.unpack_from(view, start + 8)
    if batch_length < _MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"record batch at byte {start} declares length {batch_length}, less than the"
            f" {_MIN_BATCH_LENGTH} bytes of its own header"
        )
    if remaining >= 17 and view[start + 16] != MAGIC:
        raise CorruptRecordError(
            f"record batch at byte {start} has magic {view[start + 16]}: kprod reads only magic 2"
            " (Kafka 0.11+ record batches)"
        )
    if _LENGTH_OVERHEAD + batch_length > remaining:
        if allow_truncated:
            return None
        raise CorruptRecordError(
            f"record data truncated: the batch at byte {start} declares {_LENGTH_OVERHEAD + batch_length}"
            f" bytes but only {remaining} remain"
        )
    return RecordBatch(view, start)


def parse_batch_header(data: bytes | bytearray | memoryview, offset: int = 0) -> RecordBatch:
    """The batch at byte ``offset``, header parsed, CRC not yet checked, records not decoded.

    What a broker needs on produce: count, producer id/epoch/sequence and
    ``check_crc()`` without decompressing. Raises ``CorruptRecordError`` for a
    truncated batch, an impossible length or a magic other than 2.
    """
    batch = _batch_at(memoryview(data), offset, False)
    assert batch is not None
    return batch


def read_batches(
    data: bytes | bytearray | memoryview,
    *,
    allow_truncated_tail: bool = False,
    check_crc: bool = True,
) -> Iterator[RecordBatch]:
    """Iterate over the batches in ``data`` (a records field), checking each CRC.

    A Fetch response may end with a partial batch: with ``allow_truncated_tail``
    such a final batch is dropped silently; otherwise it raises
    ``CorruptRecordError`` like any other defect.
    """
    view = memoryview(data)
    start = 0
    end = len(view)
    while start < end:
        batch = _batch_at(view, start, allow_truncated_tail)
        if batch is None:
            return
        if check_crc:
            batch.check_crc()
        yield batch
        start += batch.size_in_bytes


def retain_records(batch: bytes | bytearray | memoryview, keep: frozenset[int] | set[int]) -> bytes | None:
    """The batch with only the records whose absolute offsets are in ``keep`` (None if none are).

    What a log cleaner writes: the kept records' bytes are copied unchanged
    (offsets, timestamps, headers), and the header keeps its base offset,
    last offset delta, producer id/epoch/sequence and timestamps, so offsets
    keep their gaps. The records are compressed again with the batch's codec
    and the CRC recomputed.
    """
    header = parse_batch_header(batch)
    header.check_crc()
    codec = header.codec
    payload = header.records_payload
    data = bytes(payload) if codec == 0 else decompress(codec, payload)
    base = header.base_offset
    kept: list[bytes] = []
    pos = 0
    for _ in range(header.record_count):
        length, body = decode_uvarint(data, pos)
        length = (length >> 1) ^ -(length & 1)
        end = body + length
        _, after_timestamp = decode_uvarint(data, body + 1)  # skip attributes, then the timestamp delta
        delta, _ = decode_uvarint(data, after_timestamp)
        if base + ((delta >> 1) ^ -(delta & 1)) in keep:
            kept.append(data[pos:end])
        pos = end
    if not kept:
        return None
    if len(kept) == header.record_count:
        return bytes(batch)
    records = b"".join(kept)
    if codec != 0:
        records = _compress(codec, records)
    tail = _pack_tail(
        header.attributes,
        header.last_offset_delta,
        header.base_timestamp,
        header.max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        len(kept),
    )
    crc = _crc32c(records, _crc32c(tail), 0)
    head = _pack_head(base, _MIN_BATCH_LENGTH + len(records), header.partition_leader_epoch, MAGIC, crc)
    return b"".join((head, tail, records))
