"""A reply that is not ready when its request is handled.

A JoinGroup waits for the rebalance, a follower's SyncGroup for the leader's
assignments. The handler returns a ``DeferredReply``; the event loop holds
the connection (later requests on it wait, as Kafka mutes a channel with a
request in progress) until the coordinator calls ``resolve``. Resolution only
queues the reply: the loop writes it after the request it is serving, so
group state never changes under a handler's feet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DeferredReply"]


class DeferredReply:
    """A reply given later: ``resolve(reply)`` once; the event loop ``attach``es a waker."""

    __slots__ = ("reply", "done", "connection", "_wake")

    def __init__(self) -> None:
        self.reply: Any = None
        self.done = False
        self.connection: Any = None  # set by the event loop while the connection waits
        self._wake: Callable[[DeferredReply], None] | None = None

    def resolve(self, reply: Any) -> None:
        """Give the reply (later calls are ignored)."""
        if self.done:
            return
        self.reply = reply
        self.done = True
        if self._wake is not None:
            self._wake(self)

    def attach(self, wake: Callable[[DeferredReply], None]) -> None:
        """Called by the event loop: ``wake(self)`` once resolved (at once if already)."""
        self._wake = wake
        if self.done:
            wake(self)
