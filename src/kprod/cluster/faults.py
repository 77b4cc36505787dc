"""Faults a test asked for: injected error codes, latency and throttling per broker.

The event loop consults this on every request; it holds no sockets itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Faults", "Injection"]


@dataclass(slots=True)
class Injection:
    """Answer the next ``remaining`` requests of ``api_key`` with ``error_code``.

    With ``after_append`` (Produce only) the records are appended first and
    the error reported anyway, like a response lost after a successful write:
    the case the idempotent producer exists for.
    """

    api_key: int
    error_code: int
    remaining: int
    broker: int | None
    after_append: bool = False


class Faults:
    """Pending fault injections and per-broker latency / throttle settings."""

    __slots__ = ("_injections", "latency_ms", "throttle_ms")

    def __init__(self) -> None:
        # (api key, broker or None for any broker) -> injections in the order given
        self._injections: dict[tuple[int, int | None], deque[Injection]] = {}
        self.latency_ms: dict[int, int] = {}
        self.throttle_ms: dict[int, int] = {}

    def inject(self, injection: Injection) -> None:
        self._injections.setdefault((injection.api_key, injection.broker), deque()).append(injection)

    def take(self, api_key: int, node_id: int) -> Injection | None:
        """The injection that applies to this request (and count it), or None.

        A broker-specific injection goes before a cluster-wide one.
        """
        if not self._injections:
            return None
        for key in ((api_key, node_id), (api_key, None)):
            queue = self._injections.get(key)
            if queue:
                injection = queue[0]
                injection.remaining -= 1
                if injection.remaining <= 0:
                    queue.popleft()
                    if not queue:
                        del self._injections[key]
                return injection
        return None

    def pending(self) -> int:
        """Requests still to be answered with an injected error."""
        return sum(i.remaining for queue in self._injections.values() for i in queue)

    def clear(self) -> None:
        self._injections.clear()
        self.latency_ms.clear()
        self.throttle_ms.clear()
