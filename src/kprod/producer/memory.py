"""``buffer.memory``: a byte budget shared by all queued batches.

Java pools real buffers; here Python owns the bytes, so the pool only counts
them. A send that needs a new batch reserves ``max(batch.size, record size)``
and blocks up to ``max.block.ms`` when the budget is spent; the I/O thread
returns the reservation when the batch completes.

The asyncio producer must not block its event loop, so it waits differently:
``append(..., max_block_ms=None)`` raises :class:`MemoryNeeded` where a thread
would block, and the loop registers as a waiter (:meth:`MemoryPool.add_waiter`)
and asks again each time :meth:`MemoryPool.reserve_or_wake`'s wake-up says
memory came back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["MemoryNeeded", "MemoryPool"]


class MemoryNeeded(Exception):
    """Raised instead of blocking when a caller that must not block finds ``buffer.memory`` full.

    Not an error users see: the asyncio producer catches it, waits on its event loop
    until ``size`` bytes are reserved, then calls ``resume()`` (which appends the
    record with that reservation and returns its future), or calls ``timeout_error()``
    for the error to raise once ``max.block.ms`` has passed. ``queued`` holds the
    futures of the records a ``send_many()`` call queued before this one.
    """

    def __init__(self, size: int, resume: Callable[[], Any], timeout_error: Callable[[int], BaseException]) -> None:
        super().__init__(size)
        self.size = size
        self.resume = resume
        self.timeout_error = timeout_error
        self.queued: list[Any] = []


class MemoryPool:
    """Counts reserved bytes against ``buffer.memory``; waiting senders queue fairly."""

    __slots__ = ("total", "available", "_cond", "_waiters", "_closed", "on_wait", "_wakers")

    def __init__(self, total: int, on_wait: Callable[[int, bool], None] | None = None) -> None:
        self.total = total
        self.available = total
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0
        self._closed = False
        #: Told (ns waited, whether the bytes were had) after every reservation that waited.
        self.on_wait = on_wait
        # One-shot wake-ups of waiters that do not block a thread (the asyncio producer).
        self._wakers: list[Callable[[], Any]] = []

    def try_reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes if they are free now and nobody waits ahead."""
        with self._cond:
            if self._waiters == 0 and self.available >= size:
                self.available -= size
                return True
            return False

    def reserve(self, size: int, max_block_s: float) -> bool:
        """Reserve ``size`` bytes, waiting at most ``max_block_s``; False on timeout."""
        deadline = time.monotonic() + max_block_s
        with self._cond:
            if self._waiters == 0 and self.available >= size:
                self.available -= size
                return True
            self._waiters += 1
            started = time.perf_counter_ns()
            had = False
            try:
                while self.available < size and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                if self._closed:
                    return False
                self.available -= size
                had = True
                return True
            finally:
                self._waiters -= 1
                self._cond.notify_all()
                if self.on_wait is not None:
                    self.on_wait(time.perf_counter_ns() - started, had)

    def add_waiter(self) -> None:
        """Count a caller that waits without blocking (see :meth:`reserve_or_wake`) as a waiter:
        others queue behind it and queued batches go out now, as for a blocked thread."""
        with self._cond:
            self._waiters += 1

    def remove_waiter(self) -> None:
        """The non-blocking waiter got its memory or gave up."""
        with self._cond:
            self._waiters -= 1
            self._cond.notify_all()

    def reserve_or_wake(self, size: int, wake: Callable[[], Any]) -> bool:
        """For a waiter added with :meth:`add_waiter`: reserve ``size`` bytes if free now
        (True); else call ``wake()`` once, from the thread that next frees memory or
        closes the pool, and return False. False at once if the pool is closed."""
        with self._cond:
            if self._closed:
                return False
            if self.available >= size:
                self.available -= size
                return True
            self._wakers.append(wake)
            return False

    @property
    def closed(self) -> bool:
        return self._closed

    def release(self, size: int) -> None:
        """Give back a reservation (I/O thread, when a batch completes)."""
        with self._cond:
            self.available += size
            if self._waiters:
                self._cond.notify_all()
            wakers = self._wakers
            if wakers:
                self._wakers = []
        if wakers:
            _wake_all(wakers)

    @property
    def waiters(self) -> int:
        """Threads blocked now waiting for memory (Java's ``waiting-threads``)."""
        return self._waiters

    @property
    def has_waiters(self) -> bool:
        """Someone is blocked for memory: queued batches should go out now."""
        return self._waiters > 0

    def close(self) -> None:
        """Wake every waiter; later reservations fail."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            wakers, self._wakers = self._wakers, []
        _wake_all(wakers)


def _wake_all(wakers: list[Callable[[], Any]]) -> None:
    for wake in wakers:
        wake()
