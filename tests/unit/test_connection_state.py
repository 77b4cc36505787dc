"""The sans-IO connection state machine, driven with bytes alone (no sockets, no clock).

The broker's side of each exchange is written with the protocol layer's
server-side helpers (``decode_request`` reads what the client wrote,
``encode_response`` writes the broker's answer), so every test checks the
bytes that would cross the wire in both directions.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Mapping
from typing import Any

import pytest

from kprod.errors import AuthenticationError, KafkaConnectionError, ProtocolError
from kprod.protocol.connection import (
    ClientConnection,
    ConnectionState,
    Outgoing,
    Ready,
    Response,
)
from kprod.protocol.framing import FrameReader, RequestFrame, decode_request, encode_response
from kprod.protocol.messages import ApiKey, ErrorCode, request_module, response_module, response_type
from kprod.protocol.requests import metadata_request, produce_request
from kprod.protocol.responses import ApiVersionsResult

#: A Kafka 4.x-like broker: Produce v3-13, Metadata v0-13, ApiVersions v0-4.
BROKER = {ApiKey.PRODUCE: (3, 13), ApiKey.METADATA: (0, 13), ApiKey.API_VERSIONS: (0, 4)}


def _requests(data: bytes) -> list[RequestFrame]:
    """What the broker reads from ``data``: every request frame in it, decoded."""
    frames = FrameReader().feed(data)
    assert sum(4 + len(f) for f in frames) == len(data), "the client wrote a partial frame"
    return [decode_request(f) for f in frames]


def _api_versions_ok(
    version: int, correlation_id: int, ranges: dict[int, tuple[int, int]] = BROKER, code: int = 0
) -> bytes:
    module = response_module(ApiKey.API_VERSIONS, version)
    keys = tuple(module.ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, (lo, hi) in ranges.items())
    fields: dict[str, Any] = {"error_code": ErrorCode(code), "api_keys": keys}
    if version >= 1:
        fields["throttle_time"] = datetime.timedelta(milliseconds=7)
    if version >= 3:
        fields.update(supported_features=(), finalized_features_epoch=-1, finalized_features=(), zk_migration_ready=False)
    return encode_response(module.ApiVersionsResponse(**fields), correlation_id)


def _api_versions_error(correlation_id: int, code: int, ranges: dict[int, tuple[int, int]]) -> bytes:
    """The v0 body a broker sends for an ApiVersions version it does not know (KIP-511)."""
    module = response_module(ApiKey.API_VERSIONS, 0)
    keys = tuple(module.ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, (lo, hi) in ranges.items())
    return encode_response(module.ApiVersionsResponse(error_code=ErrorCode(code), api_keys=keys), correlation_id)


def _metadata_response(correlation_id: int, controller_id: int) -> bytes:
    module = response_module(ApiKey.METADATA, 12)
    response = module.MetadataResponse(
        throttle_time=datetime.timedelta(0), brokers=(), cluster_id=None, controller_id=controller_id, topics=()
    )
    return encode_response(response, correlation_id)


def _feed_bytewise(conn: ClientConnection, data: bytes) -> list[Any]:
    events: list[Any] = []
    for i in range(len(data)):
        events += conn.receive(data[i : i + 1])
    return events


def _ready(conn: ClientConnection | None = None) -> ClientConnection:
    """A connection through the happy-path handshake (ApiVersions v4 answered at once)."""
    conn = conn or ClientConnection("kp", software_version="9.9")
    conn.connection_made()
    [ready] = conn.receive(_api_versions_ok(4, 0))
    assert type(ready) is Ready
    return conn


# -- the handshake ------------------------------------------------------------------------------


def test_happy_path_negotiates_then_numbers_requests_after_the_handshake() -> None:
    conn = ClientConnection("kp", software_version="9.9")
    assert conn.state is ConnectionState.CONNECTING
    [request] = _requests(conn.connection_made())
    assert conn.state is ConnectionState.NEGOTIATING
    assert (request.api_key, request.api_version, request.correlation_id, request.client_id) == (18, 4, 0, "kp")
    assert (request.request.client_software_name, request.request.client_software_version) == ("kprod", "9.9")

    # The answer arrives one byte at a time: nothing happens until its last byte.
    answer = _api_versions_ok(4, 0)
    assert _feed_bytewise(conn, answer[:-1]) == []
    assert conn.state is ConnectionState.NEGOTIATING
    [ready] = conn.receive(answer[-1:])
    assert ready == Ready({ApiKey.PRODUCE: 11, ApiKey.METADATA: 12, ApiKey.API_VERSIONS: 4},
                          ApiVersionsResult(0, dict(BROKER), 7))
    assert conn.state is ConnectionState.READY
    assert conn.versions == ready.versions and conn.api_versions == ready.api_versions

    correlation_id, frame = conn.send(metadata_request(12, None))
    assert correlation_id == 1
    [request] = _requests(frame)
    assert (request.api_key, request.api_version, request.correlation_id) == (ApiKey.METADATA, 12, 1)
    [event] = conn.receive(_metadata_response(1, controller_id=5))
    assert type(event) is Response
    assert (event.correlation_id, event.response.controller_id) == (1, 5)
    assert conn.in_flight == 0


def test_kip_511_unsupported_version_retries_at_the_brokers_max_on_the_same_connection() -> None:
    broker = {ApiKey.API_VERSIONS: (0, 2), ApiKey.PRODUCE: (0, 8), ApiKey.METADATA: (0, 9)}
    conn = ClientConnection("kp")
    conn.connection_made()
    [retry] = conn.receive(_api_versions_error(0, 35, {ApiKey.API_VERSIONS: (0, 2)}))
    assert type(retry) is Outgoing
    assert conn.state is ConnectionState.NEGOTIATING
    [request] = _requests(retry.data)
    assert (request.api_key, request.api_version, request.correlation_id) == (18, 2, 1)
    assert conn.api_versions_version == 2
    [ready] = conn.receive(_api_versions_ok(2, 1, broker))
    assert ready.versions == {ApiKey.PRODUCE: 8, ApiKey.METADATA: 9, ApiKey.API_VERSIONS: 2}
    assert conn.state is ConnectionState.READY
    assert conn.send(metadata_request(9, None))[0] == 2


def test_kip_511_answer_without_an_api_versions_range_falls_back_to_v0() -> None:
    conn = ClientConnection("kp")
    conn.connection_made()
    [retry] = conn.receive(_api_versions_error(0, 35, {}))
    [request] = _requests(retry.data)
    assert (request.api_version, request.correlation_id) == (0, 1)


def test_refusing_a_version_the_broker_claims_to_know_falls_back_to_v0_then_ends() -> None:
    conn = ClientConnection("kp")
    conn.connection_made()
    [retry] = conn.receive(_api_versions_error(0, 35, {ApiKey.API_VERSIONS: (0, 4)}))
    assert _requests(retry.data)[0].api_version == 0
    # Refused again at v0: no version left to try.
    with pytest.raises(ProtocolError, match="ApiVersions v0 with error code 35"):
        conn.receive(_api_versions_error(1, 35, {ApiKey.API_VERSIONS: (0, 4)}))
    assert conn.state is ConnectionState.ERROR


def test_unparsable_api_versions_answer_falls_back_to_v0() -> None:
    conn = ClientConnection("kp")
    conn.connection_made()
    # Right correlation id, then a body that is neither a v4 answer nor a KIP-511 error body.
    garbage = struct.pack(">i", 0) + b"\x00\x00\xff"
    [retry] = conn.receive(struct.pack(">i", len(garbage)) + garbage)
    [request] = _requests(retry.data)
    assert (request.api_key, request.api_version, request.correlation_id) == (18, 0, 1)
    assert conn.api_versions_version == 0
    [ready] = conn.receive(_api_versions_ok(0, 1))
    assert ready.versions[ApiKey.PRODUCE] == 11
    assert conn.state is ConnectionState.READY


def test_unparsable_api_versions_answer_at_v0_poisons() -> None:
    conn = ClientConnection("kp", api_versions_version=0)
    assert _requests(conn.connection_made())[0].api_version == 0
    garbage = struct.pack(">i", 0) + b"\x00"
    with pytest.raises(ProtocolError, match="Could not decode a ApiVersions v0 response"):
        conn.receive(struct.pack(">i", len(garbage)) + garbage)
    assert conn.state is ConnectionState.ERROR


def test_api_versions_error_other_than_unsupported_version_poisons() -> None:
    conn = ClientConnection("kp")
    conn.connection_made()
    with pytest.raises(ProtocolError, match="ApiVersions v4 with error code 31"):
        conn.receive(_api_versions_ok(4, 0, {}, code=31))
    assert conn.state is ConnectionState.ERROR


def test_send_before_ready_is_refused_without_poisoning() -> None:
    conn = ClientConnection("kp")
    with pytest.raises(KafkaConnectionError, match="Cannot send a Metadata request: the connection is CONNECTING"):
        conn.send(metadata_request(12, None))
    conn.connection_made()
    with pytest.raises(KafkaConnectionError, match="the connection is NEGOTIATING, not READY"):
        conn.send(metadata_request(12, None))
    assert conn.state is ConnectionState.NEGOTIATING
    assert conn.outstanding() == [0]
    with pytest.raises(KafkaConnectionError, match="only valid once"):
        conn.connection_made()


# -- poisoning ----------------------------------------------------------------------------------


def test_out_of_order_correlation_id_poisons_and_every_later_call_fails() -> None:
    conn = _ready()
    conn.send(metadata_request(12, None))
    conn.send(metadata_request(12, None))
    assert conn.outstanding() == [1, 2]
    with pytest.raises(ProtocolError, match=r"correlation id 2 does not match the oldest outstanding request \(1\)"):
        conn.receive(_metadata_response(2, 1))
    assert conn.state is ConnectionState.ERROR
    assert isinstance(conn.error, ProtocolError)
    assert conn.outstanding() == []
    # The answer that was due is refused too: the stream cannot be trusted any more.
    with pytest.raises(ProtocolError, match=r"Received \d+ bytes: the connection is unusable after an earlier error"):
        conn.receive(_metadata_response(1, 1))
    with pytest.raises(ProtocolError, match="Cannot send a Metadata request: the connection is unusable"):
        conn.send(metadata_request(12, None))
    with pytest.raises(ProtocolError, match="unusable"):
        conn.connection_made()
    assert conn.state is ConnectionState.ERROR


def test_wrong_correlation_id_during_negotiation_poisons() -> None:
    conn = ClientConnection("kp")
    conn.connection_made()
    with pytest.raises(ProtocolError, match=r"correlation id 3 does not match .* \(0\)"):
        conn.receive(_api_versions_ok(4, 3))
    assert conn.state is ConnectionState.ERROR


def test_response_without_an_outstanding_request_poisons() -> None:
    conn = _ready()
    with pytest.raises(ProtocolError, match="no request was outstanding"):
        conn.receive(_metadata_response(1, 1))
    assert conn.state is ConnectionState.ERROR


@pytest.mark.parametrize("size", [-1, 100 * 1024 * 1024 + 1])
def test_impossible_frame_size_poisons(size: int) -> None:
    conn = _ready()
    with pytest.raises(ProtocolError, match="outside 0.."):
        conn.receive(struct.pack(">i", size))
    assert conn.state is ConnectionState.ERROR


def test_undecodable_response_poisons() -> None:
    conn = _ready()
    conn.send(metadata_request(12, None))
    frame = _metadata_response(1, 1)
    truncated = frame[4:-3]
    with pytest.raises(ProtocolError, match=r"Could not decode a Metadata v12 response \(correlation id 1\)"):
        conn.receive(struct.pack(">i", len(truncated)) + truncated)
    assert conn.state is ConnectionState.ERROR


def test_frame_too_short_for_a_header_poisons_during_the_handshake_and_after() -> None:
    conn = ClientConnection("kp")
    conn.connection_made()
    with pytest.raises(ProtocolError, match="too short"):
        conn.receive(struct.pack(">i", 2) + b"\0\0")
    conn = _ready()
    conn.send(metadata_request(12, None))
    with pytest.raises(ProtocolError, match="Could not read the header"):
        conn.receive(struct.pack(">i", 2) + b"\0\0")
    assert conn.state is ConnectionState.ERROR


# -- requests once READY --------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 3, 64, 10_000])
def test_responses_in_partial_chunks_decode_in_order(chunk: int) -> None:
    conn = _ready()
    for _ in range(3):
        conn.send(metadata_request(12, None))
    stream = b"".join(_metadata_response(1 + i, controller_id=100 + i) for i in range(3))
    received: list[Any] = []
    for start in range(0, len(stream), chunk):
        received += conn.receive(stream[start : start + chunk])
    assert [(cid, r.controller_id) for cid, r in received] == [(1, 100), (2, 101), (3, 102)]
    assert conn.in_flight == 0


def test_each_response_decodes_with_its_own_request_api_and_version() -> None:
    conn = _ready()
    conn.send(metadata_request(1, None))
    conn.send(metadata_request(12, None))
    module = response_module(ApiKey.METADATA, 1)
    v1 = module.MetadataResponse(brokers=(), controller_id=9, topics=())
    [first, second] = conn.receive(encode_response(v1, 1) + _metadata_response(2, 3))
    assert type(first.response) is response_type(ApiKey.METADATA, 1)
    assert type(second.response) is response_type(ApiKey.METADATA, 12)
    assert (first.response.controller_id, second.response.controller_id) == (9, 3)


def test_request_without_response_uses_an_id_but_leaves_nothing_outstanding() -> None:
    conn = _ready()
    request = produce_request(9, acks=0, timeout_ms=1000, topic_data={"t": [(0, b"x")]})
    correlation_id, frame = conn.send(request, expect_response=False)
    assert correlation_id == 1
    assert _requests(frame)[0].correlation_id == 1
    assert conn.outstanding() == []
    assert conn.send(metadata_request(12, None))[0] == 2
    [(cid, response)] = conn.receive(_metadata_response(2, 2))
    assert (cid, response.controller_id) == (2, 2)


# -- the authentication extension point -----------------------------------------------------


class _ScriptedSasl:
    """A sans-IO authenticator in the shape SASL/PLAIN takes: SaslHandshake, then SaslAuthenticate."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[Any] = []

    def start(self, versions: Mapping[int, int]) -> Any:
        self.seen.append(dict(versions))
        return request_module(17, 1).SaslHandshakeRequest(mechanism="PLAIN")

    def on_response(self, response: Any) -> Any:
        self.seen.append(response)
        if len(self.seen) == 2:
            assert tuple(response.mechanisms) == ("PLAIN",)
            return request_module(36, 2).SaslAuthenticateRequest(auth_bytes=b"\0user\0secret")
        if self.refuse:
            raise AuthenticationError(f"SASL authentication failed: {response.error_message}")
        return None


