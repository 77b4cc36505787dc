"""Readiness of the I/O thread's sockets: which can be read or written now.

Two implementations with one interface (``register``/``modify``/``unregister``
by fd, ``poll(timeout_ms)`` returning ``(fd, READ|WRITE bits)``):

- :class:`EpollPoller` (Linux, with ``kprod._speedups``): a zero-timeout
  poll and event changes keep the GIL (``_speedups_io.c``). Giving it up
  while the application's thread runs ``send()`` costs the I/O thread up to
  the 5 ms switch interval before it runs again; only a wait that may block
  releases it.
- :class:`SelectorPoller`: the standard ``selectors`` module (any platform,
  the pure-Python fallback), with the ctypes no-wait poll where it works.
"""

from __future__ import annotations

import select
import selectors
from typing import Protocol

from kprod import _native
from kprod.net import syscalls

__all__ = ["READ", "WRITE", "Poller", "EpollPoller", "SelectorPoller", "make_poller"]

#: Event bits (epoll's values); an error or hang-up reports both, so the
#: connection's next read or write finds out what happened.
READ = 0x1
WRITE = 0x4
_ERR_HUP = 0x8 | 0x10
_MAX_EVENTS = 256


def _bits(mask: int) -> int:
    """READ/WRITE of an epoll event mask; an error or hang-up counts as both."""
    return (mask & (READ | WRITE)) | (READ | WRITE if mask & _ERR_HUP else 0)


class Poller(Protocol):
    def register(self, fd: int, events: int) -> None: ...
    def modify(self, fd: int, events: int) -> None: ...
    def unregister(self, fd: int) -> None: ...
    def poll(self, timeout_ms: float) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...


class EpollPoller:
    """epoll through ``kprod._speedups`` (Linux)."""

    def __init__(self) -> None:
        speedups = _native.speedups
        assert speedups is not None and hasattr(speedups, "epoll_wait")
        self._epoll = select.epoll()
        self._fd = self._epoll.fileno()
        self._wait = speedups.epoll_wait
        self._modify = speedups.epoll_modify

    def register(self, fd: int, events: int) -> None:
        self._epoll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._modify(self._fd, fd, events)

    def unregister(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def poll(self, timeout_ms: float) -> list[tuple[int, int]]:
        # epoll rounds down; round up so a 0.4 ms timer does not spin at 0.
        timeout = -1 if timeout_ms < 0 else int(timeout_ms) + (timeout_ms % 1 > 0)
        events = self._wait(self._fd, timeout, _MAX_EVENTS)
        return [(fd, _bits(mask)) for fd, mask in events]

    def close(self) -> None:
        self._epoll.close()


class SelectorPoller:
    """The ``selectors`` module's best selector (the portable fallback)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._nowait: syscalls.EpollNoWait | None = None
        if syscalls.EPOLL_SUPPORTED and isinstance(self._selector, selectors.EpollSelector):
            self._nowait = syscalls.EpollNoWait(self._selector._selector)  # type: ignore[attr-defined]

    @staticmethod
    def _mask(events: int) -> int:
        return (selectors.EVENT_READ if events & READ else 0) | (selectors.EVENT_WRITE if events & WRITE else 0)

    def register(self, fd: int, events: int) -> None:
        self._selector.register(fd, self._mask(events))

    def modify(self, fd: int, events: int) -> None:
        self._selector.modify(fd, self._mask(events))

    def unregister(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def poll(self, timeout_ms: float) -> list[tuple[int, int]]:
        if self._nowait is not None:
            ready = [(fd, _bits(mask)) for fd, mask in self._nowait.poll()]
            if ready or timeout_ms <= 0:
                return ready
        return [
            (key.fd, (READ if ev & selectors.EVENT_READ else 0) | (WRITE if ev & selectors.EVENT_WRITE else 0))
            for key, ev in self._selector.select(max(0.0, timeout_ms) / 1000.0)
        ]

    def close(self) -> None:
        self._selector.close()


def make_poller() -> Poller:
    """The epoll poller where ``kprod._speedups`` has it, else the selectors one."""
    speedups = _native.speedups
    if speedups is not None and hasattr(speedups, "epoll_wait"):
        return EpollPoller()
    return SelectorPoller()
