"""Size-prefixed frames and request/response headers.

Every Kafka message is ``int32 size`` + header + body. The header version
follows the body's: kio's entity classes carry their own ``__header_schema__``
(request header v1 or v2, response header v0 or v1; ApiVersions responses are
always v0), so picking the right one needs no table here.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from kprod.errors import ProtocolError
from kprod.protocol.messages import (
    ApiKey,
    api_name,
    decode_entity,
    request_type,
    response_type,
    write_entity,
)
from kprod.protocol.produce import ProduceRequest

__all__ = [
    "MAX_FRAME_SIZE",
    "FrameReader",
    "RequestFrame",
    "encode_request",
    "encode_response",
    "decode_request",
    "decode_response",
]

#: Largest frame either side accepts (Kafka's socket.request.max.bytes default is 100 MiB).
MAX_FRAME_SIZE = 100 * 1024 * 1024

_SIZE = struct.Struct(">i")
_HEADER_PREFIX = struct.Struct(">hhi")  # api_key, api_version, correlation_id
_ERROR_CODE = struct.Struct(">h")
_UNSUPPORTED_VERSION = 35


def encode_request(request: Any, correlation_id: int, client_id: str | None) -> bytes:
    """One size-prefixed request frame: header (version chosen by the body) + body.

    A :class:`~kprod.protocol.produce.ProduceRequest` frames itself (same bytes,
    without kio's per-field cost); everything else is written by kio.
    """
    if type(request) is ProduceRequest:
        return request.encode_frame(correlation_id, client_id)
    header_type = request.__header_schema__
    header = header_type(
        request_api_key=request.__api_key__,
        request_api_version=request.__version__,
        correlation_id=correlation_id,
        client_id=client_id,
    )
    return _framed(header, request)


def _framed(header: Any, body: Any) -> bytes:
    """Size prefix + header + body, written by kio."""
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    write_entity(buffer, header)
    write_entity(buffer, body)
    size = buffer.tell() - 4
    buffer.seek(0)
    buffer.write(_SIZE.pack(size))
    return buffer.getvalue()


def decode_response(frame: bytes | memoryview, api_key: int, version: int) -> tuple[int, Any]:
    """Read a response frame (without its size prefix): (correlation_id, response entity).

    ApiVersions gets special care: a broker that does not know the version we
    asked for answers with a v0 body carrying UNSUPPORTED_VERSION and the range
    it does support (KIP-511). Such an answer is returned as a v0 entity, and
    the caller retries at a version both sides know.
    """
    response_cls = response_type(api_key, version)
    try:
        header, used = decode_entity(response_cls.__header_schema__, frame, 0)
    except Exception as exc:  # kio raises a variety of decode errors
        raise ProtocolError(
            f"Could not read the header of a {len(frame)}-byte {api_name(api_key)} v{version} response: {exc}."
        ) from exc
    if api_key == ApiKey.API_VERSIONS and version > 0 and len(frame) >= used + 2:
        (error_code,) = _ERROR_CODE.unpack_from(frame, used)
        if error_code == _UNSUPPORTED_VERSION:
            response_cls = response_type(api_key, 0)
    try:
        response, _ = decode_entity(response_cls, frame, used)
    except Exception as exc:  # kio raises a variety of decode errors
        raise ProtocolError(
            f"Could not decode a {api_name(api_key)} v{version} response "
            f"(correlation id {header.correlation_id}): {exc}. The broker may speak "
            f"another protocol version than it advertised."
        ) from exc
    return header.correlation_id, response


class FrameReader:
    """Cuts a byte stream into frames (without their size prefix), keeping partial frames across reads.

    Used by both sides: the client connection and the embedded cluster. A
    frame that arrives whole in one chunk is returned as a view of that chunk,
    not a copy: use it before the chunk's buffer is reused (or copy it). A
    frame cut by reads is gathered in a buffer of its own, and when more than
    a threshold of it is still missing, the caller may receive the rest
    straight into that buffer (:meth:`direct_buffer`, :meth:`direct_filled`).
    """

    __slots__ = ("_head", "_partial", "_filled", "_max_size")

    def __init__(self, max_size: int = MAX_FRAME_SIZE) -> None:
        self._head = b""  # the first bytes of a size prefix cut by a read
        self._partial: bytearray | None = None  # a frame being gathered
        self._filled = 0  # bytes of ``_partial`` received so far
        self._max_size = max_size

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Add received bytes; return every frame now complete, in order."""
        view = data if type(data) is memoryview else memoryview(data)
        frames: list[memoryview] = []
        pos = 0
        end = len(view)
        while pos < end:
            partial = self._partial
            if partial is not None:
                take = min(len(partial) - self._filled, end - pos)
                partial[self._filled : self._filled + take] = view[pos : pos + take]
                self._filled += take
                pos += take
                if self._filled == len(partial):
                    self._partial = None
                    frames.append(memoryview(partial).toreadonly())
                continue
            if self._head or end - pos < 4:
                need = 4 - len(self._head)
                self._head += bytes(view[pos : pos + need])
                pos += min(need, end - pos)
                if len(self._head) < 4:
                    break
                (size,) = _SIZE.unpack(self._head)
                self._head = b""
            else:
                (size,) = _SIZE.unpack_from(view, pos)
                pos += 4
            if not 0 <= size <= self._max_size:
                raise ProtocolError(
                    f"Received a frame of {size} bytes, outside 0..{self._max_size}. "
                    "The peer does not speak the Kafka protocol, or the stream is corrupt."
                )
            if end - pos >= size:
                frames.append(view[pos : pos + size])
                pos += size
            else:
                self._partial = bytearray(size)
                self._filled = 0
        return frames

    def direct_buffer(self, threshold: int) -> memoryview | None:
        """The unfilled rest of the frame being gathered, if more than ``threshold`` bytes; else None.

        Receiving into it (then :meth:`direct_filled`) saves copying a large
        frame through a receive buffer.
        """
        partial = self._partial
        if partial is None or len(partial) - self._filled <= threshold:
            return None
        return memoryview(partial)[self._filled :]

    def direct_filled(self, size: int) -> memoryview | None:
        """``size`` bytes were received into :meth:`direct_buffer`: the frame, if now complete."""
        partial = self._partial
        assert partial is not None
        self._filled += size
        if self._filled < len(partial):
            return None
        self._partial = None
        return memoryview(partial).toreadonly()

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete (its size prefix included)."""
        if self._partial is not None:
            return 4 + self._filled
        return len(self._head)


@dataclass(slots=True)
class RequestFrame:
    """A request as a server receives it.

    ``request`` is None when the server cannot decode this API at this version;
    the server then answers as Kafka does (ApiVersions: an UNSUPPORTED_VERSION v0
    body; anything else: close the connection).
    """

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    request: Any | None
    response_header_version: int


def decode_request(frame: bytes | memoryview) -> RequestFrame:
    """Read a request frame (without size prefix), server side."""
    if len(frame) < _HEADER_PREFIX.size:
        raise ProtocolError(f"Request frame of {len(frame)} bytes is shorter than a request header.")
    api_key, api_version, correlation_id = _HEADER_PREFIX.unpack_from(frame, 0)
    try:
        request_cls = request_type(api_key, api_version)
    except Exception:
        request_cls = None
    if request_cls is None:
        # Unknown to us: read just enough (header v1 shape) to answer.
        client_id = _read_legacy_client_id(frame)
        return RequestFrame(api_key, api_version, correlation_id, client_id, None, 0)
    header, used = decode_entity(request_cls.__header_schema__, frame, 0)
    try:
        request, _ = decode_entity(request_cls, frame, used)
    except Exception as exc:
        raise ProtocolError(
            f"Could not decode a {api_name(api_key)} v{api_version} request "
            f"(correlation id {correlation_id}): {exc}."
        ) from exc
    response_header = response_type(api_key, api_version).__header_schema__
    return RequestFrame(
        api_key, api_version, correlation_id, header.client_id, request, response_header.__version__
    )


def _read_legacy_client_id(frame: bytes | memoryview) -> str | None:
    if len(frame) < 10:
        return None
    (length,) = _ERROR_CODE.unpack_from(frame, 8)
    if length < 0 or len(frame) < 10 + length:
        return None
    return bytes(frame[10 : 10 + length]).decode("utf-8", "replace")


def encode_response(response: Any, correlation_id: int) -> bytes:
    """One size-prefixed response frame, server side."""
    return _framed(response.__header_schema__(correlation_id=correlation_id), response)
