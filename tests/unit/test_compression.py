"""Codecs: round trips, the exact framing Kafka expects, levels, and corrupt input."""

from __future__ import annotations

import gzip
import os
import random
import struct

import lz4.frame
import pytest
import snappy
import zstandard
from kafka import codec as kafka_python_codec

from kprod.protocol import compression as c
from kprod.protocol.compression import (
    DEFAULT_LEVELS,
    LEVEL_RANGES,
    DecompressionError,
    UnsupportedCodecError,
    codec_for_name,
    compress,
    decompress,
    validate_level,
)

CODECS = [c.NONE, c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD]


def _sample(size: int, seed: int = 1) -> bytes:
    """Compressible, record-like bytes (JSON-ish text with random numbers)."""
    rng = random.Random(seed)
    words = [b"order", b"user", b"price", b"status", b"shipped", b"created", b"city"]
    out = bytearray()
    while len(out) < size:
        out += b'{"%s":%d,"%s":"%s%d"}' % (
            rng.choice(words), rng.randrange(10**6), rng.choice(words), rng.choice(words), rng.randrange(999)
        )
    return bytes(out[:size])


DATA_SIZES = [0, 1, 100, 32 * 1024, 32 * 1024 + 1, 64 * 1024, 200 * 1024 + 7]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("size", DATA_SIZES)
def test_round_trip_every_codec(codec: int, size: int) -> None:
    data = _sample(size)
    out = compress(codec, data)
    assert decompress(codec, out) == data
    assert decompress(codec, memoryview(out)) == data
    # bytearray and memoryview input compress to the same bytes
    assert compress(codec, bytearray(data)) == out
    assert compress(codec, memoryview(data)) == out


def test_incompressible_data_round_trips() -> None:
    data = os.urandom(150 * 1024)
    for codec in CODECS:
        assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize(
    ("codec", "levels"),
    [(c.GZIP, [-1, 1, 5, 9]), (c.LZ4, [1, 2, 3, 9, 12, 17]), (c.ZSTD, [-(1 << 17), -5, 1, 3, 19, 22])],
)
def test_every_level_round_trips(codec: int, levels: list[int]) -> None:
    data = _sample(70 * 1024)
    for level in levels:
        validate_level(codec, level)
        assert decompress(codec, compress(codec, data, level)) == data, level


def test_higher_levels_compress_smaller() -> None:
    data = _sample(64 * 1024)
    assert len(compress(c.GZIP, data, 9)) < len(compress(c.GZIP, data, 1))
    assert len(compress(c.ZSTD, data, 19)) < len(compress(c.ZSTD, data, 1))
    # lz4's Java default (9) is the fast compressor; other levels are LZ4-HC
    assert len(compress(c.LZ4, data, 12)) < len(compress(c.LZ4, data, 9))
    assert compress(c.LZ4, data, 9) == compress(c.LZ4, data) == compress(c.LZ4, data, None)


# --- levels and names ---------------------------------------------------------------


def test_level_tables_match_java() -> None:
    assert LEVEL_RANGES == {c.GZIP: (1, 9), c.LZ4: (1, 17), c.ZSTD: (-131072, 22)}
    assert DEFAULT_LEVELS == {c.GZIP: -1, c.LZ4: 9, c.ZSTD: 3}


