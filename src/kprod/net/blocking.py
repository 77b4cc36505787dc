"""A plain blocking connection to one broker: connect, negotiate, request, reply.

Used for one-off requests (admin calls in tests and tools, the CLI's topic
checks). The producer's I/O thread uses :mod:`kprod.net.client` instead.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from kprod._version import __version__
from kprod.errors import KafkaConnectionError, KafkaTimeoutError, ProtocolError
from kprod.protocol.connection import Authenticator, ClientConnection, ConnectionState, Event, Outgoing, Response
from kprod.protocol.messages import request_type
from kprod.net.security import Security
from kprod.net.tls import describe_tls_failure

__all__ = ["BlockingConnection"]

_RECV_SIZE = 1 << 20


class BlockingConnection:
    """One socket to one broker, with negotiated API versions.

    ``with BlockingConnection(host, port) as conn: conn.request(...)``. The
    handshake (ApiVersions with its fallbacks, then ``authenticator`` if
    given) is the protocol layer's :class:`~kprod.protocol.connection.ClientConnection`,
    the same state machine the producer's non-blocking client runs.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = "kprod",
        timeout: float = 30.0,
        authenticator: Authenticator | None = None,
        security: Security | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        if authenticator is None and security is not None:
            authenticator = security.new_authenticator()
        self._protocol = ClientConnection(client_id, software_version=__version__, authenticator=authenticator)
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except socket.timeout as exc:
            raise KafkaTimeoutError(f"Timed out connecting to broker {host}:{port} after {timeout}s.") from exc
        except OSError as exc:
            raise KafkaConnectionError(
                f"Could not connect to broker {host}:{port}: {exc.strerror or exc}. "
                "Check that the broker runs and the address is right."
            ) from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if security is not None and security.tls is not None:
            try:  # one-off connections may use ssl.SSLSocket; the I/O thread uses the MemoryBIO session
                self._sock = security.tls.wrap_socket(self._sock, server_hostname=host)
            except (ssl.SSLError, OSError) as exc:
                self._sock.close()
                raise describe_tls_failure(host, port, exc) from None
        self.broker_versions: dict[int, tuple[int, int]] = {}
        self.versions: dict[int, int] = {}
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    def _handshake(self) -> None:
        protocol = self._protocol
        self._write(protocol.connection_made())
        while protocol.state is not ConnectionState.READY:
            for event in self._receive():
                if type(event) is Outgoing:
                    self._write(event.data)
        assert protocol.api_versions is not None
        self.broker_versions = protocol.api_versions.broker_versions
        self.versions = protocol.versions

    def version(self, api_key: int) -> int:
        """The negotiated version of ``api_key`` on this connection."""
        try:
            return self.versions[api_key]
        except KeyError:
            raise ProtocolError(f"Broker {self.host}:{self.port} supports no usable version of API {api_key}.") from None

    def request_class(self, api_key: int) -> type[Any]:
        """The kio request class of ``api_key`` at the negotiated version."""
        return request_type(api_key, self.version(api_key))

    def send(self, request: Any, *, expect_response: bool = True) -> Any:
        """Send ``request``; wait for and return its response (None without one)."""
        _, frame = self._protocol.send(request, expect_response=expect_response)
        self._write(frame)
        if not expect_response:
            return None
        while True:
            for event in self._receive():
                if type(event) is Response:
                    return event.response

    def _write(self, data: bytes) -> None:
        """The one place bytes leave."""
        self._io(self._sock.sendall, data)

    def _receive(self) -> list[Event]:
        """Block for the next bytes and feed them to the state machine: the one place bytes arrive."""
        data = self._io(self._sock.recv, _RECV_SIZE)
        if not data:
            raise KafkaConnectionError(f"Broker {self.host}:{self.port} closed the connection before answering.")
        return self._protocol.receive(data)

    def _io(self, call: Any, argument: Any) -> Any:
        """One socket call, its failures as kprod errors."""
        try:
            return call(argument)
        except socket.timeout as exc:
            raise KafkaTimeoutError(
                f"Broker {self.host}:{self.port} did not answer within {self.timeout}s."
            ) from exc
        except OSError as exc:
            raise KafkaConnectionError(f"Connection to broker {self.host}:{self.port} failed: {exc}.") from exc

    def close(self) -> None:
        """Close the socket (idempotent)."""
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> "BlockingConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
