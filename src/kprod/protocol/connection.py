"""The client side of one broker connection, as a sans-IO state machine.

In the style of h11: the caller owns the socket (or TLS transport, or test)
and feeds this object what happened: :meth:`ClientConnection.connection_made`
when the byte stream is up, :meth:`ClientConnection.receive` with every chunk
read. It answers with bytes to write and with events. It never opens sockets,
reads clocks, sleeps or logs, so ``kprod.net``'s non-blocking client and its
blocking connection run the very same connection life, and tests drive it
with bytes alone.

The life of a connection::

    CONNECTING --connection_made()--> NEGOTIATING --ApiVersions ok--> [AUTHENTICATING] --> READY
    READY --reauthenticate()--> AUTHENTICATING --> READY                    (KIP-368)
    any state --broken bytes, wrong correlation id, failed handshake--> ERROR (final)

* NEGOTIATING: ApiVersions at kprod's highest version. A broker that does not
  know that version answers UNSUPPORTED_VERSION with a v0 body carrying its
  own ApiVersions range (KIP-511): we retry at min(ours, theirs). If the answer
  does not parse at all, we retry at v0. Each retry must lower the version, so
  negotiation ends.
* AUTHENTICATING: only with an :class:`Authenticator` (SASL). The connection
  sends the requests it returns, one at a time, and hands it each response.
  :meth:`~ClientConnection.reauthenticate` runs a new one on a READY
  connection (KIP-368); answers to requests sent before it still arrive as
  ``Response`` events, and no new request may be sent until READY again.
* READY: :meth:`~ClientConnection.send` frames requests;
  :meth:`~ClientConnection.receive` returns their responses, in order. Kafka
  answers a connection's requests in order, so a correlation id that is not
  the oldest outstanding one means the stream is broken.
* ERROR: the stream cannot be trusted; every later call raises the
  :class:`~kprod.errors.ProtocolError` (or authentication error) that
  poisoned it. The caller closes the socket and, if it wants, starts again
  with a new ``ClientConnection``.
"""

from __future__ import annotations

import struct
from collections import deque
from enum import Enum
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from kprod.errors import AuthenticationError, KafkaConnectionError, KafkaError, ProtocolError
from kprod.protocol.framing import FrameReader, decode_response, encode_request
from kprod.protocol.messages import CLIENT_VERSIONS, ApiKey, ErrorCode, api_name
from kprod.protocol.responses import ApiVersionsResult, api_versions_result
from kprod.protocol.versions import api_versions_request, negotiate

__all__ = [
    "Authenticator",
    "ClientConnection",
    "ConnectionState",
    "Event",
    "Outgoing",
    "Ready",
    "Response",
]

_MAX_CORRELATION_ID = 2**31 - 1
_CORRELATION_ID = struct.Struct(">i")
_UNSUPPORTED_VERSION = int(ErrorCode.unsupported_version)


class ConnectionState(Enum):
    """Where a connection is in its life (see the module docstring)."""

    CONNECTING = "CONNECTING"
    NEGOTIATING = "NEGOTIATING"
    AUTHENTICATING = "AUTHENTICATING"
    READY = "READY"
    ERROR = "ERROR"


class Authenticator(Protocol):
    """The extension point for authentication (SASL), itself sans-IO.

    Given to :class:`ClientConnection`, it runs between version negotiation
    and READY. Requests are protocol request entities (build them with
    ``kprod.protocol.requests``); the connection frames them and hands back
    the decoded response of each, in order.
    """

    def start(self, versions: Mapping[int, int]) -> Any | None:
        """The first request to send; None: nothing to do.

        ``versions`` is the connection's negotiated version per API key (APIs
        kprod lists in ``CLIENT_VERSIONS`` that the broker also speaks).
        """
        ...

    def on_response(self, response: Any) -> Any | None:
        """The next request after ``response``; None: authenticated.

        Raises :class:`~kprod.errors.AuthenticationError` (or another
        ``KafkaError``) when the broker refuses; that error poisons the connection.
        """
        ...


class Response(NamedTuple):
    """The response to a request sent with :meth:`ClientConnection.send`."""

    correlation_id: int
    response: Any


class Outgoing(NamedTuple):
    """Bytes the connection itself wants written (the next handshake request)."""

    data: bytes


class Ready(NamedTuple):
    """The handshake is done: requests may be sent at the ``versions`` chosen."""

    versions: dict[int, int]
    api_versions: ApiVersionsResult


Event = Response | Outgoing | Ready