@pytest.mark.parametrize(
    ("codec", "level", "message"),
    [
        (c.GZIP, 0, r"gzip compression level 0 is out of range: use 1\.\.9 or -1 for the default"),
        (c.GZIP, 10, "gzip compression level 10 is out of range"),
        (c.LZ4, 0, r"lz4 compression level 0 is out of range: use 1\.\.17"),
        (c.LZ4, 18, "lz4 compression level 18"),
        (c.ZSTD, 23, r"zstd compression level 23 is out of range: use -131072\.\.22"),
        (c.ZSTD, -131073, "zstd compression level -131073"),
        (c.SNAPPY, 1, "snappy compression has no levels"),
        (c.NONE, 1, "none compression has no levels"),
    ],
)
def test_bad_levels_are_rejected_with_the_range(codec: int, level: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_level(codec, level)


def test_level_type_is_checked() -> None:
    with pytest.raises(TypeError, match="must be an int or None"):
        validate_level(c.GZIP, "5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        validate_level(c.GZIP, True)


def test_none_level_means_default_for_every_codec() -> None:
    for codec in CODECS:
        validate_level(codec, None)


@pytest.mark.parametrize("codec", [5, 7, -1])
def test_unknown_codec_ids(codec: int) -> None:
    with pytest.raises(UnsupportedCodecError, match=f"unknown compression codec id {codec}"):
        compress(codec, b"x")
    with pytest.raises(UnsupportedCodecError, match="0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd"):
        decompress(codec, b"x")
    with pytest.raises(UnsupportedCodecError):
        validate_level(codec, None)


def test_codec_names() -> None:
    assert [codec_for_name(n) for n in ("none", "gzip", "snappy", "lz4", "zstd")] == CODECS
    with pytest.raises(UnsupportedCodecError, match="unknown compression type 'brotli': use one of none, gzip"):
        codec_for_name("brotli")
    assert issubclass(UnsupportedCodecError, ValueError)


# --- gzip -------------------------------------------------------------------------------


def test_gzip_is_an_rfc1952_stream() -> None:
    data = _sample(5000)
    out = compress(c.GZIP, data)
    assert out[:3] == b"\x1f\x8b\x08"  # magic, deflate
    assert gzip.decompress(out) == data


def test_gzip_reads_concatenated_members_and_other_writers() -> None:
    a, b = _sample(3000, 1), _sample(4000, 2)
    assert decompress(c.GZIP, gzip.compress(a) + gzip.compress(b)) == a + b
    assert decompress(c.GZIP, kafka_python_codec.gzip_encode(a)) == a


# --- snappy -------------------------------------------------------------------------------


def _xerial_blocks(frame: bytes) -> list[bytes]:
    pos, blocks = 16, []
    while pos < len(frame):
        (size,) = struct.unpack_from(">i", frame, pos)
        blocks.append(frame[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert pos == len(frame)
    return blocks


def test_snappy_uses_xerial_framing_with_32k_blocks() -> None:
    data = _sample(100 * 1024)
    out = compress(c.SNAPPY, data)
    # magic, version 1, min compatible version 1
    assert out[:16] == bytes.fromhex("82534e415050590000000001 00000001".replace(" ", ""))
    blocks = [snappy.decompress(block) for block in _xerial_blocks(out)]
    assert [len(b) for b in blocks] == [32768, 32768, 32768, 100 * 1024 - 3 * 32768]
    assert b"".join(blocks) == data


def test_snappy_matches_kafka_python_xerial_both_ways() -> None:
    data = _sample(80 * 1024)
    assert kafka_python_codec.snappy_decode(compress(c.SNAPPY, data)) == data
    assert decompress(c.SNAPPY, kafka_python_codec.snappy_encode(data)) == data


def test_snappy_reads_raw_snappy_without_the_xerial_header() -> None:
    data = _sample(10 * 1024)
    assert decompress(c.SNAPPY, snappy.compress(data)) == data


# --- lz4 ------------------------------------------------------------------------------------


def _xxh32_short(data: bytes, seed: int = 0) -> int:
    """XXH32 for inputs under 16 bytes (the LZ4 frame descriptor), from the xxHash spec."""
    assert len(data) < 16
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    acc = (seed + p5 + len(data)) & mask
    pos = 0
    while pos + 4 <= len(data):
        (lane,) = struct.unpack_from("<I", data, pos)
        acc = rotl((acc + lane * p3) & mask, 17) * p4 & mask
        pos += 4
    for byte in data[pos:]:
        acc = rotl((acc + byte * p5) & mask, 11) * p1 & mask
    acc ^= acc >> 15
    acc = acc * p2 & mask
    acc ^= acc >> 13
    acc = acc * p3 & mask
    return acc ^ (acc >> 16)


def _lz4_frame_layout(frame: bytes) -> tuple[int, int, list[tuple[int, bool]]]:
    """(FLG, BD, [(block size, compressed?)]) after checking the header checksum."""
    assert frame[:4] == b"\x04\x22\x4d\x18"
    flg, bd = frame[4], frame[5]
    descriptor_end = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
    descriptor = frame[4:descriptor_end]
    assert frame[descriptor_end] == (_xxh32_short(descriptor) >> 8) & 0xFF, "header checksum"
    pos = descriptor_end + 1
    blocks = []
    while True:
        (word,) = struct.unpack_from("<I", frame, pos)
        pos += 4
        if word == 0:
            break
        size = word & 0x7FFFFFFF
        blocks.append((size, not word & 0x80000000))
        pos += size + (4 if flg & 0x10 else 0)
    pos += 4 if flg & 0x04 else 0
    assert pos == len(frame)
    return flg, bd, blocks


def test_xxh32_helper_matches_the_known_java_header_byte() -> None:
    # Java's Lz4BlockOutputStream writes 04 22 4d 18 60 40 82
    assert (_xxh32_short(b"\x60\x40") >> 8) & 0xFF == 0x82


def test_lz4_default_level_writes_java_identical_frame() -> None:
    data = _sample(150 * 1024)
    out = compress(c.LZ4, data)
    assert out[:7] == bytes.fromhex("04224d18604082")
    flg, bd, blocks = _lz4_frame_layout(out)
    assert flg & 0x20, "independent blocks"
    assert flg >> 6 == 1
    assert bd == 0x40  # 64 KiB max block
    assert len(blocks) == 3 and all(compressed for _, compressed in blocks)
    assert lz4.frame.decompress(out) == data
    assert out.endswith(b"\x00\x00\x00\x00")


@pytest.mark.parametrize("level", [1, 3, 12, 17])
def test_lz4_other_levels_keep_independent_blocks_and_a_valid_header(level: int) -> None:
    data = _sample(150 * 1024)
    out = compress(c.LZ4, data, level)
    flg, bd, blocks = _lz4_frame_layout(out)
    assert flg & 0x20, "independent blocks"
    assert not flg & 0x04, "no content checksum"
    assert bd == 0x40
    # cramjam >= 2.14 writes full 64 KiB blocks (3 here); older versions smaller ones
    assert 3 <= len(blocks) and all(size <= 65536 for size, _ in blocks)
    assert lz4.frame.decompress(out) == data


def test_lz4_stores_incompressible_blocks_uncompressed() -> None:
    data = os.urandom(70 * 1024)
    out = compress(c.LZ4, data)
    _, _, blocks = _lz4_frame_layout(out)
    assert blocks == [(65536, False), (70 * 1024 - 65536, False)]
    assert decompress(c.LZ4, out) == data


def test_lz4_reads_frames_of_other_writers() -> None:
    data = _sample(90 * 1024)
    with_size = lz4.frame.compress(data, block_linked=False, store_size=True, content_checksum=True)
    assert decompress(c.LZ4, with_size) == data
    checksummed = lz4.frame.compress(data, block_linked=False, block_checksum=True)
    assert decompress(c.LZ4, checksummed) == data
    assert decompress(c.LZ4, kafka_python_codec.lz4_encode(data)) == data


def test_lz4_linked_blocks_are_rejected_like_kafka() -> None:
    linked = lz4.frame.compress(_sample(90 * 1024), block_linked=True)
    with pytest.raises(DecompressionError, match="linked blocks, which Kafka rejects"):
        decompress(c.LZ4, linked)


def test_lz4_block_larger_than_the_declared_maximum_is_rejected() -> None:
    frame = bytes.fromhex("04224d18604082") + struct.pack("<I", 65537 | 0x80000000) + bytes(65537) + bytes(4)
    with pytest.raises(DecompressionError, match="does not fit the 64 KiB block size"):
        decompress(c.LZ4, frame)


def test_lz4_corrupt_block_in_a_java_frame() -> None:
    out = bytearray(compress(c.LZ4, _sample(20_000)))
    out[11:61] = b"\xff" * 50  # the first block now starts with a literal run longer than itself
    with pytest.raises(DecompressionError, match="lz4 data is corrupt"):
        decompress(c.LZ4, bytes(out))


def test_lz4_bad_header_checksum_and_magic() -> None:
    out = bytearray(compress(c.LZ4, _sample(1000)))
    out[6] ^= 0xFF
    with pytest.raises(DecompressionError, match="lz4 data is corrupt"):
        decompress(c.LZ4, bytes(out))
    with pytest.raises(DecompressionError, match="magic 00000000 instead of 04224d18"):
        decompress(c.LZ4, b"\x00" * 20)


# --- zstd -------------------------------------------------------------------------------------


def test_zstd_frame_without_content_size_decodes() -> None:
    data = _sample(100 * 1024)
    frame = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(data)
    assert zstandard.frame_content_size(frame) == -1  # as the Java client writes it
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(frame)  # the one-shot API cannot
    assert decompress(c.ZSTD, frame) == data


def test_zstd_concatenated_frames_and_kafka_python() -> None:
    a, b = _sample(5000, 3), _sample(7000, 4)
    zc = zstandard.ZstdCompressor(write_content_size=False)
    assert decompress(c.ZSTD, zc.compress(a) + zc.compress(b)) == a + b
    assert kafka_python_codec.zstd_decode(compress(c.ZSTD, a)) == a
    assert decompress(c.ZSTD, kafka_python_codec.zstd_encode(a)) == a


def test_zstd_output_is_a_standard_frame() -> None:
    out = compress(c.ZSTD, _sample(1000))
    assert out[:4] == b"\x28\xb5\x2f\xfd"


# --- corrupt input ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD])
def test_truncated_and_damaged_input_raise_decompression_error(codec: int) -> None:
    data = _sample(50 * 1024)
    out = compress(codec, data)
    # Cut short, or with the framing header destroyed. (Damage inside a block is not
    # always detectable by the codec itself; the batch CRC catches that.)
    for damaged in (out[: len(out) // 2], out[:-3], out[:1], bytes(12) + out[12:]):
        with pytest.raises(DecompressionError, match=c.CODEC_NAMES[codec]):
            decompress(codec, damaged)
    assert issubclass(DecompressionError, ValueError)
