"""A TCP proxy on loopback between a client and the brokers, that a test can break.

One listener per broker forwards bytes both ways, and on command:

* ``drop_all()`` resets every open connection (both sides);
* ``stall(seconds)`` stops forwarding on every connection (new ones too) for a while,
  as a network partition would: bytes wait in the sockets and flow again afterwards;
* ``cut_requests(n)`` forwards only the first half of each of the next ``n`` Produce
  requests, then closes the connection (the broker never sees a whole request);
* ``lose_responses(n)`` forwards each of the next ``n`` Produce requests whole, then
  throws away its response and resets the connection: the broker wrote the batch,
  the client never heard so, as when a broker dies between writing and answering;
* ``swallow_responses(n)`` is the same without the reset: the responses vanish and the
  connection stays open, so the client gives up at ``request.timeout.ms``.

It follows Kafka's framing (4-byte size prefix; request header api key, version,
correlation id; response header correlation id) only to find those points; bytes
pass through unchanged.

The forwarding loop runs in a child process (``python chaos_proxy.py``), so it does
not share the GIL with the producer under test; the test drives it through
:class:`ChaosProxy`, one JSON line per command on the child's stdin, one JSON line of
reply on its stdout. The child exits when its stdin closes (the test process died).
"""

from __future__ import annotations

import errno
import json
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["ChaosProxy", "ChaosProxyError"]

_HOST = "127.0.0.1"
_PRODUCE = 0
_RECV = 1 << 18
# Stop reading from one side while this much waits to be written to the other.
_BACKLOG = 4 << 20
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class ChaosProxyError(Exception):
    """The proxy process failed or answered a command with an error."""


# ---------------------------------------------------------------------------------------
# The test's handle


