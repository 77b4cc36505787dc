"""Record-batch codecs, byte-compatible with what Kafka's Java client writes and reads.

Only the records section of a batch is compressed. Per codec (ids from the
batch attributes):

* ``1 gzip``: an RFC 1952 stream (stdlib ``zlib``; concatenated members are read).
* ``2 snappy``: xerial snappy-java framing, as the Java client's
  ``SnappyOutputStream`` writes it: a 16-byte header, then 32 KiB input blocks,
  each an int32 length plus a raw snappy block (``cramjam``). Raw snappy without
  the header is read too, as xerial's reader does.
* ``3 lz4``: an LZ4 frame with *independent* blocks (Kafka rejects linked blocks),
  64 KiB maximum block size and a valid header checksum. At the default level the
  frame is written exactly as Java's ``Lz4BlockOutputStream`` does (FLG 0x60, BD 0x40,
  fast compressor); other levels use LZ4-HC through ``cramjam``'s frame encoder, as
  Java uses its high compressor for them. Frames with linked blocks are refused on
  read, as Kafka does; every other frame option (checksums, content size) is read.
* ``4 zstd``: standard zstd frames (``zstandard``). Java writes frames without a
  content size, so reading always uses streaming decompression.

Library choice (measured, see docs/DESIGN.md): ``cramjam`` for snappy and lz4,
``zstandard`` for zstd (1.1-1.4x faster compression than cramjam's zstd: the
context is reused per thread), stdlib ``zlib`` for gzip (faster compression than cramjam's).
"""

from __future__ import annotations

import struct
import threading
import zlib
from typing import Any, Final

import cramjam
import zstandard
from kprod.errors import KafkaError

__all__ = [
    "CODEC_IDS",
    "CODEC_NAMES",
    "DEFAULT_LEVELS",
    "GZIP",
    "LEVEL_RANGES",
    "LZ4",
    "NONE",
    "SNAPPY",
    "ZSTD",
    "DecompressionError",
    "UnsupportedCodecError",
    "codec_for_name",
    "compress",
    "decompress",
    "validate_level",
]

NONE: Final = 0
GZIP: Final = 1
SNAPPY: Final = 2
LZ4: Final = 3
ZSTD: Final = 4

CODEC_NAMES: Final[dict[int, str]] = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
CODEC_IDS: Final[dict[str, int]] = {name: codec for codec, name in CODEC_NAMES.items()}

# Java's accepted ranges for compression.gzip.level / compression.lz4.level /
# compression.zstd.level (inclusive). gzip also accepts -1, its default
# (zlib's default level, 6). zstd's minimum is ZSTD_minCLevel() = -(1 << 17).
LEVEL_RANGES: Final[dict[int, tuple[int, int]]] = {GZIP: (1, 9), LZ4: (1, 17), ZSTD: (-(1 << 17), 22)}
DEFAULT_LEVELS: Final[dict[int, int]] = {GZIP: -1, LZ4: 9, ZSTD: 3}


class UnsupportedCodecError(KafkaError, ValueError):
    """A codec id or name that Kafka does not define."""


class DecompressionError(KafkaError, ValueError):
    """Compressed data that the codec cannot decode (corrupt, truncated or wrongly framed)."""


def codec_for_name(name: str) -> int:
    """Codec id for a ``compression.type`` value (``none``, ``gzip``, ``snappy``, ``lz4``, ``zstd``)."""
    try:
        return CODEC_IDS[name]
    except (KeyError, TypeError):
        raise UnsupportedCodecError(
            f"unknown compression type {name!r}: use one of {', '.join(CODEC_IDS)}"
        ) from None


def validate_level(codec: int, level: int | None) -> None:
    """Raise ``ValueError`` when ``level`` is not a level Java accepts for ``codec``.

    ``None`` always means the codec's default. Codecs without levels (none,
    snappy) accept only ``None``.
    """
    if level is None:
        if codec not in CODEC_NAMES:
            raise UnsupportedCodecError(_unknown_codec_message(codec))
        return
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"compression level must be an int or None, got {type(level).__name__}")
    bounds = LEVEL_RANGES.get(codec)
    if bounds is None:
        if codec not in CODEC_NAMES:
            raise UnsupportedCodecError(_unknown_codec_message(codec))
        raise ValueError(f"{CODEC_NAMES[codec]} compression has no levels; leave the level unset")
    low, high = bounds
    if low <= level <= high or (codec == GZIP and level == DEFAULT_LEVELS[GZIP]):
        return
    extra = f" or {DEFAULT_LEVELS[GZIP]} for the default" if codec == GZIP else ""
    raise ValueError(
        f"{CODEC_NAMES[codec]} compression level {level} is out of range: use {low}..{high}{extra}"
    )