def _sasl_answers(handshake_id: int, authenticate_id: int, code: int = 0) -> tuple[bytes, bytes]:
    handshake = response_module(17, 1).SaslHandshakeResponse(error_code=ErrorCode.none, mechanisms=("PLAIN",))
    authenticate = response_module(36, 2).SaslAuthenticateResponse(
        error_code=ErrorCode(code),
        error_message="bad password" if code else None,
        auth_bytes=b"",
        session_lifetime=datetime.timedelta(0),
    )
    return encode_response(handshake, handshake_id), encode_response(authenticate, authenticate_id)


def test_authenticator_runs_between_negotiation_and_ready() -> None:
    sasl = _ScriptedSasl()
    conn = ClientConnection("kp", authenticator=sasl)
    conn.connection_made()
    [outgoing] = conn.receive(_api_versions_ok(4, 0))
    assert conn.state is ConnectionState.AUTHENTICATING
    assert sasl.seen == [{ApiKey.PRODUCE: 11, ApiKey.METADATA: 12, ApiKey.API_VERSIONS: 4}]
    [request] = _requests(outgoing.data)
    assert (request.api_key, request.api_version, request.correlation_id) == (17, 1, 1)
    with pytest.raises(KafkaConnectionError, match="AUTHENTICATING, not READY"):
        conn.send(metadata_request(12, None))
    handshake, authenticate = _sasl_answers(1, 2)
    [outgoing] = conn.receive(handshake)
    [request] = _requests(outgoing.data)
    assert (request.api_key, request.api_version, request.correlation_id) == (36, 2, 2)
    assert request.request.auth_bytes == b"\0user\0secret"
    [ready] = conn.receive(authenticate)
    assert type(ready) is Ready
    assert conn.state is ConnectionState.READY
    assert conn.send(metadata_request(12, None))[0] == 3


