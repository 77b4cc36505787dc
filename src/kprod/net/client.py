"""Non-blocking connections to many brokers, driven by one I/O thread.

Like the Java client's NetworkClient: the producer's sender asks whether a
node is ready, sends requests to it with a handler, and calls :meth:`poll`,
which does all socket I/O (connect, writes, reads), expires requests past
``request.timeout.ms`` and runs the handlers. Nothing here blocks but
``poll``'s select, and nothing here is thread-safe except :meth:`wakeup`.

This module owns sockets only. Each connection's protocol life (ApiVersions
negotiation with its fallbacks, authentication, request numbering, response
matching, poisoning) is :class:`kprod.protocol.connection.ClientConnection`,
the same state machine :mod:`kprod.net.blocking` uses. Bytes leave through
:meth:`NetworkClient._send_bytes` and arrive through
:meth:`NetworkClient._read`, one place per direction, so a transport (TLS)
can sit below the framing.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import time
from collections import deque
from typing import Any, Callable

from kprod._version import __version__
from kprod.errors import AuthenticationError, KafkaConnectionError, KafkaError, KafkaTimeoutError
from kprod.protocol.connection import (
    Authenticator,
    ClientConnection,
    ConnectionState,
    Outgoing,
    Ready,
    Response,
)
from kprod.net import syscalls
from kprod.net.poller import READ, WRITE, make_poller
from kprod.net.security import Security
from kprod.net.tls import TlsSession

__all__ = ["NetworkClient", "Handler"]

log = logging.getLogger("kprod.net")

#: Called once per request with (response, None) or (None, error).
Handler = Callable[[Any, BaseException | None], None]

#: Transport states; once _CONNECTED, the protocol state machine says whether the node is ready.
_DISCONNECTED, _CONNECTING, _CONNECTED, _TLS_HANDSHAKE = range(4)
# Re-authenticate between 85% and 95% of the broker's session lifetime (KIP-368; Java does the same).
_REAUTH_FRACTION = (0.85, 0.95)
_READY = ConnectionState.READY
_RECV_SIZE = 1 << 18


class _Node:
    """One broker's connection state."""

    __slots__ = (
        "node_id", "host", "port", "sock", "state", "protocol", "out", "awaiting",
        "flushed_handlers", "connect_deadline", "reconnect_at", "failures", "registered_events",
        "tls", "reauth_at", "reauthenticating",
    )

    def __init__(self, node_id: int, host: str, port: int) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.sock: socket.socket | None = None
        self.state = _DISCONNECTED
        self.protocol: ClientConnection | None = None
        self.out = bytearray()
        # (deadline ms, handler) per request awaiting a response, oldest first.
        self.awaiting: deque[tuple[float, Handler]] = deque()
        # Handlers of requests without a response (acks=0): run once written out.
        self.flushed_handlers: list[Handler] = []
        self.connect_deadline = 0.0
        self.reconnect_at = 0.0
        self.failures = 0
        self.registered_events = 0
        self.tls: TlsSession | None = None
        self.reauthenticating = False
        #: Clock time (ms) at which to re-authenticate (0: never).
        self.reauth_at = 0.0

    @property
    def ready(self) -> bool:
        """Connected and through the protocol handshake (not re-authenticating either)."""
        protocol = self.protocol
        return protocol is not None and protocol.state is _READY

    def __repr__(self) -> str:
        return f"node {self.node_id} ({self.host}:{self.port})"