def _unknown_codec_message(codec: object) -> str:
    return (
        f"unknown compression codec id {codec!r}: Kafka defines 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd"
    )


Buffer = bytes | bytearray | memoryview


def compress(codec: int, data: Buffer, level: int | None = None) -> bytes:
    """Compress a records section with ``codec`` at Java's ``level`` (None: default)."""
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        return zlib.compress(data, -1 if level is None else level, 31)
    if codec == SNAPPY:
        return _snappy_xerial_compress(data)
    if codec == LZ4:
        if level is None or level == DEFAULT_LEVELS[LZ4]:
            return _lz4_frame_fast(data)
        return _lz4_frame_hc(data, level)
    if codec == ZSTD:
        out: bytes = _zstd_compressor(DEFAULT_LEVELS[ZSTD] if level is None else level).compress(data)
        return out
    raise UnsupportedCodecError(_unknown_codec_message(codec))


def decompress(codec: int, data: Buffer) -> bytes:
    """Decompress a records section written with ``codec`` by any Kafka client."""
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        return _gzip_decompress(data)
    if codec == SNAPPY:
        return _snappy_decompress(data)
    if codec == LZ4:
        return _lz4_decompress(data)
    if codec == ZSTD:
        return _zstd_decompress(data)
    raise UnsupportedCodecError(_unknown_codec_message(codec))


# --- gzip -------------------------------------------------------------------


def _gzip_decompress(data: Buffer) -> bytes:
    # Java's GZIPInputStream reads concatenated members; one decompressobj per member.
    parts: list[bytes] = []
    remaining: Buffer = data
    while True:
        d = zlib.decompressobj(31)
        try:
            parts.append(d.decompress(remaining))
        except zlib.error as exc:
            raise DecompressionError(f"gzip data is corrupt: {exc}") from None
        if not d.eof:
            raise DecompressionError("gzip data is truncated: the stream ends before its trailer")
        remaining = d.unused_data
        if not remaining:
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


# --- snappy (xerial framing) -----------------------------------------------------

_XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
# magic, version 1, minimum compatible version 1 (what snappy-java writes)
_XERIAL_HEADER: Final = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK: Final = 32 * 1024
_pack_be_i32 = struct.Struct(">i").pack
_unpack_be_i32 = struct.Struct(">i").unpack_from