def test_authenticator_with_nothing_to_do_goes_straight_to_ready() -> None:
    class Nothing:
        def start(self, versions: Mapping[int, int]) -> None:
            return None

        def on_response(self, response: Any) -> None:
            raise AssertionError("never called")

    conn = ClientConnection("kp", authenticator=Nothing())
    conn.connection_made()
    [ready] = conn.receive(_api_versions_ok(4, 0))
    assert type(ready) is Ready and conn.state is ConnectionState.READY


def test_authentication_failure_poisons_with_the_authenticators_error() -> None:
    conn = ClientConnection("kp", authenticator=_ScriptedSasl(refuse=True))
    conn.connection_made()
    conn.receive(_api_versions_ok(4, 0))
    handshake, authenticate = _sasl_answers(1, 2, code=58)
    conn.receive(handshake)
    with pytest.raises(AuthenticationError, match="SASL authentication failed: bad password"):
        conn.receive(authenticate)
    assert conn.state is ConnectionState.ERROR
    assert isinstance(conn.error, AuthenticationError)
    with pytest.raises(ProtocolError, match="unusable after an earlier error"):
        conn.send(metadata_request(12, None))


def test_authenticator_bug_becomes_an_authentication_error() -> None:
    class Broken:
        def start(self, versions: Mapping[int, int]) -> Any:
            raise KeyError("mechanism")

        def on_response(self, response: Any) -> None:
            return None

    conn = ClientConnection("kp", authenticator=Broken())
    conn.connection_made()
    with pytest.raises(AuthenticationError, match="The authenticator failed: KeyError"):
        conn.receive(_api_versions_ok(4, 0))
    assert conn.state is ConnectionState.ERROR