class ClientConnection:
    """One broker connection's protocol state: handshake, request numbering, response matching."""

    __slots__ = (
        "client_id",
        "software_version",
        "state",
        "versions",
        "api_versions",
        "error",
        "api_versions_version",
        "_authenticator",
        "_next_correlation_id",
        "_reader",
        "_awaiting",
    )

    def __init__(
        self,
        client_id: str | None,
        *,
        software_version: str = "unknown",
        authenticator: Authenticator | None = None,
        api_versions_version: int | None = None,
    ) -> None:
        self.client_id = client_id
        #: Sent in ApiVersions v3+ (KIP-511) as the client software version.
        self.software_version = software_version
        self.state = ConnectionState.CONNECTING
        #: Negotiated version per API key; filled when READY.
        self.versions: dict[int, int] = {}
        #: The broker's ApiVersions answer; filled when negotiation succeeds.
        self.api_versions: ApiVersionsResult | None = None
        #: What poisoned the connection (state ERROR), else None.
        self.error: KafkaError | None = None
        #: The ApiVersions version asked (lowered by the KIP-511 fallback).
        self.api_versions_version = (
            CLIENT_VERSIONS[ApiKey.API_VERSIONS][1] if api_versions_version is None else api_versions_version
        )
        self._authenticator = authenticator
        self._next_correlation_id = 0
        self._reader = FrameReader()
        # (correlation id, api key, api version, handshake?) of requests awaiting a response,
        # oldest first; handshake requests are the connection's own (ApiVersions, authentication).
        self._awaiting: deque[tuple[int, int, int, bool]] = deque()

    # -- events in ---------------------------------------------------------

    def connection_made(self) -> bytes:
        """The byte stream is up (TCP connected, TLS done): the bytes to write first."""
        if self.state is not ConnectionState.CONNECTING:
            raise self._refuse("connection_made() is only valid once, on a new connection")
        self.state = ConnectionState.NEGOTIATING
        return self._frame(api_versions_request(self.api_versions_version, self.software_version))

    def send(self, request: Any, *, expect_response: bool = True) -> tuple[int, bytes]:
        """Frame ``request`` (READY only): returns (correlation id, bytes to write).

        ``expect_response=False`` is for Produce with acks=0, which the broker
        never answers.
        """
        if self.state is not ConnectionState.READY:
            raise self._refuse(f"Cannot send a {api_name(request.__api_key__)} request")
        correlation_id = self._next_correlation_id
        self._next_correlation_id = 0 if correlation_id == _MAX_CORRELATION_ID else correlation_id + 1
        frame = encode_request(request, correlation_id, self.client_id)
        if expect_response:
            self._awaiting.append((correlation_id, request.__api_key__, request.__version__, False))
        return correlation_id, frame

    def reauthenticate(self, authenticator: Authenticator) -> bytes:
        """Authenticate again on a READY connection (KIP-368): the bytes to write (b"": nothing to do).

        The connection is AUTHENTICATING until ``authenticator`` is done (a
        ``Ready`` event); answers to requests already sent still arrive as
        ``Response`` events meanwhile.
        """
        if self.state is not ConnectionState.READY:
            raise self._refuse("Cannot re-authenticate")
        self._authenticator = authenticator
        self.state = ConnectionState.AUTHENTICATING
        try:
            request = authenticator.start(self.versions)
        except Exception as exc:
            raise self._poison(_auth_error(exc)) from exc
        if request is None:
            self.state = ConnectionState.READY
            return b""
        return self._frame(request)

    def receive(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed received bytes; return the events they complete, in order.

        Raises :class:`~kprod.errors.ProtocolError` (or the authenticator's
        error) when the bytes break the protocol; the connection is then in
        state ERROR and raises that error again on every later call.
        """
        state = self.state
        if state is ConnectionState.ERROR or state is ConnectionState.CONNECTING:
            raise self._refuse(f"Received {len(data)} bytes")
        try:
            frames = self._reader.feed(data)
        except ProtocolError as exc:
            raise self._poison(exc) from None
        events: list[Event] = []
        awaiting = self._awaiting
        for frame in frames:
            if not awaiting:
                raise self._poison(ProtocolError(
                    f"Received a {len(frame)}-byte response while no request was outstanding."
                ))
            expected, api_key, version, handshake = awaiting.popleft()
            if not handshake:
                try:
                    correlation_id, response = decode_response(frame, api_key, version)
                except ProtocolError as exc:
                    raise self._poison(exc) from None
                if correlation_id != expected:
                    raise self._poison(_mismatch(correlation_id, expected))
                events.append(Response(correlation_id, response))
                continue
            # Handshake: check the id before the body, which may legitimately not parse.
            if len(frame) < 4:
                raise self._poison(ProtocolError(f"Received a {len(frame)}-byte frame, too short for a response."))
            (correlation_id,) = _CORRELATION_ID.unpack_from(frame, 0)
            if correlation_id != expected:
                raise self._poison(_mismatch(correlation_id, expected))
            self._handshake(frame, api_key, version, events)
        return events

    # -- the handshake -----------------------------------------------------

    def _handshake(self, frame: memoryview, api_key: int, version: int, events: list[Event]) -> None:
        if self.state is ConnectionState.NEGOTIATING:
            self._on_api_versions(frame, version, events)
            return
        assert self.state is ConnectionState.AUTHENTICATING and self._authenticator is not None
        try:
            _, response = decode_response(frame, api_key, version)
            request = self._authenticator.on_response(response)
        except Exception as exc:
            raise self._poison(_auth_error(exc)) from exc
        self._next_handshake_step(request, events)

    def _on_api_versions(self, frame: memoryview, version: int, events: list[Event]) -> None:
        try:
            _, response = decode_response(frame, ApiKey.API_VERSIONS, version)
        except ProtocolError as exc:
            if version == 0:
                raise self._poison(exc) from None
            # Not even a KIP-511 error body: a broker older than that, answering in its own v0.
            self._retry_api_versions(0, events)
            return
        result = api_versions_result(response)
        if result.error_code == _UNSUPPORTED_VERSION and version > 0:
            broker_max = result.broker_versions.get(ApiKey.API_VERSIONS, (0, 0))[1]
            retry = min(version, broker_max)
            if retry >= version:
                retry = 0  # the broker refused a version it claims to know: fall back to v0
            self._retry_api_versions(retry, events)
            return
        if result.error_code != 0:
            raise self._poison(ProtocolError(
                f"The broker answered ApiVersions v{version} with error code {result.error_code}."
            ))
        self.api_versions = result
        self.versions = negotiate(result.broker_versions)
        request = None
        if self._authenticator is not None:
            self.state = ConnectionState.AUTHENTICATING
            try:
                request = self._authenticator.start(self.versions)
            except Exception as exc:
                raise self._poison(_auth_error(exc)) from exc
        self._next_handshake_step(request, events)

    def _retry_api_versions(self, version: int, events: list[Event]) -> None:
        self.api_versions_version = version
        events.append(Outgoing(self._frame(api_versions_request(version, self.software_version))))

    def _next_handshake_step(self, request: Any | None, events: list[Event]) -> None:
        if request is not None:
            events.append(Outgoing(self._frame(request)))
            return
        self.state = ConnectionState.READY
        assert self.api_versions is not None
        events.append(Ready(self.versions, self.api_versions))

    # -- helpers -------------------------------------------------------------

    def _frame(self, request: Any) -> bytes:
        """Number and frame a handshake request, expecting its answer."""
        correlation_id = self._next_correlation_id
        self._next_correlation_id = 0 if correlation_id == _MAX_CORRELATION_ID else correlation_id + 1
        self._awaiting.append((correlation_id, request.__api_key__, request.__version__, True))
        return encode_request(request, correlation_id, self.client_id)

    def _poison(self, error: KafkaError) -> KafkaError:
        """Enter ERROR for good, remembering why; returns ``error`` for the caller to raise."""
        self.state = ConnectionState.ERROR
        self.error = error
        self._awaiting.clear()
        return error

    def _refuse(self, what: str) -> KafkaError:
        if self.state is ConnectionState.ERROR:
            assert self.error is not None
            return ProtocolError(f"{what}: the connection is unusable after an earlier error ({self.error}).")
        return KafkaConnectionError(f"{what}: the connection is {self.state.value}, not READY.")

    # -- introspection -------------------------------------------------------

    @property
    def authenticator(self) -> Authenticator | None:
        """The latest authenticator (from construction or reauthenticate()), e.g. for a SASL session lifetime."""
        return self._authenticator

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (handshake requests included)."""
        return len(self._awaiting)

    def outstanding(self) -> list[int]:
        """Correlation ids still awaiting a response, oldest first."""
        return [entry[0] for entry in self._awaiting]


def _mismatch(correlation_id: int, expected: int) -> ProtocolError:
    return ProtocolError(
        f"Response correlation id {correlation_id} does not match the oldest "
        f"outstanding request ({expected}); the connection must be reset."
    )


def _auth_error(exc: Exception) -> KafkaError:
    """The authenticator's kprod error as is; anything else (a bug in it) as an AuthenticationError."""
    if isinstance(exc, KafkaError):
        return exc
    return AuthenticationError(f"The authenticator failed: {type(exc).__name__}: {exc}")
