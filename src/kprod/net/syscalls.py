"""Non-blocking socket calls that keep the GIL.

CPython releases the GIL around every socket call, even a non-blocking one
that returns in microseconds. On the producer's I/O thread that is costly:
while ``send()`` keeps an application thread busy, each release can cost the
I/O thread up to the interpreter's switch interval (5 ms) before it runs
again, which caps the number of requests per second. For calls that cannot
block (non-blocking sockets, ``epoll_wait`` with a zero timeout) we call libc
through ``ctypes.PyDLL``, which keeps the GIL. Where that is unavailable the
ordinary socket methods are used; behaviour is the same, only slower.
"""

from __future__ import annotations

import ctypes
import errno
import select
import socket
import struct
import sys
from typing import Any

__all__ = ["FAST", "EPOLL_SUPPORTED", "send", "Receiver", "EpollNoWait"]

_libc: Any = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.PyDLL(None, use_errno=True)
        _libc.send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc.send.restype = ctypes.c_ssize_t
        _libc.recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc.recv.restype = ctypes.c_ssize_t
        _libc.epoll_wait.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        _libc.epoll_wait.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - exotic platforms
        _libc = None

#: True when the GIL-keeping calls are in use.
FAST = _libc is not None

_MSG_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
_WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)
_c_send = _libc.send if _libc is not None else None
_c_recv = _libc.recv if _libc is not None else None
_get_errno = ctypes.get_errno
_addressof = ctypes.addressof
_c_char_p = ctypes.c_char_p
_c_void_p = ctypes.c_void_p


def send(sock: socket.socket, data: bytes | bytearray, offset: int = 0) -> int:
    """Send ``data[offset:]`` on a non-blocking socket; bytes sent (0 if it would block).

    Raises OSError for a broken connection.
    """
    if _c_send is None:
        try:
            return sock.send(memoryview(data)[offset:] if offset else data)
        except BlockingIOError:
            return 0
    length = len(data) - offset
    if type(data) is bytes:
        address = ctypes.cast(_c_char_p(data), _c_void_p).value + offset  # type: ignore[operator]
        sent = _c_send(sock.fileno(), address, length, _MSG_NOSIGNAL)
    else:
        buffer = (ctypes.c_char * len(data)).from_buffer(data)
        sent = _c_send(sock.fileno(), _addressof(buffer) + offset, length, _MSG_NOSIGNAL)
        del buffer
    if sent < 0:
        code = _get_errno()
        if code in _WOULD_BLOCK:
            return 0
        raise OSError(code, errno.errorcode.get(code, str(code)))
    return int(sent)


class Receiver:
    """Receives into one reusable buffer; returns fresh bytes per call."""

    __slots__ = ("_buffer", "_address", "_size", "_view")

    def __init__(self, size: int) -> None:
        self._size = size
        self._buffer = bytearray(size)
        self._view = memoryview(self._buffer)
        self._address = _addressof((ctypes.c_char * size).from_buffer(self._buffer)) if _c_recv is not None else 0

    def recv(self, sock: socket.socket) -> bytes | None:
        """Bytes read (b"" at end of stream), or None if nothing is there yet."""
        if _c_recv is None:
            try:
                return sock.recv(self._size)
            except BlockingIOError:
                return None
        received = _c_recv(sock.fileno(), self._address, self._size, 0)
        if received < 0:
            code = _get_errno()
            if code in _WOULD_BLOCK:
                return None
            raise OSError(code, errno.errorcode.get(code, str(code)))
        return bytes(self._view[:received])


_EPOLL_EVENT = struct.Struct("=IQ")  # struct epoll_event is packed on x86-64


class EpollNoWait:
    """``epoll_wait`` with a zero timeout that keeps the GIL (Linux only)."""

    __slots__ = ("_fd", "_buffer", "_address", "_max")

    def __init__(self, epoll: select.epoll, max_events: int = 256) -> None:
        self._fd = epoll.fileno()
        self._max = max_events
        self._buffer = bytearray(_EPOLL_EVENT.size * max_events)
        self._address = _addressof((ctypes.c_char * len(self._buffer)).from_buffer(self._buffer))

    def poll(self) -> list[tuple[int, int]]:
        """Ready (fd, events) pairs, without waiting."""
        count = _libc.epoll_wait(self._fd, self._address, self._max, 0)
        if count <= 0:
            return []
        unpack = _EPOLL_EVENT.unpack_from
        size = _EPOLL_EVENT.size
        result = []
        for i in range(count):
            events, data = unpack(self._buffer, i * size)
            result.append((data & 0xFFFFFFFF, events))
        return result


import platform  # noqa: E402

#: epoll_event is packed (12 bytes) on x86-64 only; elsewhere the plain poll is used.
EPOLL_SUPPORTED = FAST and hasattr(select, "epoll") and platform.machine() in ("x86_64", "AMD64")