def test_reauthentication_on_a_ready_connection_lets_earlier_answers_through() -> None:
    conn = _ready()
    conn.send(metadata_request(12, None))
    frame = conn.reauthenticate(_ScriptedSasl())
    assert conn.state is ConnectionState.AUTHENTICATING
    [request] = _requests(frame)
    assert (request.api_key, request.correlation_id) == (17, 2)
    with pytest.raises(KafkaConnectionError, match="AUTHENTICATING, not READY"):
        conn.send(metadata_request(12, None))
    handshake, authenticate = _sasl_answers(2, 3)
    # The Metadata answer sent before the re-authentication comes first, as a Response.
    events = conn.receive(_metadata_response(1, controller_id=4) + handshake)
    assert [type(e) for e in events] == [Response, Outgoing]
    assert (events[0].correlation_id, events[0].response.controller_id) == (1, 4)
    assert _requests(events[1].data)[0].api_key == 36
    [ready] = conn.receive(authenticate)
    assert type(ready) is Ready and conn.state is ConnectionState.READY
    assert conn.send(metadata_request(12, None))[0] == 4


def test_reauthentication_is_refused_unless_ready() -> None:
    conn = ClientConnection("kp")
    with pytest.raises(KafkaConnectionError, match="Cannot re-authenticate: the connection is CONNECTING"):
        conn.reauthenticate(_ScriptedSasl())
    assert conn.state is ConnectionState.CONNECTING