class NetworkClient:
    """Connections to the cluster's nodes for one producer's I/O thread."""

    def __init__(
        self,
        *,
        client_id: str,
        clock: Callable[[], float],
        request_timeout_ms: int = 30000,
        reconnect_backoff_ms: int = 50,
        reconnect_backoff_max_ms: int = 1000,
        connection_setup_timeout_ms: int = 10000,
        send_buffer_bytes: int = 131072,
        receive_buffer_bytes: int = 32768,
        on_disconnect: Callable[[int], None] | None = None,
        authenticator_factory: Callable[[], Authenticator] | None = None,
        security: Security | None = None,
    ) -> None:
        self.client_id = client_id
        self.clock = clock
        self.request_timeout_ms = request_timeout_ms
        self.reconnect_backoff_ms = reconnect_backoff_ms
        self.reconnect_backoff_max_ms = reconnect_backoff_max_ms
        self.connection_setup_timeout_ms = connection_setup_timeout_ms
        self.send_buffer_bytes = send_buffer_bytes
        self.receive_buffer_bytes = receive_buffer_bytes
        self.nodes: dict[int, _Node] = {}
        # Told when a connection drops or cannot be made: a leader may have
        # moved, so the producer refreshes its metadata (Java does the same).
        self.on_disconnect = on_disconnect
        # Extension point for SASL: a fresh sans-IO authenticator per connection,
        # run by the protocol state machine between negotiation and READY.
        self.security = security if security is not None else Security.plaintext()
        if authenticator_factory is None and self.security.sasl:
            authenticator_factory = self.security.new_authenticator  # type: ignore[assignment]
        self.authenticator_factory = authenticator_factory
        self._tls_context = self.security.tls
        self._sasl = self.security.sasl
        #: Told (node id, error) when a broker refuses our credentials or certificate, so the
        #: producer fails what waits instead of retrying forever; on_authenticated clears it.
        self.on_auth_failure: Callable[[int, AuthenticationError], None] | None = None
        self.on_authenticated: Callable[[int], None] | None = None
        self._next_reauth = 0.0
        self._poller = make_poller()
        self._receiver = syscalls.Receiver(_RECV_SIZE)
        self._by_fd: dict[int, _Node] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self._wakeup_pending = False
        self._poller.register(self._wake_fd, READ)
        self._completed: list[tuple[Handler, Any, BaseException | None]] = []
        self._closed = False

    # -- nodes -------------------------------------------------------------

    def set_node(self, node_id: int, host: str, port: int) -> None:
        """Add a node, or move it to a new address (dropping its old connection)."""
        node = self.nodes.get(node_id)
        if node is None:
            self.nodes[node_id] = _Node(node_id, host, port)
        elif (node.host, node.port) != (host, port):
            self.disconnect(node_id, KafkaConnectionError(f"{node!r} moved to {host}:{port}."))
            node.host, node.port = host, port

    def remove_node(self, node_id: int) -> None:
        """Forget a node (a bootstrap address once real brokers are known)."""
        node = self.nodes.get(node_id)
        if node is not None:
            if node.state != _DISCONNECTED:
                self._close_node(node, KafkaConnectionError(f"{node!r} is no longer used."), backoff=False)
                self._run_completed()
            del self.nodes[node_id]

    def connection_count(self) -> int:
        """Open connections (connecting, negotiating or ready): Java's ``connection-count``."""
        return sum(1 for node in list(self.nodes.values()) if node.state != _DISCONNECTED)

    def is_ready(self, node_id: int) -> bool:
        """Connected and negotiated: requests can be sent now."""
        node = self.nodes.get(node_id)
        return node is not None and node.ready

    def ready(self, node_id: int, now: float) -> bool:
        """Like :meth:`is_ready`, but starts connecting when allowed to."""
        node = self.nodes.get(node_id)
        if node is None:
            return False
        if node.state == _DISCONNECTED and now >= node.reconnect_at:
            self._connect(node, now)
        return node.ready

    def connection_delay(self, node_id: int, now: float) -> float:
        """Milliseconds until a connection attempt to ``node_id`` is allowed."""
        node = self.nodes.get(node_id)
        if node is None or node.state != _DISCONNECTED:
            return 0.0
        return max(0.0, node.reconnect_at - now)

    def is_blacked_out(self, node_id: int, now: float) -> bool:
        """The last connection attempt failed and its backoff has not passed."""
        node = self.nodes.get(node_id)
        return node is not None and node.state == _DISCONNECTED and now < node.reconnect_at

    def in_flight(self, node_id: int) -> int:
        """Requests sent to ``node_id`` awaiting a response."""
        node = self.nodes.get(node_id)
        return len(node.awaiting) if node is not None else 0

    def version(self, node_id: int, api_key: int) -> int | None:
        """The negotiated version of ``api_key`` with ``node_id`` (None if not usable)."""
        node = self.nodes.get(node_id)
        if node is None or node.protocol is None:
            return None
        return node.protocol.versions.get(api_key)

    def least_loaded_node(self, now: float) -> int | None:
        """A node to ask for metadata: ready with the fewest in flight, else one to connect to."""
        best: _Node | None = None
        best_load = 1 << 30
        for node in self.nodes.values():
            if node.ready:
                load = len(node.awaiting)
            elif node.state != _DISCONNECTED:
                load = 1 << 20
            elif now >= node.reconnect_at:
                load = 1 << 25
            else:
                continue
            if load < best_load:
                best, best_load = node, load
        return best.node_id if best is not None else None

    # -- requests ----------------------------------------------------------

    def send(self, node_id: int, request: Any, handler: Handler, *, expect_response: bool = True) -> None:
        """Queue ``request`` to a ready node; ``handler`` runs in a later :meth:`poll`."""
        node = self.nodes[node_id]
        protocol = node.protocol
        if protocol is None or protocol.state is not _READY:
            raise KafkaConnectionError(f"Cannot send to {node!r}: not connected.")
        _, frame = protocol.send(request, expect_response=expect_response)
        if expect_response:
            node.awaiting.append((self.clock() + self.request_timeout_ms, handler))
        else:
            node.flushed_handlers.append(handler)
        self._write(node, frame)

    def poll(self, timeout_ms: float) -> None:
        """Do pending I/O, waiting at most ``timeout_ms``; run handlers of finished requests.

        Waiting releases the GIL; see :mod:`kprod.net.poller` for how the
        I/O thread gets it back quickly.
        """
        if self._sasl and timeout_ms > 0:  # wake up in time for a re-authentication or token refresh
            timeout_ms = min(timeout_ms, max(0.0, self._next_reauth - self.clock()))
        by_fd = self._by_fd
        for fd, events in self._poller.poll(timeout_ms):
            readable = events & READ
            writable = events & WRITE
            node = by_fd.get(fd)
            if node is None:
                if fd == self._wake_fd:
                    self._drain_wakeup()
                continue
            if node.state == _CONNECTING:
                if writable:
                    self._finish_connect(node)
                continue
            if node.state == _TLS_HANDSHAKE:
                self._tls_handshake(node, readable, writable)
                continue
            if writable and node.out:
                self._flush(node)
            if readable and node.sock is not None:
                self._read(node)
        now = self.clock()
        self._expire(now)
        if self._sasl and now >= self._next_reauth:
            self._maybe_reauthenticate(now)
        self._run_completed()

    def wakeup(self) -> None:
        """Make a blocked :meth:`poll` return (any thread); at most one pending byte."""
        if self._wakeup_pending:
            return
        self._wakeup_pending = True
        try:
            syscalls.send(self._wake_w, b"\0")  # keeps the GIL: the caller may hold the accumulator lock
        except OSError:
            pass

    def disconnect(self, node_id: int, error: BaseException | None = None) -> None:
        """Drop the connection to ``node_id``; fail its outstanding requests with ``error``."""
        node = self.nodes.get(node_id)
        if node is not None and node.state != _DISCONNECTED:
            self._close_node(node, error or KafkaConnectionError(f"Disconnected from {node!r}."))
            self._run_completed()

    def close(self) -> None:
        """Close every connection, failing what is outstanding."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes.values():
            if node.state != _DISCONNECTED:
                self._close_node(node, KafkaConnectionError("The producer's network client was closed."))
        self._run_completed()
        self._poller.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- internals ---------------------------------------------------------

    def _connect(self, node: _Node, now: float) -> None:
        try:
            infos = socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
            family, socktype, proto, _, address = infos[0]
            sock = socket.socket(family, socktype, proto)
        except OSError as exc:
            log.warning("Could not resolve %r: %s", node, exc)
            self._backoff(node, now)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.send_buffer_bytes > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        if self.receive_buffer_bytes > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_bytes)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            log.debug("Connection to %r failed at once: %s", node, errno.errorcode.get(code, code))
            self._backoff(node, now)
            return
        node.sock = sock
        node.state = _CONNECTING
        factory = self.authenticator_factory
        node.protocol = ClientConnection(
            self.client_id,
            software_version=__version__,
            authenticator=factory() if factory is not None else None,
        )
        node.connect_deadline = now + self.connection_setup_timeout_ms
        node.registered_events = WRITE
        self._poller.register(sock.fileno(), WRITE)
        self._by_fd[sock.fileno()] = node

    def _finish_connect(self, node: _Node) -> None:
        assert node.sock is not None
        code = node.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            log.debug("Connection to %r failed: %s", node, errno.errorcode.get(code, code))
            self._close_node(node, KafkaConnectionError(f"Could not connect to {node!r}: {errno.errorcode.get(code, code)}."))
            return
        self._set_events(node, READ)
        if self._tls_context is not None:
            node.tls = TlsSession(self._tls_context, node.host, node.port)
            node.state = _TLS_HANDSHAKE
            self._tls_handshake(node, False, False)
            return
        node.state = _CONNECTED
        assert node.protocol is not None
        self._write(node, node.protocol.connection_made())

    # -- TLS and SASL (issue 12) ---------------------------------------------------------------

    def _tls_handshake(self, node: _Node, readable: int, writable: int) -> None:
        """Advance the TLS handshake with what arrived; once done, the protocol's life begins."""
        tls, sock = node.tls, node.sock
        assert tls is not None and sock is not None
        if writable and node.out:
            self._flush(node)
            if node.sock is None:
                return
        received = b""
        if readable:
            try:
                data = self._receiver.recv(sock)
            except OSError as exc:
                self._close_node(node, KafkaConnectionError(f"Reading from {node!r} failed: {exc}."))
                return
            if data == b"":
                self._auth_failed(node, tls.eof())
                return
            received = data or b""
        try:
            out = tls.handshake(received)
        except AuthenticationError as exc:
            self._auth_failed(node, exc)
            return
        if out:
            self._write_raw(node, out)
            if node.sock is None:
                return
        if tls.handshake_done:
            node.state = _CONNECTED
            assert node.protocol is not None
            self._write(node, node.protocol.connection_made())

    def _maybe_reauthenticate(self, now: float) -> None:
        """Start KIP-368 re-authentication on connections whose session nears its end.

        Requests already in flight stay in flight: Kafka answers a connection's
        requests in order, so their responses arrive before the SASL ones and
        nothing is lost or reordered; new requests wait (the node is not ready)
        until the exchange ends.
        """
        source = self.security.token_source
        if source is not None:
            try:
                source.maintain()
            except AuthenticationError as exc:
                log.warning("OAUTHBEARER token refresh failed; will retry: %s", exc)
        upcoming = 0.0
        for node in self.nodes.values():
            if node.reauth_at and node.ready:
                if now >= node.reauth_at:
                    node.reauth_at = 0.0
                    self._start_reauthentication(node, now)
                elif not upcoming or node.reauth_at < upcoming:
                    upcoming = node.reauth_at
        if source is not None and source.token is not None:
            refresh = now + max(0.0, source.refresh_at - time.time()) * 1000.0
            upcoming = min(upcoming, refresh) if upcoming else refresh
        self._next_reauth = upcoming if upcoming else now + 1000.0

    def _start_reauthentication(self, node: _Node, now: float) -> None:
        """KIP-368 on a READY connection: the state machine is AUTHENTICATING (not ready) until done."""
        auth = self.security.new_authenticator()
        assert auth is not None and node.protocol is not None
        log.debug("Re-authenticating with %r (KIP-368)", node)
        node.reauthenticating = True
        node.connect_deadline = now + self.request_timeout_ms  # the exchange's own deadline
        try:
            data = node.protocol.reauthenticate(auth)
        except AuthenticationError as exc:
            self._auth_failed(node, exc)
            return
        if data:
            self._write(node, data)
        else:
            node.reauthenticating = False
            self._authenticated(node, auth)

    def _authenticated(self, node: _Node, auth: Any) -> None:
        """SASL succeeded (first time or again): schedule the next re-authentication."""
        lifetime = getattr(auth, "session_lifetime_ms", 0)
        node.reauth_at = 0.0
        if lifetime > 0:
            node.reauth_at = self.clock() + lifetime * random.uniform(*_REAUTH_FRACTION)
            self._next_reauth = min(self._next_reauth, node.reauth_at) if self._next_reauth else node.reauth_at
        if self.on_authenticated is not None:
            self.on_authenticated(node.node_id)

    def _auth_failed(self, node: _Node, error: AuthenticationError) -> None:
        """The broker refused us: close, back off to the maximum, and tell the producer."""
        log.error("Authentication with %r failed: %s", node, error)
        self._close_node(node, error)
        node.reconnect_at = self.clock() + self.reconnect_backoff_max_ms
        if self.on_auth_failure is not None:
            self.on_auth_failure(node.node_id, error)

    def _send_bytes(self, node: _Node, data: bytes | bytearray) -> int:
        """Write what the socket takes now: the one place bytes leave (-1: connection closed)."""
        sock = node.sock
        assert sock is not None
        try:
            return syscalls.send(sock, data)
        except OSError as exc:
            self._close_node(node, KafkaConnectionError(f"Sending to {node!r} failed: {exc}."))
            return -1

    def _write(self, node: _Node, frame: bytes) -> None:
        if node.tls is not None:
            frame = node.tls.encrypt(frame)
        self._write_raw(node, frame)

    def _write_raw(self, node: _Node, frame: bytes) -> None:
        if node.out:
            node.out += frame
            return
        sent = self._send_bytes(node, frame)
        if sent < 0:
            return
        if sent < len(frame):
            node.out += memoryview(frame)[sent:]
            self._set_events(node, READ | WRITE)
        elif node.flushed_handlers:
            self._complete_flushed(node)

    def _flush(self, node: _Node) -> None:
        sent = self._send_bytes(node, node.out)
        if sent < 0:
            return
        del node.out[:sent]
        if not node.out:
            self._set_events(node, READ)
            if node.flushed_handlers:
                self._complete_flushed(node)

    def _complete_flushed(self, node: _Node) -> None:
        for handler in node.flushed_handlers:
            self._completed.append((handler, None, None))
        node.flushed_handlers = []

    def _read(self, node: _Node) -> None:
        """Read what the socket has: the one place bytes arrive."""
        sock = node.sock
        assert sock is not None and node.protocol is not None
        receiver = self._receiver
        while True:
            try:
                data = receiver.recv(sock)
            except OSError as exc:
                self._close_node(node, KafkaConnectionError(f"Reading from {node!r} failed: {exc}."))
                return
            if data is None:
                return
            if not data:
                self._closed_by_broker(node)
                return
            raw_length = len(data)
            protocol = node.protocol
            if node.tls is not None:
                data, reply = node.tls.decrypt(data)
                if reply:
                    self._write_raw(node, reply)
                if not data:
                    if raw_length < _RECV_SIZE:
                        return
                    continue
            elif protocol.state is ConnectionState.NEGOTIATING and data[:1] in (b"\x15", b"\x16") and data[1:2] == b"\x03":
                self._auth_failed(node, AuthenticationError(
                    f"{node!r} answered with TLS: it is a TLS listener. Set security.protocol=SSL or SASL_SSL."))
                return
            was_authenticating = protocol.state is ConnectionState.AUTHENTICATING
            try:
                events = protocol.receive(data)
            except AuthenticationError as exc:
                self._auth_failed(node, exc)
                return
            except KafkaError as exc:  # the state machine is poisoned: drop the connection
                log.error("Protocol error on %r: %s", node, exc)
                self._close_node(node, exc)
                return
            for event in events:
                if type(event) is Response:
                    _, handler = node.awaiting.popleft()
                    self._completed.append((handler, event.response, None))
                elif type(event) is Outgoing:
                    self._write(node, event.data)
                    if node.sock is None:
                        return
                elif type(event) is Ready:
                    node.failures = 0
                    log.debug("Connected to %r", node)
                    if was_authenticating:
                        if node.reauthenticating:
                            node.reauthenticating = False
                            log.debug("Re-authenticated with %r", node)
                        self._authenticated(node, protocol.authenticator)
            if raw_length < _RECV_SIZE:
                return

    def _closed_by_broker(self, node: _Node) -> None:
        protocol = node.protocol
        state = protocol.state if protocol is not None else None
        if state is ConnectionState.AUTHENTICATING:
            # Kafka closes the connection when SASL fails on brokers that cannot send
            # SaslAuthenticate errors, and when a client talks plaintext to a SASL_SSL port.
            self._auth_failed(node, AuthenticationError(
                f"{node!r} closed the connection during SASL authentication: the credentials may be wrong,"
                " or the listener expects TLS (security.protocol=SASL_SSL)."))
            return
        if state is ConnectionState.NEGOTIATING and node.tls is None:
            self._close_node(node, KafkaConnectionError(
                f"{node!r} closed the connection before answering ApiVersions: if this is a TLS"
                " listener, set security.protocol=SSL or SASL_SSL."))
            return
        self._close_node(node, KafkaConnectionError(f"{node!r} closed the connection."))

    def _expire(self, now: float) -> None:
        for node in self.nodes.values():
            if node.state == _DISCONNECTED:
                continue
            if not node.ready and now >= node.connect_deadline:  # handshake not done in time
                self._close_node(node, KafkaTimeoutError(
                    f"Connection setup to {node!r} timed out after {self.connection_setup_timeout_ms} ms "
                    "(socket.connection.setup.timeout.ms)."))
            elif node.awaiting and now >= node.awaiting[0][0]:
                self._close_node(node, KafkaTimeoutError(
                    f"{node!r} did not answer within request.timeout.ms ({self.request_timeout_ms} ms); "
                    "the connection was closed and the request will be retried if allowed."))

    def _close_node(self, node: _Node, error: BaseException, *, backoff: bool = True) -> None:
        was_ready = node.ready
        if node.sock is not None:
            self._by_fd.pop(node.sock.fileno(), None)
            self._poller.unregister(node.sock.fileno())
            node.sock.close()
        node.sock = None
        node.protocol = None
        node.tls = None
        node.reauth_at = 0.0
        node.reauthenticating = False
        node.registered_events = 0
        node.state = _DISCONNECTED
        node.out = bytearray()
        now = self.clock()
        if backoff:
            self._backoff(node, now, reset=was_ready)
        else:
            node.reconnect_at = now
        if self.on_disconnect is not None:
            self.on_disconnect(node.node_id)
        for _, handler in node.awaiting:
            self._completed.append((handler, None, error))
        node.awaiting.clear()
        for handler in node.flushed_handlers:
            self._completed.append((handler, None, error))
        node.flushed_handlers = []
        if isinstance(error, KafkaError):
            log.debug("Closed connection to %r: %s", node, error)

    def _backoff(self, node: _Node, now: float, *, reset: bool = False) -> None:
        node.failures = 1 if reset else node.failures + 1
        delay = min(self.reconnect_backoff_max_ms, self.reconnect_backoff_ms * (2 ** (node.failures - 1)))
        node.reconnect_at = now + delay

    def _set_events(self, node: _Node, events: int) -> None:
        if node.registered_events != events and node.sock is not None:
            self._poller.modify(node.sock.fileno(), events)
            node.registered_events = events

    def _drain_wakeup(self) -> None:
        # Drain first, then clear. Clearing first would let a racing wake-up's
        # byte be drained here while its flag stays set, silencing every later
        # wake-up. This order can only skip a byte whose work the sender's next
        # plan (right after this poll) sees anyway.
        try:
            while self._receiver.recv(self._wake_r):  # keeps the GIL; None once drained
                pass
        except OSError:
            pass
        self._wakeup_pending = False

    def _run_completed(self) -> None:
        while self._completed:
            completed, self._completed = self._completed, []
            for handler, response, error in completed:
                try:
                    handler(response, error)
                except Exception:  # a handler bug must not kill the I/O thread
                    log.exception("Error in a response handler")