class ChaosProxy:
    """Start with ``ChaosProxy({node_id: (host, port)})``; one proxy port per node."""

    def __init__(self, upstreams: Mapping[int, tuple[str, int]]) -> None:
        if not upstreams:
            raise ValueError("ChaosProxy needs at least one upstream broker address")
        self.upstreams = {int(node): (str(host), int(port)) for node, (host, port) in upstreams.items()}
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, __file__, json.dumps({str(k): v for k, v in self.upstreams.items()})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = self._reply()
        self.ports: dict[int, int] = {int(node): int(port) for node, port in hello["ports"].items()}

    @property
    def bootstrap_servers(self) -> str:
        """The proxy's listeners, as a ``bootstrap.servers`` value."""
        return ",".join(f"{_HOST}:{port}" for port in self.ports.values())

    def address_map(self) -> dict[tuple[str, int], tuple[str, int]]:
        """Each broker's real address -> the proxy listener that forwards to it."""
        return {self.upstreams[node]: (_HOST, port) for node, port in self.ports.items()}

    def drop_all(self) -> int:
        """Reset every open connection; how many there were."""
        return int(self._command("drop")["dropped"])

    def stall(self, seconds: float) -> None:
        """Stop forwarding for ``seconds`` (the child's clock ends it, no call needed)."""
        if seconds <= 0:
            raise ValueError(f"stall({seconds}): give a positive number of seconds")
        self._command("stall", seconds=seconds)

    def cut_requests(self, count: int) -> None:
        """Cut each of the next ``count`` Produce requests in half, then close its connection."""
        self._command("cut", count=count)

    def lose_responses(self, count: int) -> None:
        """Forward the next ``count`` Produce requests, lose their responses, reset the connection."""
        self._command("lose", count=count)

    def swallow_responses(self, count: int) -> None:
        """Forward the next ``count`` Produce requests, drop their responses, keep the connection
        (the client waits until request.timeout.ms)."""
        self._command("swallow", count=count)

    def stats(self) -> dict[str, Any]:
        """Counters: connections, bytes each way, faults done and pending, stalled."""
        return self._command("stats")

    def close(self) -> None:
        process = self._process
        if process.poll() is None:
            assert process.stdin is not None
            try:
                process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> ChaosProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _command(self, op: str, **arguments: Any) -> dict[str, Any]:
        with self._lock:
            stdin = self._process.stdin
            assert stdin is not None
            try:
                stdin.write(json.dumps({"op": op, **arguments}) + "\n")
                stdin.flush()
            except OSError as exc:
                raise ChaosProxyError(f"the proxy process is gone ({op}): {exc}") from exc
            return self._reply()

    def _reply(self) -> dict[str, Any]:
        stdout = self._process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise ChaosProxyError(f"the proxy process exited (code {self._process.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise ChaosProxyError(reply["error"])
        return reply


# ---------------------------------------------------------------------------------------
# The child process


class _RequestFrames:
    """Finds where each client->broker frame starts and, if asked, where to cut it."""

    __slots__ = ("remaining", "head", "cut_in")

    def __init__(self) -> None:
        self.remaining = 0  # body bytes of the current frame not yet seen
        self.head = bytearray()  # size + api key + version + correlation id, while incomplete
        self.cut_in = -1  # cut this many bytes further into the current frame

    def feed(self, chunk: bytes, pair: _Pair) -> tuple[bytes, bool]:
        """The bytes to forward, and whether the connection is to be cut after them."""
        pos = 0
        end = len(chunk)
        while pos < end:
            if self.remaining == 0:
                take = min(12 - len(self.head), end - pos)
                self.head += chunk[pos:pos + take]
                pos += take
                if len(self.head) < 12:
                    break
                size, api_key, _, correlation = struct.unpack(">ihhi", self.head)
                self.head.clear()
                self.remaining = size - 8
                if api_key == _PRODUCE:
                    pair.on_produce_request(self, correlation, size)
                continue
            take = min(self.remaining, end - pos)
            if self.cut_in >= 0 and self.cut_in <= take:
                return chunk[:pos + self.cut_in], True
            if self.cut_in >= 0:
                self.cut_in -= take
            self.remaining -= take
            pos += take
        return chunk, False


class _ResponseFrames:
    """Follows broker->client frames; drops swallowed responses, stops before a doomed one."""

    __slots__ = ("remaining", "drop", "head")

    def __init__(self) -> None:
        self.remaining = 0  # bytes of the current frame still to forward
        self.drop = 0  # bytes of a swallowed frame still to drop
        self.head = bytearray()  # size + correlation id, held back until complete

    def feed(self, chunk: bytes, pair: _Pair) -> tuple[bytearray, bool]:
        """The bytes to forward, and whether a doomed response starts right after them."""
        out = bytearray()
        pos = 0
        end = len(chunk)
        while pos < end:
            if self.drop:
                take = min(self.drop, end - pos)
                self.drop -= take
                pos += take
            elif self.remaining:
                take = min(self.remaining, end - pos)
                out += chunk[pos:pos + take]
                self.remaining -= take
                pos += take
            else:
                take = min(8 - len(self.head), end - pos)
                self.head += chunk[pos:pos + take]
                pos += take
                if len(self.head) < 8:
                    break
                size, correlation = struct.unpack(">ii", self.head)
                if correlation in pair.doomed:
                    pair.doomed.discard(correlation)
                    return out, True
                if correlation in pair.swallowed:
                    pair.swallowed.discard(correlation)
                    pair.proxy.swallows_done += 1
                    self.drop = size - 4
                else:
                    out += self.head
                    self.remaining = size - 4
                self.head.clear()
        return out, False


class _Pair:
    """One client connection and its connection to the broker."""

    def __init__(self, proxy: _Proxy, client: socket.socket, upstream: tuple[str, int]) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for sock in (client, self.upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connected = False
        self.to_upstream = bytearray()
        self.to_client = bytearray()
        self.requests = _RequestFrames()
        self.responses = _ResponseFrames()
        self.doomed: set[int] = set()  # correlation ids whose responses are to be lost
        self.swallowed: set[int] = set()  # correlation ids whose responses are to be dropped
        self.cutting = False  # stop reading; flush to_upstream, then close
        self.losing = False  # stop reading; flush to_client, then reset both
        self.eof = False  # one side closed: flush what is left, then close
        self.closed = False
        if self.upstream.connect_ex(upstream) not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self.close(reset=True)

    def on_produce_request(self, frames: _RequestFrames, correlation: int, size: int) -> None:
        proxy = self.proxy
        if proxy.cut_pending > 0 and frames.cut_in < 0:
            proxy.cut_pending -= 1
            frames.cut_in = max(1, (size - 8) // 2)
        elif proxy.lose_pending > 0:
            proxy.lose_pending -= 1
            self.doomed.add(correlation)
        elif proxy.swallow_pending > 0:
            proxy.swallow_pending -= 1
            self.swallowed.add(correlation)

    def events(self, sock: socket.socket) -> int:
        if self.closed or self.proxy.stalled:
            return 0
        events = 0
        if sock is self.upstream:
            if not self.connected:
                return selectors.EVENT_WRITE
            if self.to_upstream:
                events |= selectors.EVENT_WRITE
            if not (self.cutting or self.losing or self.eof) and len(self.to_client) < _BACKLOG:
                events |= selectors.EVENT_READ
        else:
            if self.to_client:
                events |= selectors.EVENT_WRITE
            if not (self.cutting or self.losing or self.eof) and len(self.to_upstream) < _BACKLOG:
                events |= selectors.EVENT_READ
        return events

    def on_event(self, sock: socket.socket, mask: int) -> None:
        if sock is self.upstream and not self.connected:
            if self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                self.close(reset=True)  # the broker is down: the client sees a reset
                return
            self.connected = True
            return
        if mask & selectors.EVENT_WRITE:
            self._write(sock)
        if not self.closed and mask & selectors.EVENT_READ:
            self._read(sock)
        if not self.closed:
            self._maybe_finish()

    def _read(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError:
            self.close(reset=True)
            return
        if not data:
            self.eof = True
            return
        proxy = self.proxy
        if sock is self.client:
            forward, cut = self.requests.feed(data, self)
            self.to_upstream += forward
            proxy.bytes_up += len(forward)
            if cut:
                self.cutting = True
                proxy.cuts_done += 1
        else:
            forward, lose = self.responses.feed(data, self)
            self.to_client += forward
            proxy.bytes_down += len(forward)
            if lose:
                self.losing = True
                proxy.losses_done += 1

    def _write(self, sock: socket.socket) -> None:
        buffer = self.to_upstream if sock is self.upstream else self.to_client
        if not buffer:
            return
        try:
            sent = sock.send(buffer)
        except BlockingIOError:
            return
        except OSError:
            self.close(reset=True)
            return
        del buffer[:sent]

    def _maybe_finish(self) -> None:
        if self.cutting and not self.to_upstream:
            # The broker gets the half request and then an orderly close; the client a reset.
            self.close(reset=True, reset_upstream=False)
        elif self.losing and not self.to_client:
            self.close(reset=True)
        elif self.eof and not self.to_upstream and not self.to_client:
            self.close(reset=False)

    def close(self, *, reset: bool, reset_upstream: bool | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        proxy = self.proxy
        # Armed faults this connection did not live to carry out go back to the pool.
        proxy.lose_pending += len(self.doomed)
        proxy.swallow_pending += len(self.swallowed)
        self.doomed.clear()
        self.swallowed.clear()
        if self.requests.cut_in >= 0 and not self.cutting:
            proxy.cut_pending += 1
        for sock, hard in ((self.client, reset), (self.upstream, reset if reset_upstream is None else reset_upstream)):
            proxy.forget(sock)
            try:
                if hard:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.close()
            except OSError:
                pass
        proxy.pairs.discard(self)


class _Proxy:
    """The child's single-threaded forwarding loop."""

    def __init__(self, upstreams: dict[int, tuple[str, int]]) -> None:
        self.selector = selectors.DefaultSelector()
        self.registered: dict[socket.socket, int] = {}
        self.listeners: dict[socket.socket, tuple[str, int]] = {}
        self.ports: dict[int, int] = {}
        for node, address in upstreams.items():
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((_HOST, 0))
            listener.listen(128)
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, None)
            self.listeners[listener] = address
            self.ports[node] = listener.getsockname()[1]
        self.pairs: set[_Pair] = set()
        self.stalled = False
        self.stall_until = 0.0
        self.cut_pending = 0
        self.lose_pending = 0
        self.swallow_pending = 0
        self.swallows_done = 0
        self.cuts_done = 0
        self.losses_done = 0
        self.drops_done = 0
        self.stalls_done = 0
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.control = bytearray()
        self.stdin = sys.stdin.buffer.raw  # type: ignore[attr-defined]
        self.selector.register(self.stdin, selectors.EVENT_READ, "control")

    def forget(self, sock: socket.socket) -> None:
        if self.registered.pop(sock, 0):
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass

    def sync(self, pair: _Pair) -> None:
        """Register each socket of ``pair`` for what it should wait for now."""
        for sock in (pair.client, pair.upstream):
            if pair.closed:
                return
            wanted = pair.events(sock)
            current = self.registered.get(sock, 0)
            if wanted == current:
                continue
            if not wanted:
                self.forget(sock)
            elif not current:
                self.selector.register(sock, wanted, pair)
                self.registered[sock] = wanted
            else:
                self.selector.modify(sock, wanted, pair)
                self.registered[sock] = wanted

    def run(self) -> None:
        print(json.dumps({"ports": self.ports}), flush=True)
        while True:
            timeout = None
            if self.stalled:
                timeout = max(0.0, self.stall_until - time.monotonic())
            for key, mask in self.selector.select(timeout):
                if key.data == "control":
                    if not self._control():
                        return
                elif key.data is None:
                    self._accept(key.fileobj)  # type: ignore[arg-type]
                else:
                    pair: _Pair = key.data
                    if not pair.closed:
                        pair.on_event(key.fileobj, mask)  # type: ignore[arg-type]
                        self.sync(pair)
            if self.stalled and time.monotonic() >= self.stall_until:
                self.stalled = False
                for pair in list(self.pairs):
                    self.sync(pair)

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        self.connections += 1
        pair = _Pair(self, client, self.listeners[listener])
        if not pair.closed:
            self.pairs.add(pair)
            self.sync(pair)

    def _control(self) -> bool:
        data = self.stdin.read(65536)
        if not data:
            return False
        self.control += data
        while b"\n" in self.control:
            line, _, rest = bytes(self.control).partition(b"\n")
            self.control = bytearray(rest)
            try:
                reply = self._apply(json.loads(line))
            except Exception as exc:  # a bad command must not kill the proxy
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
        return True

    def _apply(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        if op == "drop":
            pairs = list(self.pairs)
            for pair in pairs:
                pair.close(reset=True)
            self.drops_done += 1
            return {"dropped": len(pairs)}
        if op == "stall":
            self.stalled = True
            self.stall_until = time.monotonic() + float(command["seconds"])
            self.stalls_done += 1
            for pair in list(self.pairs):
                self.sync(pair)
            return {}
        if op == "cut":
            self.cut_pending += int(command["count"])
            return {}
        if op == "lose":
            self.lose_pending += int(command["count"])
            return {}
        if op == "swallow":
            self.swallow_pending += int(command["count"])
            return {}
        if op == "stats":
            return {
                "connections": self.connections,
                "open": len(self.pairs),
                "bytes_up": self.bytes_up,
                "bytes_down": self.bytes_down,
                "drops_done": self.drops_done,
                "stalls_done": self.stalls_done,
                "cuts_done": self.cuts_done,
                "losses_done": self.losses_done,
                "swallows_done": self.swallows_done,
                "cut_pending": self.cut_pending,
                "lose_pending": self.lose_pending,
                "swallow_pending": self.swallow_pending,
                "stalled": self.stalled,
            }
        raise ValueError(f"unknown proxy command {op!r}")


def _main() -> None:
    upstreams = {int(node): (host, int(port)) for node, (host, port) in json.loads(sys.argv[1]).items()}
    _Proxy(upstreams).run()


if __name__ == "__main__":
    _main()