# -- any bytes ------------------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(data=st.binary(max_size=300), negotiated=st.booleans())
def test_any_bytes_give_events_or_a_protocol_error_never_anything_else(data: bytes, negotiated: bool) -> None:
    conn = ClientConnection("kp")
    if negotiated:
        _ready(conn)
        conn.send(metadata_request(12, None))
        conn.send(metadata_request(1, None))
    else:
        conn.connection_made()
    try:
        events = conn.receive(data)
    except ProtocolError:
        assert conn.state is ConnectionState.ERROR
        with pytest.raises(ProtocolError, match="unusable after an earlier error"):
            conn.receive(b"")
    else:
        assert conn.state is not ConnectionState.ERROR
        for event in events:
            assert type(event) in ((Response,) if negotiated else (Outgoing, Ready))


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    return [stream[start:end] for start, end in zip(points, points[1:])]


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(cuts=st.lists(st.integers(min_value=0, max_value=2_000), max_size=12))
def test_a_stream_cut_anywhere_gives_the_same_events(cuts: list[int]) -> None:
    conn = ClientConnection("kp")
    conn.connection_made()
    handshake: list[Any] = []
    for chunk in _cut(_api_versions_ok(4, 0), cuts):
        handshake += conn.receive(chunk)
    assert [type(e) for e in handshake] == [Ready]
    for _ in range(3):
        conn.send(metadata_request(12, None))
    responses: list[Any] = []
    for chunk in _cut(b"".join(_metadata_response(1 + i, controller_id=i) for i in range(3)), cuts):
        responses += conn.receive(chunk)
    assert [(e.correlation_id, e.response.controller_id) for e in responses] == [(1, 0), (2, 1), (3, 2)]
    assert conn.in_flight == 0
