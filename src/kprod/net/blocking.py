"""A plain blocking connection to one broker: connect, negotiate, request, reply.

Used for one-off requests (admin calls in tests and tools, the CLI's topic
checks). The producer's I/O thread uses :mod:`kprod.net.client` instead.
"""

from __future__ import annotations

import socket
from typing import Any

from kprod._version import __version__
from kprod.errors import KafkaConnectionError, KafkaTimeoutError, ProtocolError
from kprod.protocol.connection import ClientConnection
from kprod.protocol.messages import CLIENT_VERSIONS, ApiKey, request_type
from kprod.protocol.versions import api_versions_request, broker_ranges, negotiate

__all__ = ["BlockingConnection"]

_UNSUPPORTED_VERSION = 35


class BlockingConnection:
    """One socket to one broker, with negotiated API versions.

    ``with BlockingConnection(host, port) as conn: conn.request(...)``.
    """

    def __init__(self, host: str, port: int, *, client_id: str | None = "kprod", timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._protocol = ClientConnection(client_id)
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
        self.broker_versions: dict[int, tuple[int, int]] = {}
        self.versions: dict[int, int] = {}
        try:
            self._negotiate()
        except BaseException:
            self.close()
            raise

    def _negotiate(self) -> None:
        version = CLIENT_VERSIONS[ApiKey.API_VERSIONS][1]
        for _ in range(3):
            try:
                response = self.send(api_versions_request(version, __version__))
            except ProtocolError:
                if version == 0:
                    raise
                version = 0  # the error body did not parse: fall back to v0
                continue
            if int(response.error_code) == _UNSUPPORTED_VERSION:
                ranges = broker_ranges(response)
                version = min(version, ranges.get(ApiKey.API_VERSIONS, (0, 0))[1]) if ranges else 0
                continue
            self.broker_versions = broker_ranges(response)
            self.versions = negotiate(self.broker_versions)
            return
        raise ProtocolError(f"Broker {self.host}:{self.port} did not answer ApiVersions sensibly.")

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
        try:
            self._sock.sendall(frame)
            if not expect_response:
                return None
            while True:
                data = self._sock.recv(1 << 20)
                if not data:
                    raise KafkaConnectionError(
                        f"Broker {self.host}:{self.port} closed the connection before answering."
                    )
                responses = self._protocol.receive(data)
                if responses:
                    return responses[0][1]
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
