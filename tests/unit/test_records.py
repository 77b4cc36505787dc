"""Record batch v2: golden bytes, round trips, cross-checks with kafka-python, corruption, stamping."""

from __future__ import annotations

import random
import struct

import pytest
from crc32c import crc32c
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from kprod.protocol import records as records_module
from kprod.protocol.compression import GZIP, LZ4, NONE, SNAPPY, ZSTD
from kprod.protocol.records import (
    BATCH_HEADER_SIZE,
    CONTROL_ABORT,
    CONTROL_COMMIT,
    CREATE_TIME,
    LOG_APPEND_TIME,
    CorruptRecordError,
    InvalidRecordError,
    Record,
    RecordBatchBuilder,
    assign_offsets,
    build_control_batch,
    estimate_batch_size_upper_bound,
    estimate_record_size,
    parse_batch_header,
    read_batches,
)

CODECS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]
BASE_TS = 1_700_000_000_000


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


# --- golden bytes ---------------------------------------------------------------------


def _hand_encoded_batch(producer_id: int, producer_epoch: int, base_sequence: int, attributes: int) -> bytes:
    """Three records encoded field by field from the spec (kafka-protocol.md §4)."""
    # record 0: ts delta 0, offset delta 0, null key, value b"v0", no headers
    r0_body = bytes.fromhex("00" "00" "00" "01" "04") + b"v0" + bytes.fromhex("00")
    # record 1: ts delta -5 (zigzag 9), offset delta 1, key b"k1", null value,
    #           headers [("h", b"x"), ("n", None)]
    r1_body = (
        bytes.fromhex("00" "09" "02" "04") + b"k1" + bytes.fromhex("01" "04")
        + bytes.fromhex("02") + b"h" + bytes.fromhex("02") + b"x"
        + bytes.fromhex("02") + b"n" + bytes.fromhex("01")
    )
    # record 2: ts delta +300 (zigzag 600 = d8 04), offset delta 2, empty key, empty value
    r2_body = bytes.fromhex("00" "d804" "04" "00" "00" "00")
    assert (len(r0_body), len(r1_body), len(r2_body)) == (8, 15, 7)
    records = (
        bytes([8 << 1]) + r0_body + bytes([15 << 1]) + r1_body + bytes([7 << 1]) + r2_body
    )
    assert len(records) == 33
    covered = (
        struct.pack(">h", attributes)  # attributes
        + struct.pack(">i", 2)  # lastOffsetDelta
        + struct.pack(">q", BASE_TS)  # baseTimestamp: first record's
        + struct.pack(">q", BASE_TS + 300)  # maxTimestamp
        + struct.pack(">q", producer_id)
        + struct.pack(">h", producer_epoch)
        + struct.pack(">i", base_sequence)
        + struct.pack(">i", 3)  # recordsCount
        + records
    )
    return (
        struct.pack(">q", 0)  # baseOffset
        + struct.pack(">i", 49 + len(records))  # batchLength = total - 12
        + struct.pack(">i", -1)  # partitionLeaderEpoch
        + bytes([2])  # magic
        + struct.pack(">I", crc32c(covered))
        + covered
    )


def _golden_builder() -> RecordBatchBuilder:
    b = RecordBatchBuilder()
    assert b.append(BASE_TS, None, b"v0") == 9
    assert b.append(BASE_TS - 5, b"k1", None, [("h", b"x"), ("n", None)]) == 16
    assert b.append(BASE_TS + 300, b"", b"") == 8
    return b


def test_golden_bytes_plain_batch() -> None:
    b = _golden_builder()
    assert b.record_count == 3
    assert b.size_in_bytes == 61 + 33
    assert b.base_timestamp == BASE_TS
    assert b.max_timestamp == BASE_TS + 300
    assert b.build() == _hand_encoded_batch(-1, -1, -1, 0)


