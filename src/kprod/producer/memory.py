"""``buffer.memory``: a byte budget shared by all queued batches.

Java pools real buffers; here Python owns the bytes, so the pool only counts
them. A send that needs a new batch reserves ``max(batch.size, record size)``
and blocks up to ``max.block.ms`` when the budget is spent; the I/O thread
returns the reservation when the batch completes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["MemoryPool"]


class MemoryPool:
    """Counts reserved bytes against ``buffer.memory``; waiting senders queue fairly."""

    __slots__ = ("total", "available", "_cond", "_waiters", "_closed", "on_wait")

    def __init__(self, total: int, on_wait: Callable[[int, bool], None] | None = None) -> None:
        self.total = total
        self.available = total
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0
        self._closed = False
        #: Told (ns waited, whether the bytes were had) after every reservation that waited.
        self.on_wait = on_wait

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

    def release(self, size: int) -> None:
        """Give back a reservation (I/O thread, when a batch completes)."""
        with self._cond:
            self.available += size
            if self._waiters:
                self._cond.notify_all()

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
