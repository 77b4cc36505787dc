"""One selector event loop serving every broker of the cluster.

All brokers share a single thread: non-blocking sockets, one ``select`` over
every listener and connection, no thread per connection. A connection's
requests are handled in arrival order and answered in the same order; a
long-polling Fetch parks its connection (later requests wait, as Kafka mutes
the channel) until an append, a leadership change or its deadline wakes it.
Replies leave through ``sendmsg`` with the stored record batches as separate
buffers, so fetched data is never copied into a response buffer.

Other threads never touch sockets or cluster state: ``call`` queues a
function for the loop thread and waits for its result. That is how the
Python API (stop a broker, read a log, ...) stays consistent with the traffic.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kprod.cluster.api_fetch import ParkedFetch, complete_fetch
from kprod.cluster.engine import CLOSE, Engine, Reply
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.splice import encode_spliced
from kprod.cluster.state import Partition
from kprod.errors import ProtocolError
from kprod.protocol.framing import FrameReader, decode_request, encode_response

__all__ = ["EventLoop"]

log = logging.getLogger("kprod.cluster")

_RECV_SIZE = 1 << 20
# A frame still missing more than this is read straight into its own buffer.
_DIRECT_READ = 64 * 1024
_SIZE = struct.Struct(">i")
_MAX_IOV = 512  # buffers per sendmsg call (IOV_MAX is 1024 on Linux)
_SELECT_MAX = 3600.0


class _Timer:
    __slots__ = ("deadline", "callback")

    def __init__(self, deadline: float, callback: Callable[[], None] | None) -> None:
        self.deadline = deadline
        self.callback = callback

    def cancel(self) -> None:
        self.callback = None


class _Call:
    __slots__ = ("fn", "args", "done", "result", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Connection:
    """One client connection to one broker."""

    __slots__ = (
        "sock",
        "node_id",
        "peer",
        "reader",
        "inbox",
        "parked",
        "muted_until",
        "mute_timer",
        "delayed",
        "delay_timer",
        "outbox",
        "events",
        "closed",
    )

    def __init__(self, sock: socket.socket, node_id: int, peer: str) -> None:
        self.sock = sock
        self.node_id = node_id
        self.peer = peer
        self.reader = FrameReader()  # cuts the byte stream into request frames
        self.inbox: deque[memoryview] = deque()  # request frames not handled yet (read-only views)
        self.parked: ParkedFetch | None = None
        self.muted_until = 0.0  # throttling: no request is handled before this time
        self.mute_timer: _Timer | None = None
        self.delayed: deque[tuple[float, list[bytes | memoryview]]] = deque()  # latency injection
        self.delay_timer: _Timer | None = None
        self.outbox: deque[bytes | memoryview] = deque()  # bytes to write, in order
        self.events = selectors.EVENT_READ
        self.closed = False


class EventLoop:
    """Listeners, connections and timers of all brokers, driven by one thread."""

    def __init__(self, engine: Engine, host: str) -> None:
        self.engine = engine
        self.state = engine.state
        self.faults = engine.faults
        self.host = host
        self.internal_errors: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._listeners: dict[int, socket.socket] = {}
        self._connections: dict[int, set[Connection]] = {}
        self._timers: list[tuple[float, int, _Timer]] = []
        self._timer_seq = itertools.count()
        self._ready: list[ParkedFetch] = []
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._recv_buffer = bytearray(_RECV_SIZE)
        self._recv_view = memoryview(self._recv_buffer)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._thread_ident: int | None = None
        self._failure: BaseException | None = None
        engine.on_append = self._on_append
        self.state.on_change = self._on_change

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, name: str = "kprod-cluster") -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and close every socket (idempotent; safe from any thread)."""
        if self._thread is None:
            self._close_all()
            return
        if self._thread.is_alive():
            self._stopping = True
            self._wake()
            self._thread.join()
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the loop thread and return its result (or raise its exception)."""
        if self._thread is None or threading.get_ident() == self._thread_ident:
            return fn(*args)
        item = _Call(fn, args)
        self._calls.put(item)
        self._wake()
        while not item.done.wait(0.5):
            if not self.alive:
                raise ClusterError(f"The embedded cluster's event loop is not running ({self._failure!r}).")
        if item.error is not None:
            raise item.error
        return item.result

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed

    # -- listeners -----------------------------------------------------------------------

    def listen(self, node_id: int, port: int) -> int:
        """Open broker ``node_id``'s listening socket on ``port`` (0 = any free port)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            raise ClusterError(
                f"Broker {node_id} cannot listen on {self.host}:{port}: {exc.strerror or exc}."
                " Choose another port, or pass port=0 for a free one."
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        self._listeners[node_id] = sock
        self._connections.setdefault(node_id, set())
        self._selector.register(sock, selectors.EVENT_READ, node_id)
        return int(sock.getsockname()[1])

    def close_listener(self, node_id: int) -> None:
        """Close broker ``node_id``'s listening socket and every connection to it."""
        sock = self._listeners.pop(node_id, None)
        if sock is not None:
            self._selector.unregister(sock)
            sock.close()
        self.drop_connections(node_id)

    def drop_connections(self, node_id: int | None = None) -> int:
        """Close the client connections of one broker (or all): returns how many."""
        nodes = list(self._connections) if node_id is None else [node_id]
        count = 0
        for node in nodes:
            for conn in list(self._connections.get(node, ())):
                self._close(conn)
                count += 1
        return count

    def parked_count(self, node_id: int | None = None) -> int:
        """Connections whose Fetch is waiting for data (of one broker, or all)."""
        nodes = list(self._connections) if node_id is None else [node_id]
        return sum(1 for n in nodes for c in self._connections.get(n, ()) if c.parked is not None)

    def connection_count(self, node_id: int | None = None) -> int:
        if node_id is None:
            return sum(len(c) for c in self._connections.values())
        return len(self._connections.get(node_id, ()))

    def _accept(self, listener: socket.socket, node_id: int) -> None:
        while True:
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("broker %d: accept failed: %s", node_id, exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, node_id, f"{peer[0]}:{peer[1]}")
            self._connections[node_id].add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        self._thread_ident = threading.get_ident()
        try:
            while not self._stopping:
                self._run_once()
        except BaseException as exc:  # keep callers from hanging, and say why
            self._failure = exc
            log.exception("the embedded cluster's event loop failed")
            raise
        finally:
            self._close_all()
            self._fail_pending_calls()

    def _run_once(self) -> None:
        timeout = _SELECT_MAX
        if self._timers:
            timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
        for key, mask in self._selector.select(timeout):
            data = key.data
            if isinstance(data, Connection):
                if mask & selectors.EVENT_READ and not data.closed:
                    self._on_readable(data)
                if mask & selectors.EVENT_WRITE and not data.closed:
                    self._flush(data)
            elif data is None:
                self._drain_wakeups()
            else:
                listener = self._listeners.get(data)
                if listener is key.fileobj:
                    self._accept(listener, data)
            self._finish_ready()
        self._run_timers()
        self._run_calls()
        self._finish_ready()

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _run_calls(self) -> None:
        while True:
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                item.result = item.fn(*item.args)
            except BaseException as exc:
                item.error = exc
            item.done.set()

    def _fail_pending_calls(self) -> None:
        while True:
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return
            item.error = ClusterError("The embedded cluster stopped before running this call.")
            item.done.set()

    # -- timers ----------------------------------------------------------------------------

    def add_timer(self, deadline: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(deadline, callback)
        heapq.heappush(self._timers, (deadline, next(self._timer_seq), timer))
        return timer

    def _run_timers(self) -> None:
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            callback = timer.callback
            if callback is not None:
                timer.callback = None
                callback()

    # -- requests --------------------------------------------------------------------------

    def _on_readable(self, conn: Connection) -> None:
        """Read what the socket has and handle every request it completes.

        Frames that arrive whole in one read are decoded straight from the
        shared receive buffer (kio copies out what it keeps); a frame cut by
        reads gets its own buffer, and a large remainder is received directly
        into it. No frame is copied just to be cut out of the stream.
        """
        direct = conn.reader.direct_buffer(_DIRECT_READ)
        try:
            if direct is not None:
                size = conn.sock.recv_into(direct)
                if size:
                    frame = conn.reader.direct_filled(size)
                    if frame is not None:
                        conn.inbox.append(frame)
                        self._process(conn)
                    return
            else:
                size = conn.sock.recv_into(self._recv_buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not size:
            self._close(conn)
            return
        try:
            self._cut_frames(conn, self._recv_view[:size].toreadonly())
        except ProtocolError as exc:
            log.warning("broker %d: closing connection from %s: %s", conn.node_id, conn.peer, exc)
            self._close(conn)
            return
        if conn.inbox:
            self._process(conn)
            inbox = conn.inbox
            shared = self._recv_buffer
            for i, frame in enumerate(inbox):  # frames left waiting must not alias the receive buffer
                if frame.obj is shared:
                    inbox[i] = memoryview(bytes(frame))

    def _cut_frames(self, conn: Connection, data: memoryview) -> None:
        """Split received bytes into request frames (without their size prefix) on ``conn.inbox``.

        The protocol layer's ``FrameReader`` (the client's too) does the cutting.
        """
        conn.inbox.extend(conn.reader.feed(data))

    def _process(self, conn: Connection) -> None:
        """Handle queued requests in order until one parks the connection."""
        engine = self.engine
        inbox = conn.inbox
        while inbox and conn.parked is None and not conn.closed:
            if conn.muted_until:
                now = time.monotonic()
                if now < conn.muted_until:
                    if conn.mute_timer is None:
                        conn.mute_timer = self.add_timer(conn.muted_until, lambda: self._unmute(conn))
                    return
                conn.muted_until = 0.0
            frame = inbox.popleft()
            try:
                request = decode_request(frame)
            except ProtocolError as exc:
                log.warning("broker %d: closing connection from %s: %s", conn.node_id, conn.peer, exc)
                self._close(conn)
                return
            try:
                outcome = engine.handle(conn.node_id, request)
            except Exception as exc:
                self.internal_errors.append(f"{type(exc).__name__}: {exc}")
                log.exception(
                    "broker %d: internal error handling api %d v%d; closing the connection",
                    conn.node_id,
                    request.api_key,
                    request.api_version,
                )
                self._close(conn)
                return
            if outcome is None:
                continue
            if outcome is CLOSE:
                log.debug(
                    "broker %d: closing connection from %s after api %d v%d",
                    conn.node_id,
                    conn.peer,
                    request.api_key,
                    request.api_version,
                )
                self._close(conn)
                return
            if isinstance(outcome, ParkedFetch):
                self._park(conn, outcome)
                return
            self._reply(conn, outcome)

    def _unmute(self, conn: Connection) -> None:
        conn.mute_timer = None
        if not conn.closed:
            self._process(conn)

    def _reply(self, conn: Connection, reply: Reply) -> None:
        if reply.payloads:
            buffers = encode_spliced(reply.entity, reply.correlation_id, reply.payloads)
        else:
            buffers = [encode_response(reply.entity, reply.correlation_id)]
        throttle = self.faults.throttle_ms.get(conn.node_id, 0)
        if throttle:
            # KIP-219: the broker answers at once, then mutes the channel for the throttle time.
            conn.muted_until = time.monotonic() + throttle / 1000
        latency = self.faults.latency_ms.get(conn.node_id, 0)
        if latency or conn.delayed:
            conn.delayed.append((time.monotonic() + latency / 1000, buffers))
            self._release_delayed(conn)
            return
        conn.outbox.extend(buffers)
        self._flush(conn)

    def _release_delayed(self, conn: Connection) -> None:
        conn.delay_timer = None
        if conn.closed:
            return
        now = time.monotonic()
        delayed = conn.delayed
        released = False
        while delayed and delayed[0][0] <= now:
            conn.outbox.extend(delayed.popleft()[1])
            released = True
        if delayed:
            conn.delay_timer = self.add_timer(delayed[0][0], lambda: self._release_delayed(conn))
        if released:
            self._flush(conn)

    # -- long polls --------------------------------------------------------------------------

    def _park(self, conn: Connection, parked: ParkedFetch) -> None:
        conn.parked = parked
        parked.connection = conn
        for partition in parked.partitions:
            partition.waiters.add(parked)
        parked.timer = self.add_timer(parked.deadline, lambda: self._finish(parked))

    def _on_append(self, partition: Partition, size: int) -> None:
        for parked in list(partition.waiters):
            if parked.note_append(size):
                self._ready.append(parked)

    def _on_change(self, partitions: Any) -> None:
        for partition in partitions:
            self._ready.extend(partition.waiters)

    def _finish_ready(self) -> None:
        while self._ready:
            ready, self._ready = self._ready, []
            for parked in ready:
                self._finish(parked)

    def _unpark(self, parked: ParkedFetch) -> Connection | None:
        conn = parked.connection
        parked.connection = None
        for partition in parked.partitions:
            partition.waiters.discard(parked)
        if parked.timer is not None:
            parked.timer.cancel()
            parked.timer = None
        if conn is not None:
            conn.parked = None
        return conn

    def _finish(self, parked: ParkedFetch) -> None:
        conn = self._unpark(parked)
        if conn is None or conn.closed:
            return
        try:
            reply = complete_fetch(self.engine, parked)
        except Exception as exc:
            self.internal_errors.append(f"{type(exc).__name__}: {exc}")
            log.exception("broker %d: internal error completing a fetch; closing the connection", conn.node_id)
            self._close(conn)
            return
        self._reply(conn, reply)
        self._process(conn)

    # -- writing ---------------------------------------------------------------------------

    def _flush(self, conn: Connection) -> None:
        outbox = conn.outbox
        sock = conn.sock
        while outbox:
            buffers = list(itertools.islice(outbox, _MAX_IOV))
            try:
                sent = sock.sendmsg(buffers)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(conn)
                return
            for buffer in buffers:
                size = len(buffer)
                if sent >= size:
                    outbox.popleft()
                    sent -= size
                    continue
                if sent:
                    outbox[0] = memoryview(buffer)[sent:]
                break
            else:
                continue
            break
        wanted = selectors.EVENT_READ | selectors.EVENT_WRITE if outbox else selectors.EVENT_READ
        if wanted != conn.events:
            conn.events = wanted
            self._selector.modify(sock, wanted, conn)

    def _close(self, conn: Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.parked is not None:
            self._unpark(conn.parked)
        for timer in (conn.mute_timer, conn.delay_timer):
            if timer is not None:
                timer.cancel()
        self._connections.get(conn.node_id, set()).discard(conn)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        conn.inbox.clear()
        conn.outbox.clear()
        conn.delayed.clear()

    def _close_all(self) -> None:
        if self._selector.get_map() is None:
            return  # already closed
        for node_id in list(self._listeners):
            self.close_listener(node_id)
        self.drop_connections()
        try:
            self._selector.unregister(self._wake_r)
        except (KeyError, ValueError):
            pass
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