def test_golden_bytes_idempotent_and_transactional() -> None:
    assert _golden_builder().build(4242, 3, 77) == _hand_encoded_batch(4242, 3, 77, 0)
    assert _golden_builder().build(4242, 3, 77, transactional=True) == _hand_encoded_batch(4242, 3, 77, 0x10)


def test_golden_batch_reads_back() -> None:
    (batch,) = read_batches(_hand_encoded_batch(9, 1, 5, 0))
    assert batch.records() == [
        Record(0, BASE_TS, None, b"v0", []),
        Record(1, BASE_TS - 5, b"k1", None, [("h", b"x"), ("n", None)]),
        Record(2, BASE_TS + 300, b"", b"", []),
    ]
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (9, 1, 5)
    assert (batch.magic, batch.partition_leader_epoch, batch.base_offset) == (2, -1, 0)
    assert (batch.last_offset_delta, batch.record_count, batch.size_in_bytes) == (2, 3, 94)
    assert (batch.codec, batch.timestamp_type, batch.is_transactional, batch.is_control) == (0, CREATE_TIME, False, False)
    batch.validate()


# --- round trips --------------------------------------------------------------------------


def _mixed_records(n: int, seed: int = 3) -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = BASE_TS + rng.randint(-20_000, 20_000)  # deltas of both signs, some beyond 2 bytes
        key = None if i % 5 == 0 else b"key-%d" % rng.randrange(10**6)
        value = None if i % 11 == 0 else (b"value-%d|" % i) * rng.randint(0, 30)
        headers: list[tuple[str, bytes | None]] = []
        if i % 3 == 0:
            headers = [("trace-id", b"%032x" % rng.getrandbits(128)), ("näme", None), ("", b"")]
        out.append((ts, key, value, headers))
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_codec(codec: int) -> None:
    rows = _mixed_records(500)
    b = RecordBatchBuilder(codec)
    for ts, key, value, headers in rows:
        assert b.append(ts, key, value, headers) > 0
    data = b.build(11, 2, 100)
    (batch,) = read_batches(data)
    batch.validate()
    assert batch.codec == codec
    assert batch.max_timestamp == max(r[0] for r in rows)
    assert batch.base_timestamp == rows[0][0]
    assert batch.records() == [Record(i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(rows)]
    assert b.built_size == len(data)


def test_large_values_and_many_records_use_the_long_varint_path() -> None:
    b = RecordBatchBuilder(LZ4)
    big = bytes(range(256)) * 100  # 25600 bytes: length varints beyond the table
    b.append(BASE_TS, big, big, [("k" * 9000, big)])
    for i in range(1, 9000):  # offset deltas beyond 8191
        b.append(BASE_TS + i * 1000, None, b"x")
    (batch,) = read_batches(b.build())
    recs = batch.records()
    assert recs[0] == Record(0, BASE_TS, big, big, [("k" * 9000, big)])
    assert recs[-1] == Record(8999, BASE_TS + 8999 * 1000, None, b"x", [])
    assert len(recs) == 9000


def test_extreme_timestamp_deltas() -> None:
    b = RecordBatchBuilder()
    b.append(0, None, b"a")
    b.append((1 << 62), None, b"b")
    b.append(-(1 << 62), None, b"c")
    (batch,) = read_batches(b.build())
    assert [r.timestamp for r in batch.records()] == [0, 1 << 62, -(1 << 62)]
    assert batch.max_timestamp == 1 << 62


def test_explicit_base_timestamp() -> None:
    b = RecordBatchBuilder(base_timestamp=BASE_TS - 1000)
    b.append(BASE_TS, None, b"v")
    (batch,) = read_batches(b.build())
    assert batch.base_timestamp == BASE_TS - 1000
    assert batch.records()[0].timestamp == BASE_TS


def test_bytes_like_keys_and_values() -> None:
    b = RecordBatchBuilder()
    b.append(BASE_TS, bytearray(b"ka"), memoryview(b"va"), [("h", bytearray(b"x"))])
    (batch,) = read_batches(b.build())
    assert batch.records() == [Record(0, BASE_TS, b"ka", b"va", [("h", b"x")])]


# --- independent cross-checks with kafka-python ---------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_kprod_batches(codec: int) -> None:
    rows = _mixed_records(300, seed=codec)
    b = RecordBatchBuilder(codec)
    for ts, key, value, headers in rows:
        b.append(ts, key, value, headers)
    data = b.build(77, 4, 1000, transactional=True)
    theirs = DefaultRecordBatch(bytearray(data))
    assert theirs.validate_crc()
    assert theirs.compression_type == codec
    assert (theirs.producer_id, theirs.producer_epoch, theirs.base_sequence) == (77, 4, 1000)
    assert theirs.is_transactional
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in theirs]
    assert got == [(i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(rows)]
    # and through MemoryRecords, as a fetch response would be read
    mem = MemoryRecords(data + data)
    count = 0
    while mem.has_next():
        count += len(list(mem.next_batch()))
    assert count == 600


@pytest.mark.parametrize("codec", CODECS)
def test_kprod_reads_kafka_python_batches(codec: int) -> None:
    rows = _mixed_records(300, seed=10 + codec)
    theirs = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=False,
        producer_id=5, producer_epoch=6, base_sequence=7, batch_size=1 << 24,
    )
    for i, (ts, key, value, headers) in enumerate(rows):
        assert theirs.append(i, ts, key, value, headers) is not None
    data = bytes(theirs.build())
    (batch,) = read_batches(data)
    # kafka-python falls back to no compression when it does not help: make sure it did not
    assert batch.codec == codec
    batch.validate()
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (5, 6, 7)
    assert batch.records() == [Record(i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(rows)]


# --- corruption ------------------------------------------------------------------------------


def _small_batch(codec: int = NONE) -> bytes:
    b = RecordBatchBuilder(codec)
    b.append(BASE_TS, b"key", b"value-1", [("h", None)])
    b.append(BASE_TS + 7, None, b"value-2")
    return b.build(1, 0, 0)


@pytest.mark.parametrize("codec", CODECS)
def test_any_flipped_byte_after_21_fails_the_crc(codec: int) -> None:
    data = _small_batch(codec)
    for pos in range(21, len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x01
        with pytest.raises(CorruptRecordError, match="failed its CRC check"):
            list(read_batches(bytes(damaged)))


def test_crc_does_not_cover_offset_and_leader_epoch() -> None:
    damaged = bytearray(_small_batch())
    damaged[3] ^= 0xFF  # baseOffset
    damaged[13] ^= 0xFF  # partitionLeaderEpoch
    (batch,) = read_batches(bytes(damaged))
    batch.validate()


def test_crc_field_damage_is_detected() -> None:
    damaged = bytearray(_small_batch())
    damaged[18] ^= 0x40
    with pytest.raises(CorruptRecordError, match="stored 0x.* computed 0x"):
        list(read_batches(bytes(damaged)))


def test_crc_check_can_be_skipped_and_run_later() -> None:
    damaged = bytearray(_small_batch())
    damaged[-1] ^= 0x01
    (batch,) = read_batches(bytes(damaged), check_crc=False)
    with pytest.raises(CorruptRecordError, match="CRC"):
        batch.check_crc()
    with pytest.raises(CorruptRecordError, match="CRC"):
        batch.validate()


def test_bad_magic() -> None:
    damaged = bytearray(_small_batch())
    damaged[16] = 1
    with pytest.raises(CorruptRecordError, match="magic 1: kprod reads only magic 2"):
        list(read_batches(bytes(damaged)))


def test_truncated_batches_raise() -> None:
    data = _small_batch()
    for cut in (1, 11, 12, 20, 60, 61, len(data) - 1):
        with pytest.raises(CorruptRecordError, match="truncated"):
            list(read_batches(data[:cut]))
        with pytest.raises(CorruptRecordError, match="truncated"):
            parse_batch_header(data[:cut])


def test_allow_truncated_tail_drops_only_the_partial_last_batch() -> None:
    one = _small_batch()
    two = _small_batch(ZSTD)
    for cut in (1, 11, 12, 30, len(two) - 1):
        batches = list(read_batches(one + two + two[:cut], allow_truncated_tail=True))
        assert [b.size_in_bytes for b in batches] == [len(one), len(two)]
        assert [len(b.records()) for b in batches] == [2, 2]
    assert len(list(read_batches(one + two, allow_truncated_tail=True))) == 2


def test_allow_truncated_tail_still_rejects_real_corruption() -> None:
    one = _small_batch()
    bad_length = bytearray(one)
    struct.pack_into(">i", bad_length, 8, 10)  # shorter than a header
    with pytest.raises(CorruptRecordError, match="declares length 10"):
        list(read_batches(one + bytes(bad_length), allow_truncated_tail=True))
    bad_crc = bytearray(one)
    bad_crc[-1] ^= 1
    with pytest.raises(CorruptRecordError, match="CRC"):
        list(read_batches(bytes(bad_crc) + one[:20], allow_truncated_tail=True))


def _with_header_field(data: bytes, fmt: str, offset: int, value: int) -> bytes:
    """Rewrite one header field and fix the CRC, to test checks beyond the CRC."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


@pytest.mark.parametrize("codec", [NONE, GZIP])
def test_records_section_must_match_the_count(codec: int) -> None:
    data = _small_batch(codec)
    more = _with_header_field(data, ">i", 57, 3)
    (batch,) = read_batches(more)
    with pytest.raises(CorruptRecordError, match="record 2 of the batch at offset 0"):
        batch.records()
    fewer = _with_header_field(data, ">i", 57, 1)
    (batch,) = read_batches(fewer)
    with pytest.raises(CorruptRecordError, match="bytes left after the 1 records"):
        batch.records()


def test_record_length_mismatch_is_reported() -> None:
    b = RecordBatchBuilder()
    b.append(BASE_TS, b"k", b"v")
    data = bytearray(b.build())
    data[61] += 2  # the record's length varint: now claims one byte more than its fields
    data += b"\x00"
    struct.pack_into(">i", data, 8, len(data) - 12)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    (batch,) = read_batches(bytes(data))
    with pytest.raises(CorruptRecordError, match="declares 9 bytes but its fields take 8"):
        batch.records()


def test_undecodable_compressed_payload() -> None:
    data = _small_batch(SNAPPY)
    out = bytearray(data)
    out[61:69] = b"\x00" * 8  # destroys the xerial header
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    (batch,) = read_batches(bytes(out))
    with pytest.raises(CorruptRecordError, match="batch at offset 0: snappy data"):
        batch.records()


def test_unknown_codec_bits() -> None:
    data = _with_header_field(_small_batch(), ">h", 21, 6)
    (batch,) = read_batches(data)
    with pytest.raises(CorruptRecordError, match="unknown codec id 6"):
        batch.records()


def test_validate_checks_last_offset_delta() -> None:
    data = _with_header_field(_small_batch(), ">i", 23, 5)
    (batch,) = read_batches(data)
    with pytest.raises(InvalidRecordError, match="lastOffsetDelta 5 but 2 records: it must be 1"):
        batch.validate()
    assert issubclass(InvalidRecordError, CorruptRecordError)


def test_validate_checks_offset_deltas_run_from_zero() -> None:
    data = bytearray(_small_batch())
    # second record: length, attributes, ts delta (1 byte: 7 -> 0e), then the offset delta
    first_len = data[61] >> 1
    second = 61 + 1 + first_len
    assert data[second + 3] == 0x02
    data[second + 3] = 0x04  # offset delta 2 instead of 1
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    (batch,) = read_batches(bytes(data))
    with pytest.raises(InvalidRecordError, match="record 1 of the batch at offset 0 has offset delta 2"):
        batch.validate()


# --- builder rules -------------------------------------------------------------------------------


def test_restamping_does_not_recompress(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = records_module._compress

    def counting(codec: int, data: bytes, level: int | None = None) -> bytes:
        calls.append(codec)
        return real(codec, data, level)

    monkeypatch.setattr(records_module, "_compress", counting)
    b = RecordBatchBuilder(ZSTD)
    for ts, key, value, headers in _mixed_records(50):
        b.append(ts, key, value, headers)
    first = b.build(producer_id=5, producer_epoch=1, base_sequence=10)
    second = b.build(producer_id=5, producer_epoch=2, base_sequence=0)
    assert calls == [ZSTD]
    (one,) = read_batches(first)
    (two,) = read_batches(second)
    assert (one.producer_id, one.producer_epoch, one.base_sequence) == (5, 1, 10)
    assert (two.producer_id, two.producer_epoch, two.base_sequence) == (5, 2, 0)
    assert one.crc != two.crc
    assert bytes(one.records_payload) == bytes(two.records_payload)
    assert one.records() == two.records()
    assert one.last_sequence == 59 and two.last_sequence == 49


def test_last_sequence_wraps_like_java() -> None:
    b = RecordBatchBuilder()
    for i in range(3):
        b.append(BASE_TS, None, b"x")
    (batch,) = read_batches(b.build(1, 0, (1 << 31) - 2))
    assert batch.last_sequence == 0
    (batch,) = read_batches(b.build())
    assert batch.last_sequence == -1


def test_producer_state_rules() -> None:
    b = _golden_builder()
    with pytest.raises(ValueError, match="transactional batch needs a producer id"):
        b.build(transactional=True)
    with pytest.raises(ValueError, match="producer_epoch -1 is negative"):
        b.build(producer_id=3)
    with pytest.raises(ValueError, match="base_sequence -1 is negative"):
        b.build(producer_id=3, producer_epoch=0)
    with pytest.raises(ValueError, match="producer_epoch signed 16-bit"):
        b.build(producer_id=3, producer_epoch=40000, base_sequence=0)


def test_empty_batch_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="empty record batch"):
        RecordBatchBuilder(GZIP).build()


def test_no_append_after_close() -> None:
    b = RecordBatchBuilder(LZ4)
    b.append(BASE_TS, None, b"v")
    assert not b.is_closed
    b.close()
    b.close()
    assert b.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        b.append(BASE_TS, None, b"v")


def test_max_size_refuses_without_changing_state() -> None:
    b = RecordBatchBuilder(max_size=61 + 250)
    big = b"x" * 1000
    # body 1 + 1 + 1 + 1 + 2 + 1000 + 1 = 1007, plus a 2-byte length varint
    assert b.append(BASE_TS, None, big) == 1009  # the first record always fits
    assert b.is_full
    assert b.append(BASE_TS + 50, None, b"y") == 0
    assert (b.record_count, b.size_in_bytes, b.max_timestamp) == (1, 61 + 1009, BASE_TS)

    b = RecordBatchBuilder(max_size=61 + 24)
    assert b.append(BASE_TS, None, b"v" * 5) == 12
    assert b.append(BASE_TS + 1, None, b"v" * 5) == 12
    assert b.is_full
    assert b.append(BASE_TS + 2, None, b"v") == 0
    assert b.record_count == 2 and b.max_timestamp == BASE_TS + 1
    (batch,) = read_batches(b.build())
    assert len(batch.records()) == 2


def test_bad_arguments_get_clear_errors() -> None:
    b = RecordBatchBuilder()
    with pytest.raises(TypeError, match="record value must be bytes or None, got str"):
        b.append(BASE_TS, None, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="record key must be bytes or None, got int"):
        b.append(BASE_TS, 5, b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="header key must be str, got bytes"):
        b.append(BASE_TS, None, b"v", [(b"h", b"v")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="value of header 'h' must be bytes or None, got str"):
        b.append(BASE_TS, None, b"v", [("h", "v")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="each header must be a"):
        b.append(BASE_TS, None, b"v", ["h"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="record timestamp must be an int"):
        b.append(None, None, b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="record timestamp must be an int"):
        b.append(1.5, None, b"v")  # type: ignore[arg-type]
    assert b.record_count == 0 and b.size_in_bytes == 61
    # a failed first append leaves no trace: the base timestamp is the first stored record's
    b.append(BASE_TS + 5, None, b"v")
    (batch,) = read_batches(b.build())
    assert batch.base_timestamp == BASE_TS + 5
    with pytest.raises(ValueError, match="level 12 is out of range"):
        RecordBatchBuilder(GZIP, level=12)
    with pytest.raises(ValueError, match="max_size 10 is smaller"):
        RecordBatchBuilder(max_size=10)


def test_append_reports_the_bytes_it_added() -> None:
    b = RecordBatchBuilder(GZIP)
    sizes = [b.append(ts, k, v, h) for ts, k, v, h in _mixed_records(40)]
    assert b.size_in_bytes == 61 + sum(sizes)
    b.close()
    raw = records_module.decompress(GZIP, read_batches(b.build()).__next__().records_payload)
    assert len(raw) == sum(sizes)


# --- size estimates ----------------------------------------------------------------------------------


def test_estimate_record_size_is_javas_upper_bound() -> None:
    # Java DefaultRecord.recordSizeUpperBound: body = 1 + 5 + 10 + (1+16) + (2+100) + 1 = 136,
    # plus its 2-byte length varint
    assert estimate_record_size(16, 100) == 138
    assert estimate_record_size(None, 100) == 138 - 16  # a null key is the 1-byte varint -1
    assert estimate_record_size(-1, -1) == 1 + 5 + 10 + 1 + 1 + 1 + 1
    assert estimate_batch_size_upper_bound(16, 100) == 61 + 138
    headers: list[tuple[str, bytes | None]] = [("trace", b"x" * 40), ("é", None)]
    # headers: count 1 + ("trace": 1+5, value 1+40) + ("é": 1+2, null 1) = 52
    assert estimate_record_size(16, 100, headers) == 136 - 1 + 52 + 2


def test_estimate_bounds_the_actual_size() -> None:
    rng = random.Random(8)
    b = RecordBatchBuilder()
    for ts, key, value, headers in _mixed_records(300):
        ts = BASE_TS + rng.choice([0, 1 << 40, -(1 << 40)])
        added = b.append(ts, key, value, headers)
        assert added <= estimate_record_size(
            None if key is None else len(key), None if value is None else len(value), headers
        )


# --- broker helpers --------------------------------------------------------------------------------------


def test_parse_batch_header_without_decoding() -> None:
    b = RecordBatchBuilder(ZSTD)
    for i in range(10):
        b.append(BASE_TS + i, None, b"v%d" % i)
    data = b"\x00" * 7 + b.build(123, 4, 56, transactional=True)
    batch = parse_batch_header(data, 7)
    assert (batch.record_count, batch.producer_id, batch.producer_epoch, batch.base_sequence) == (10, 123, 4, 56)
    assert (batch.last_offset_delta, batch.last_sequence, batch.is_transactional) == (9, 65, True)
    assert batch.size_in_bytes == len(data) - 7
    assert bytes(batch.raw) == data[7:]
    batch.check_crc()


def test_assign_offsets_keeps_the_crc_for_create_time() -> None:
    data = _small_batch(GZIP)
    out = assign_offsets(data, 1000, partition_leader_epoch=7)
    (batch,) = read_batches(out)
    assert (batch.base_offset, batch.partition_leader_epoch, batch.crc) == (1000, 7, parse_batch_header(data).crc)
    assert batch.timestamp_type == CREATE_TIME
    assert [r.offset for r in batch.records()] == [1000, 1001]
    assert [r.timestamp for r in batch.records()] == [BASE_TS, BASE_TS + 7]
    assert out[21:] == data[21:]


@pytest.mark.parametrize("codec", [NONE, LZ4])
def test_assign_offsets_log_append_time(codec: int) -> None:
    data = _small_batch(codec)
    out = assign_offsets(bytearray(data), 42, log_append_time=BASE_TS + 99_999)
    (batch,) = read_batches(out)  # CRC recomputed and valid
    batch.validate()
    assert batch.base_offset == 42
    assert batch.timestamp_type == LOG_APPEND_TIME
    assert batch.attributes == codec | 0x08
    assert batch.max_timestamp == BASE_TS + 99_999
    assert batch.base_timestamp == BASE_TS
    assert [(r.offset, r.timestamp) for r in batch.records()] == [(42, BASE_TS + 99_999), (43, BASE_TS + 99_999)]
    theirs = DefaultRecordBatch(bytearray(out))
    assert theirs.validate_crc() and theirs.timestamp_type == 1


def test_assign_offsets_refuses_bad_input() -> None:
    data = _small_batch()
    damaged = bytearray(data)
    damaged[-1] ^= 1
    with pytest.raises(CorruptRecordError, match="CRC"):
        assign_offsets(bytes(damaged), 0, log_append_time=BASE_TS)
    with pytest.raises(CorruptRecordError, match="exactly one batch"):
        assign_offsets(data + data, 0)
    with pytest.raises(CorruptRecordError, match="truncated"):
        assign_offsets(data[:-1], 0)


@pytest.mark.parametrize("control_type", [CONTROL_ABORT, CONTROL_COMMIT])
def test_control_batch(control_type: int) -> None:
    data = build_control_batch(control_type, coordinator_epoch=3, producer_id=9, producer_epoch=2, timestamp=BASE_TS)
    (batch,) = read_batches(data)
    batch.validate()
    assert batch.is_control and batch.is_transactional
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence, batch.record_count) == (9, 2, -1, 1)
    (record,) = batch.records()
    assert record.key == struct.pack(">hh", 0, control_type)
    assert record.value == struct.pack(">hi", 0, 3)
    (theirs,) = list(DefaultRecordBatch(bytearray(data)))
    assert theirs.type == control_type
    with pytest.raises(ValueError, match="control_type 2"):
        build_control_batch(2, 0, 1, 0, BASE_TS)


def test_header_size_constant() -> None:
    assert BATCH_HEADER_SIZE == 61


def _raw_batch(records_section: bytes, count: int) -> bytes:
    """A CRC-valid uncompressed batch around an arbitrary records section."""
    covered = struct.pack(">hiqqqhii", 0, count - 1, BASE_TS, BASE_TS, -1, -1, -1, count) + records_section
    return struct.pack(">qiibI", 0, 49 + len(records_section), -1, 2, crc32c(covered)) + covered


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (b"\xd0", "record 0 of the batch at offset 0 cannot be decoded"),  # cut inside a 2-byte varint
        (b"\x0c\x00\x00\x00\x01\x01", "declares 6 bytes but only 5 remain"),  # cut before the header count
        (b"\x0c\x00\x00\x00\x01\x01\x03", "has header count -2"),
        (b"\x0e\x00\x00\x00\x01\x01\x02\x01", "has a null header key"),
        (b"\x12\x00\x00\x00\x01\x01\x02\x04\xff\xfe\x01", "cannot be decoded: 'utf-8' codec"),
        (b"\x0a\x00\x00\x00\x01\x01", "declares 5 bytes, fewer than the 6"),
    ],
)
def test_malformed_records_are_named(section: bytes, message: str) -> None:
    (batch,) = read_batches(_raw_batch(section, 1))
    with pytest.raises(CorruptRecordError, match=message):
        batch.records()


def test_empty_input_has_no_batches() -> None:
    assert list(read_batches(b"")) == []
    assert list(read_batches(b"", allow_truncated_tail=True)) == []