def _snappy_xerial_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    parts: list[Any] = [_XERIAL_HEADER]  # bytes and cramjam's Buffer objects
    for start in range(0, len(view), _XERIAL_BLOCK):
        block = cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK])
        parts.append(_pack_be_i32(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: Buffer) -> bytes:
    view = memoryview(data)
    try:
        if view[:8].tobytes() != _XERIAL_MAGIC:
            # xerial's reader treats input without its header as one raw snappy block
            return bytes(cramjam.snappy.decompress_raw(view))
        if len(view) < 16:
            raise DecompressionError("snappy data is truncated: the xerial header needs 16 bytes")
        parts: list[bytes] = []
        pos = 16
        end = len(view)
        while pos < end:
            if end - pos < 4:
                raise DecompressionError(f"snappy data is truncated: block length at byte {pos} is cut off")
            (size,) = _unpack_be_i32(view, pos)
            pos += 4
            if size < 0 or pos + size > end:
                raise DecompressionError(
                    f"snappy data is truncated or corrupt: a block of {size} bytes at byte {pos}"
                    f" runs past the end of the {end}-byte input"
                )
            parts.append(bytes(cramjam.snappy.decompress_raw(view[pos : pos + size])))
            pos += size
    except cramjam.DecompressionError as exc:
        raise DecompressionError(f"snappy data is corrupt: {exc}") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


# --- lz4 frame ----------------------------------------------------------------

_LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
# FLG 0x60: version 01, independent blocks, no checksums, no content size.
# BD 0x40: 64 KiB maximum block size. 0x82 = (xxh32(b"\x60\x40", seed 0) >> 8) & 0xff.
_LZ4_HEADER: Final = _LZ4_MAGIC + b"\x60\x40\x82"
_LZ4_BLOCK: Final = 64 * 1024
_LZ4_END_MARK: Final = b"\x00\x00\x00\x00"
_LZ4_UNCOMPRESSED: Final = 0x80000000
_pack_le_u32 = struct.Struct("<I").pack


def _lz4_frame_fast(data: Buffer) -> bytes:
    """The frame Java writes at its default level: fast compressor, FLG 0x60, BD 0x40."""
    view = memoryview(data)
    parts: list[Any] = [_LZ4_HEADER]  # bytes, memoryview slices and cramjam's Buffer objects
    for start in range(0, len(view), _LZ4_BLOCK):
        chunk = view[start : start + _LZ4_BLOCK]
        block = cramjam.lz4.compress_block(chunk, store_size=False)
        if len(block) >= len(chunk):
            # incompressible: store the block as is, flagged by the high bit
            parts.append(_pack_le_u32(len(chunk) | _LZ4_UNCOMPRESSED))
            parts.append(chunk)
        else:
            parts.append(_pack_le_u32(len(block)))
            parts.append(block)
    parts.append(_LZ4_END_MARK)
    return b"".join(parts)


def _lz4_frame_hc(data: Buffer, level: int) -> bytes:
    """Non-default levels: LZ4-HC like Java's highCompressor(level); still independent blocks."""
    compressor = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
    compressor.compress(data)
    return bytes(compressor.finish())


def _lz4_decompress(data: Buffer) -> bytes:
    view = memoryview(data)
    if len(view) < 7:
        raise DecompressionError(f"lz4 data is truncated: {len(view)} bytes is shorter than a frame header")
    if view[:4].tobytes() != _LZ4_MAGIC:
        raise DecompressionError(
            f"lz4 data is not an LZ4 frame: magic {bytes(view[:4]).hex()} instead of 04224d18"
        )
    flg = view[4]
    if flg >> 6 != 1:
        raise DecompressionError(f"lz4 frame version {flg >> 6} is not supported (only version 1)")
    if not flg & 0x20:
        raise DecompressionError(
            "lz4 frame uses linked blocks, which Kafka rejects: write independent blocks"
            " (python-lz4: block_linked=False)"
        )
    try:
        if view[4:7].tobytes() == _LZ4_HEADER[4:]:
            return _lz4_java_frame_blocks(view)
        # any other frame options: cramjam's frame decoder, which verifies the
        # header, block and content checksums
        return bytes(cramjam.lz4.decompress(view))
    except cramjam.DecompressionError as exc:
        raise DecompressionError(f"lz4 data is corrupt: {exc}") from None


_unpack_le_u32 = struct.Struct("<I").unpack_from


def _lz4_java_frame_blocks(view: memoryview) -> bytes:
    """Blocks of a frame with Java's exact descriptor (no checksums, 64 KiB blocks).

    About 4x faster than cramjam's frame decoder on a 16 KiB batch, which has a
    large fixed cost per call; the header checksum is implied by the descriptor match.
    """
    parts: list[Buffer] = []
    pos = 7
    end = len(view)
    while True:
        if end - pos < 4:
            raise DecompressionError("lz4 data is truncated: the frame ends before its end mark")
        (word,) = _unpack_le_u32(view, pos)
        pos += 4
        if word == 0:
            break
        size = word & 0x7FFFFFFF
        if size > _LZ4_BLOCK or pos + size > end:
            raise DecompressionError(
                f"lz4 data is truncated or corrupt: a block of {size} bytes at byte {pos}"
                f" does not fit the 64 KiB block size or the {end}-byte input"
            )
        if word & _LZ4_UNCOMPRESSED:
            parts.append(view[pos : pos + size])
        else:
            block = bytearray(_LZ4_BLOCK)
            n = cramjam.lz4.decompress_block_into(view[pos : pos + size], block)
            parts.append(memoryview(block)[:n])
        pos += size
    return b"".join(parts)


# --- zstd -----------------------------------------------------------------------

# zstandard contexts must not be shared by threads at once; reuse one per thread.
_zstd_local = threading.local()


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_zstd_local, "compressors", None)
    if cache is None:
        cache = _zstd_local.compressors = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_zstd_local, "decompressor", None)
    if decompressor is None:
        decompressor = _zstd_local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def _zstd_decompress(data: Buffer) -> bytes:
    # Streaming decompression: Java's frames carry no content size, which the
    # one-shot API requires. One decompressobj per frame, as frames may be concatenated.
    decompressor = _zstd_decompressor()
    parts: list[bytes] = []
    remaining: Buffer = data
    try:
        while True:
            obj = decompressor.decompressobj()
            parts.append(obj.decompress(remaining))
            if not obj.eof:
                raise DecompressionError("zstd data is truncated: the frame ends early")
            remaining = obj.unused_data
            if not remaining:
                break
    except zstandard.ZstdError as exc:
        raise DecompressionError(f"zstd data is corrupt: {exc}") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)
