"""Run the cluster in a child Python process, driven over a socket pair.

A pure-Python broker in the producer's own process competes with it for the
GIL; in a child process it has an interpreter to itself. The child is started
as ``python -m kprod.cluster.child --fd N`` rather than through
``multiprocessing``'s spawn, which would re-import the parent's ``__main__``
(a script without an ``if __name__ == "__main__"`` guard would start clusters
recursively). Messages are pickled ``(operation, args)`` requests and
``("ok", result)`` / ``("error", exception)`` answers over a
``multiprocessing.connection.Connection``.

The child exits when the parent closes the pipe, including when the parent
dies, so no broker outlives its test run. POSIX only (it passes a file
descriptor to the child).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from kprod.cluster.exceptions import ClusterError

__all__ = ["ProcessBackend"]

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0


class ProcessBackend:
    """The parent's side: same ``invoke`` as ``ClusterCore``, answered by the child."""

    def __init__(self, options: dict[str, Any]) -> None:
        parent_sock, child_sock = socket.socketpair()
        self._lock = threading.Lock()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "kprod.cluster.child", "--fd", str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child_sock.close()
        self._conn = Connection(parent_sock.detach())
        self._closed = False
        try:
            self._send(("start", (options,)))
            if not self._conn.poll(_START_TIMEOUT):
                raise ClusterError(f"The cluster's child process did not start within {_START_TIMEOUT:.0f}s.")
            self.brokers = self._receive()
        except BaseException:
            self.close()
            raise

    def _send(self, message: tuple[str, tuple[Any, ...]]) -> None:
        try:
            self._conn.send(message)
        except (OSError, EOFError) as exc:
            raise ClusterError(f"The cluster's child process is gone ({self._exit_status()}).") from exc

    def _receive(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (OSError, EOFError) as exc:
            raise ClusterError(f"The cluster's child process is gone ({self._exit_status()}).") from exc
        if status == "error":
            raise value
        return value

    def _exit_status(self) -> str:
        code = self._process.poll()
        return "still running" if code is None else f"exit code {code}"

    def invoke(self, name: str, *args: Any) -> Any:
        with self._lock:
            if self._closed:
                raise ClusterError("The embedded cluster is stopped.")
            self._send((name, args))
            return self._receive()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.send(("stop", ()))
                if self._conn.poll(_STOP_TIMEOUT):
                    self._conn.recv()
            except (OSError, EOFError):
                pass
            self._conn.close()
        try:
            self._process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
