"""The embedded cluster's TLS and SASL listeners, checked with third-party clients and raw requests.

confluent-kafka, kafka-python and aiokafka each produce records over SSL,
mTLS, SASL_PLAINTEXT (SCRAM-SHA-256) and SASL_SSL (PLAIN, SCRAM-SHA-512)
with the settings ``client_config`` gives, and read them back with their own
consumer: every key, value, header and offset must match what the cluster
stored. Refusals are checked where the client reports them (bad password,
wrong CA, missing client certificate) and on the wire with a raw socket
(SASL_AUTHENTICATION_FAILED with its message, UNSUPPORTED_SASL_MECHANISM
listing the enabled ones, a request before authentication closing the
connection, session lifetime and re-authentication, SaslHandshake v0).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kprod.cluster import ClusterError, EmbeddedCluster
from kprod.protocol.framing import decode_response, encode_request
from kprod.protocol.messages import request_type

pytest.importorskip("trustme")

TOPIC = "secure"
COUNT = 30
USERS = {"alice": "alice-secret", "bob": "bob-secret"}

# (id, EmbeddedCluster keyword arguments, SASL mechanism used by the client)
SETUPS = [
    ("ssl", {"security_protocol": "SSL"}, None),
    ("mtls", {"security_protocol": "SSL", "ssl_client_auth": "required"}, None),
    (
        "sasl_plaintext-scram256",
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanisms": ("SCRAM-SHA-256",), "users": USERS},
        "SCRAM-SHA-256",
    ),
    (
        "sasl_ssl-plain",
        {"security_protocol": "SASL_SSL", "sasl_mechanisms": ("PLAIN", "SCRAM-SHA-512"), "users": USERS},
        "PLAIN",
    ),
    (
        "sasl_ssl-scram512",
        {"security_protocol": "SASL_SSL", "sasl_mechanisms": ("PLAIN", "SCRAM-SHA-512"), "users": USERS},
        "SCRAM-SHA-512",
    ),
]

Stored = list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]  # offset, key, value, headers


def _records(client: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return [
        (f"key-{i}".encode(), f"{client} secured value {i}".encode(), [("n", str(i).encode())]) for i in range(COUNT)
    ]


def _stored(cluster: EmbeddedCluster) -> Stored:
    return [(r.offset, r.key, r.value, list(r.headers)) for r in cluster.records(TOPIC, 0)]


def _expected(client: str) -> Stored:
    return [(i, key, value, headers) for i, (key, value, headers) in enumerate(_records(client))]


@pytest.fixture(params=SETUPS, ids=[s[0] for s in SETUPS])
def secured(request: pytest.FixtureRequest) -> Iterator[tuple[EmbeddedCluster, str | None]]:
    _, options, mechanism = request.param
    with EmbeddedCluster(brokers=3, **options) as cluster:
        cluster.create_topic(TOPIC, partitions=1, replication_factor=3)
        yield cluster, mechanism
        assert cluster.internal_errors() == []


def _python_client_options(cluster: EmbeddedCluster, mechanism: str | None, user: str = "alice") -> dict[str, Any]:
    """kafka-python / aiokafka keyword arguments from the cluster's librdkafka-style settings."""
    config = cluster.client_config(user, mechanism=mechanism, style="librdkafka")
    options: dict[str, Any] = {
        "bootstrap_servers": config["bootstrap.servers"],
        "security_protocol": config["security.protocol"],
    }
    if "ssl.ca.pem" in config:
        options["ssl_context"] = cluster.ssl_context(user)
    if "sasl.mechanisms" in config:
        options["sasl_mechanism"] = config["sasl.mechanisms"]
        options["sasl_plain_username"] = config["sasl.username"]
        options["sasl_plain_password"] = config["sasl.password"]
    return options


# -- round trips with each client ------------------------------------------------------------------


def test_confluent_kafka_round_trip(secured: tuple[EmbeddedCluster, str | None]) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    cluster, mechanism = secured
    config = cluster.client_config("alice", mechanism=mechanism, style="librdkafka")
    producer = confluent_kafka.Producer({**config, "enable.idempotence": True, "linger.ms": 5})
    errors: list[Any] = []
    for key, value, headers in _records("confluent"):
        producer.produce(TOPIC, key=key, value=value, headers=headers, on_delivery=lambda e, m: errors.append(e))
    assert producer.flush(30) == 0
    assert errors == [None] * COUNT
    assert _stored(cluster) == _expected("confluent")

    consumer = confluent_kafka.Consumer({**config, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, 0)])
    consumed: Stored = []
    deadline = time.monotonic() + 30
    while len(consumed) < COUNT and time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.5):
            assert msg.error() is None, msg.error()
            consumed.append((msg.offset(), msg.key(), msg.value(), list(msg.headers())))
    consumer.close()
    assert consumed == _expected("confluent")


def test_kafka_python_round_trip(secured: tuple[EmbeddedCluster, str | None]) -> None:
    kafka = pytest.importorskip("kafka")
    cluster, mechanism = secured
    options = _python_client_options(cluster, mechanism)
    producer = kafka.KafkaProducer(acks="all", linger_ms=5, **options)
    futures = [producer.send(TOPIC, key=k, value=v, headers=h) for k, v, h in _records("kafka-python")]
    producer.flush(30)
    assert [f.get(timeout=0).offset for f in futures] == list(range(COUNT))
    producer.close()
    assert _stored(cluster) == _expected("kafka-python")

    consumer = kafka.KafkaConsumer(group_id=None, enable_auto_commit=False, **options)
    consumer.assign([kafka.TopicPartition(TOPIC, 0)])
    consumer.seek_to_beginning()
    consumed: Stored = []
    deadline = time.monotonic() + 30
    while len(consumed) < COUNT and time.monotonic() < deadline:
        for messages in consumer.poll(timeout_ms=500).values():
            consumed.extend((m.offset, m.key, m.value, list(m.headers)) for m in messages)
    consumer.close()
    assert consumed == _expected("kafka-python")


def test_aiokafka_round_trip(secured: tuple[EmbeddedCluster, str | None]) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.structs import TopicPartition

    cluster, mechanism = secured
    options = _python_client_options(cluster, mechanism)

    async def run() -> tuple[list[int], Stored]:
        producer = aiokafka.AIOKafkaProducer(acks="all", **options)
        await producer.start()
        try:
            futures = [await producer.send(TOPIC, key=k, value=v, headers=h) for k, v, h in _records("aiokafka")]
            offsets = [(await f).offset for f in futures]
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(enable_auto_commit=False, **options)
        await consumer.start()
        consumed: Stored = []
        try:
            consumer.assign([TopicPartition(TOPIC, 0)])
            await consumer.seek_to_beginning()
            deadline = time.monotonic() + 30
            while len(consumed) < COUNT and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    consumed.extend((m.offset, m.key, m.value, list(m.headers)) for m in messages)
        finally:
            await consumer.stop()
        return offsets, consumed

    offsets, consumed = asyncio.run(run())
    assert offsets == list(range(COUNT))
    assert _stored(cluster) == _expected("aiokafka")
    assert consumed == _expected("aiokafka")


def test_kprod_producer_round_trip(secured: tuple[EmbeddedCluster, str | None]) -> None:
    """kprod's own producer with the Java-style settings; confluent-kafka reads the records back."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from kprod import Producer
    from kprod.errors import ConfigError

    cluster, mechanism = secured
    try:
        producer = Producer({**cluster.client_config("alice", mechanism=mechanism), "linger.ms": 5})
    except ConfigError as exc:
        if "not supported yet" in str(exc):
            pytest.skip(f"this kprod producer has no TLS/SASL yet: {exc}")
        raise
    with producer:
        futures = [producer.send(TOPIC, key=k, value=v, headers=h) for k, v, h in _records("kprod")]
        assert [f.result(30).offset for f in futures] == list(range(COUNT))
    assert _stored(cluster) == _expected("kprod")
    consumer = confluent_kafka.Consumer(
        {
            **cluster.client_config("alice", mechanism=mechanism, style="librdkafka"),
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, 0)])
    consumed: Stored = []
    deadline = time.monotonic() + 30
    while len(consumed) < COUNT and time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.5):
            assert msg.error() is None, msg.error()
            consumed.append((msg.offset(), msg.key(), msg.value(), list(msg.headers())))
    consumer.close()
    assert consumed == _expected("kprod")


# -- refusals seen by the clients ---------------------------------------------------------------------


@pytest.fixture
def sasl_ssl() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(
        brokers=1, security_protocol="SASL_SSL", sasl_mechanisms=("PLAIN", "SCRAM-SHA-512"), users=USERS
    ) as cluster:
        cluster.create_topic(TOPIC)
        yield cluster
        assert cluster.internal_errors() == []


def _confluent_error(config: dict[str, str]) -> Any:
    """The first error confluent-kafka reports for a producer with ``config`` (None if it delivers)."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    reported: list[Any] = []
    producer = confluent_kafka.Producer(
        {**config, "error_cb": reported.append, "message.timeout.ms": 3000, "reconnect.backoff.ms": 100}
    )
    producer.produce(TOPIC, b"must not arrive", on_delivery=lambda e, m: e is not None and reported.append(e))
    deadline = time.monotonic() + 20
    while not reported and time.monotonic() < deadline:
        producer.poll(0.1)
    producer.purge()
    producer.flush(5)
    return reported[0] if reported else None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_bad_password_is_refused_confluent_kafka(sasl_ssl: EmbeddedCluster, mechanism: str) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    config = {**sasl_ssl.client_config("alice", mechanism=mechanism, style="librdkafka"), "sasl.password": "wrong"}
    error = _confluent_error(config)
    assert error is not None
    assert error.code() == confluent_kafka.KafkaError._AUTHENTICATION
    assert "Authentication failed" in error.str()
    assert sasl_ssl.records(TOPIC, 0) == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_bad_password_is_refused_kafka_python(
    sasl_ssl: EmbeddedCluster, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = pytest.importorskip("kafka")
    from kafka.errors import KafkaTimeoutError

    options = {**_python_client_options(sasl_ssl, mechanism), "sasl_plain_password": "wrong"}
    with caplog.at_level("WARNING", logger="kafka"), pytest.raises(KafkaTimeoutError):
        kafka.KafkaProducer(bootstrap_timeout_ms=3000, max_block_ms=3000, **options).send(TOPIC, b"must not arrive").get(timeout=5)
    # kafka-python reports the broker's answer in its log, then gives up bootstrapping
    assert any(
        "[Error 58] SaslAuthenticationFailedError" in r.getMessage()
        and "Authentication failed: Invalid " in r.getMessage()
        for r in caplog.records
    )
    assert sasl_ssl.records(TOPIC, 0) == []


def test_bad_password_is_refused_aiokafka(sasl_ssl: EmbeddedCluster, caplog: pytest.LogCaptureFixture) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.errors import KafkaConnectionError

    options = {**_python_client_options(sasl_ssl, "SCRAM-SHA-512"), "sasl_plain_password": "wrong"}

    async def run() -> None:
        producer = aiokafka.AIOKafkaProducer(request_timeout_ms=5000, **options)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with caplog.at_level("ERROR", logger="aiokafka"), pytest.raises(KafkaConnectionError):
        asyncio.run(run())
    # aiokafka logs the broker's answer, then reports that it could not bootstrap
    assert any(
        "[Error 58] SaslAuthenticationFailed: Authentication failed: Invalid user credentials" in r.getMessage()
        for r in caplog.records
    )


def test_wrong_ca_is_refused(sasl_ssl: EmbeddedCluster) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    trustme = pytest.importorskip("trustme")
    other_ca = trustme.CA().cert_pem.bytes().decode()
    config = {**sasl_ssl.client_config("alice", style="librdkafka"), "ssl.ca.pem": other_ca}
    error = _confluent_error(config)
    assert error is not None
    assert error.code() in (confluent_kafka.KafkaError._SSL, confluent_kafka.KafkaError._TRANSPORT)
    assert "certificate verify failed" in error.str()
    # and with Python's ssl module: the handshake fails on the client's side
    host, port = sasl_ssl.bootstrap_servers.split(",")[0].split(":")
    context = ssl.create_default_context(cadata=other_ca)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(sock, server_hostname=host)
    assert sasl_ssl.records(TOPIC, 0) == []


def test_mtls_refuses_a_client_without_certificate() -> None:
    with EmbeddedCluster(brokers=1, security_protocol="SSL", ssl_client_auth="required") as cluster:
        host, port = cluster.bootstrap_servers.split(":")
        context = ssl.create_default_context(cadata=cluster.ca_pem)  # trusts the broker, has no certificate
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                # TLS 1.3 reports the missing certificate after the handshake: the first read fails or sees EOF
                tls.sendall(_frame(request_type(18, 0)(), 1))
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    if not tls.recv(4):
                        raise ConnectionResetError("closed")
        with socket.create_connection((host, int(port)), timeout=10) as sock:  # with a certificate: served
            with cluster.ssl_context("carol").wrap_socket(sock, server_hostname=host) as tls:
                client = RawClient(tls)
                assert client.request(18, 0).error_code == 0
        assert cluster.internal_errors() == []


def test_oauthbearer_unsecured_jwt_confluent_kafka() -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    with EmbeddedCluster(brokers=1, security_protocol="SASL_SSL", sasl_mechanisms=("OAUTHBEARER",)) as cluster:
        cluster.create_topic(TOPIC)
        config = cluster.client_config("svc-orders", style="librdkafka")
        assert config["sasl.oauthbearer.config"] == "principal=svc-orders"
        producer = confluent_kafka.Producer(config)
        producer.produce(TOPIC, b"via unsecured jwt", key=b"k")
        assert producer.flush(20) == 0
        assert [(r.key, r.value) for r in cluster.records(TOPIC, 0)] == [(b"k", b"via unsecured jwt")]
        assert cluster.internal_errors() == []


def _unsecured_jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def _accept_known_tokens(token: str) -> str:
    if token != "opaque-token-of-alice":
        raise ValueError("unknown token")
    return "alice"


def test_oauthbearer_token_callback_and_custom_validator() -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    with EmbeddedCluster(
        brokers=1,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanisms=("OAUTHBEARER",),
        oauthbearer_validator=_accept_known_tokens,
    ) as cluster:
        cluster.create_topic(TOPIC)
        base = {"bootstrap.servers": cluster.bootstrap_servers, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "OAUTHBEARER"}

        def good_token(config: Any) -> tuple[str, float]:
            return "opaque-token-of-alice", time.time() + 3600

        producer = confluent_kafka.Producer({**base, "oauth_cb": good_token})
        producer.produce(TOPIC, b"with a provider's token")
        assert producer.flush(20) == 0
        assert [r.value for r in cluster.records(TOPIC, 0)] == [b"with a provider's token"]

        error = _confluent_error({**base, "oauth_cb": lambda config: ("stolen-token", time.time() + 3600)})
        assert error is not None and error.code() == confluent_kafka.KafkaError._AUTHENTICATION
        assert "unknown token" in error.str()
        assert [r.value for r in cluster.records(TOPIC, 0)] == [b"with a provider's token"]


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_clients_reauthenticate_within_the_session_lifetime(client: str) -> None:
    """Both clients implement KIP-368: with a 1.2 s session (kafka-python's floor is 1 s) they
    re-authenticate on the same connections and keep producing, nothing lost or reordered."""
    with EmbeddedCluster(
        brokers=1,
        security_protocol="SASL_SSL",
        sasl_mechanisms=("SCRAM-SHA-512",),
        users=USERS,
        config={"connections.max.reauth.ms": 1200},
    ) as cluster:
        cluster.create_topic(TOPIC)

        def reauthentications() -> int:
            return sum(1 for a in cluster.authentications() if a.reauthentication)

        values: list[bytes] = []
        deadline = time.monotonic() + 30
        if client == "confluent-kafka":
            confluent_kafka = pytest.importorskip("confluent_kafka")
            producer = confluent_kafka.Producer(cluster.client_config("alice", style="librdkafka"))
            while reauthentications() < 2 and time.monotonic() < deadline:
                values.append(b"%d" % len(values))
                producer.produce(TOPIC, values[-1])
                assert producer.flush(10) == 0
                producer.poll(0.05)
        else:
            kafka = pytest.importorskip("kafka")
            producer = kafka.KafkaProducer(**_python_client_options(cluster, "SCRAM-SHA-512"))
            while reauthentications() < 2 and time.monotonic() < deadline:
                values.append(b"%d" % len(values))
                producer.send(TOPIC, values[-1]).get(timeout=10)
            producer.close()
        assert reauthentications() >= 2
        assert {(a.principal, a.mechanism) for a in cluster.authentications()} == {("alice", "SCRAM-SHA-512")}
        assert [r.value for r in cluster.records(TOPIC, 0)] == values
        assert [r.offset for r in cluster.records(TOPIC, 0)] == list(range(len(values)))
        assert cluster.internal_errors() == []


# -- the wire: raw requests on a socket ------------------------------------------------------------


def _frame(entity: Any, correlation_id: int) -> bytes:
    return encode_request(entity, correlation_id, "raw-test")


class RawClient:
    """One request at a time over a (possibly TLS) socket; None when the broker closes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.correlation_id = 0

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def read_frame(self) -> bytes | None:
        head = self._read(4)
        if head is None:
            return None
        return self._read(struct.unpack(">i", head)[0])

    def request(self, api_key: int, version: int, **fields: Any) -> Any:
        self.correlation_id += 1
        self.sock.sendall(_frame(request_type(api_key, version)(**fields), self.correlation_id))
        frame = self.read_frame()
        if frame is None:
            return None
        correlation_id, response = decode_response(frame, api_key, version)
        assert correlation_id == self.correlation_id
        return response

    def handshake(self, mechanism: str, version: int = 1) -> Any:
        return self.request(17, version, mechanism=mechanism)

    def authenticate(self, token: bytes, version: int = 2) -> Any:
        return self.request(36, version, auth_bytes=token)

    def plain(self, user: str, password: str, version: int = 2) -> Any:
        assert self.handshake("PLAIN").error_code == 0
        return self.authenticate(b"\0" + user.encode() + b"\0" + password.encode(), version)

    def metadata(self) -> Any:
        return self.request(3, 1, topics=None)


@pytest.fixture
def sasl_plaintext() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(
        brokers=1,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanisms=("PLAIN", "SCRAM-SHA-256"),
        users=USERS,
        config={"connections.max.reauth.ms": 400},
    ) as cluster:
        cluster.create_topic(TOPIC)
        yield cluster
        assert cluster.internal_errors() == []


def _raw(cluster: EmbeddedCluster) -> RawClient:
    host, port = cluster.bootstrap_servers.split(",")[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return RawClient(sock)


def test_api_versions_advertise_sasl_only_on_sasl_listeners(sasl_plaintext: EmbeddedCluster) -> None:
    client = _raw(sasl_plaintext)
    keys = {k.api_key: (k.min_version, k.max_version) for k in client.request(18, 3, client_software_name="raw",
                                                                              client_software_version="1").api_keys}
    assert keys[17] == (0, 1) and keys[36] == (0, 2)
    with EmbeddedCluster(brokers=1) as plain:
        keys = {k.api_key for k in _raw(plain).request(18, 0).api_keys}
        assert 17 not in keys and 36 not in keys
        assert _raw(plain).handshake("PLAIN") is None  # not served: the connection closes


def test_request_before_authentication_closes_the_connection(sasl_plaintext: EmbeddedCluster) -> None:
    assert _raw(sasl_plaintext).metadata() is None
    client = _raw(sasl_plaintext)
    assert client.request(18, 0).error_code == 0  # ApiVersions is served before SASL
    assert client.handshake("PLAIN").error_code == 0
    assert client.metadata() is None  # still not authenticated


def test_bad_credentials_answer_sasl_authentication_failed(sasl_plaintext: EmbeddedCluster) -> None:
    client = _raw(sasl_plaintext)
    response = client.plain("alice", "wrong")
    assert response.error_code == 58  # SASL_AUTHENTICATION_FAILED
    assert response.error_message == "Authentication failed: Invalid username or password"
    assert client.metadata() is None  # and the connection is done for
    unknown = _raw(sasl_plaintext).plain("mallory", "alice-secret")
    assert unknown.error_code == 58


def test_unknown_mechanism_lists_the_enabled_ones(sasl_plaintext: EmbeddedCluster) -> None:
    response = _raw(sasl_plaintext).handshake("SCRAM-SHA-512")
    assert response.error_code == 33  # UNSUPPORTED_SASL_MECHANISM
    assert list(response.mechanisms) == ["PLAIN", "SCRAM-SHA-256"]


def _wait_past(deadline: float) -> None:
    while time.monotonic() < deadline:
        time.sleep(0.02)


def test_session_lifetime_is_returned_and_enforced(sasl_plaintext: EmbeddedCluster) -> None:
    client = _raw(sasl_plaintext)
    before = time.monotonic()
    response = client.plain("alice", "alice-secret")
    assert response.error_code == 0
    assert 0 < response.session_lifetime.total_seconds() * 1000 <= 400
    assert client.metadata().brokers[0].node_id == 0
    _wait_past(before + 0.5)
    assert client.metadata() is None  # past its lifetime without re-authentication: closed


def test_reauthentication_extends_the_session(sasl_plaintext: EmbeddedCluster) -> None:
    client = _raw(sasl_plaintext)
    assert client.plain("alice", "alice-secret").error_code == 0
    for _ in range(3):
        started = time.monotonic()
        assert client.plain("alice", "alice-secret").error_code == 0  # re-authenticate within the lifetime
        assert client.metadata() is not None
        _wait_past(started + 0.2)
    # another principal may not take over the connection
    refused = client.plain("bob", "bob-secret")
    assert refused.error_code == 58 and "principal may not change" in refused.error_message
    assert client.metadata() is None
    assert [tuple(a) for a in sasl_plaintext.authentications()] == [("alice", "PLAIN", False)] + [
        ("alice", "PLAIN", True)
    ] * 3


def test_scram_on_the_wire_returns_a_verifiable_server_signature(sasl_plaintext: EmbeddedCluster) -> None:
    import hashlib
    import hmac

    client = _raw(sasl_plaintext)
    assert client.handshake("SCRAM-SHA-256").error_code == 0
    first_bare = "n=alice,r=clientnonce123"
    server_first = client.authenticate(("n,," + first_bare).encode()).auth_bytes.decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    assert fields["r"].startswith("clientnonce123") and int(fields["i"]) >= 4096
    salted = hashlib.pbkdf2_hmac("sha256", b"alice-secret", base64.b64decode(fields["s"]), int(fields["i"]))
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    final = client.authenticate(f"{final_bare},p={proof}".encode())
    assert final.error_code == 0
    expected = hmac.digest(hmac.digest(salted, b"Server Key", "sha256"), auth_message, "sha256")
    assert final.auth_bytes == b"v=" + base64.b64encode(expected)
    assert client.metadata() is not None


def test_sasl_handshake_v0_takes_bare_tokens(sasl_plaintext: EmbeddedCluster) -> None:
    client = _raw(sasl_plaintext)
    assert client.handshake("PLAIN", version=0).error_code == 0
    token = b"\0alice\0alice-secret"
    client.sock.sendall(struct.pack(">i", len(token)) + token)
    assert client.read_frame() == b""  # an empty server token: authenticated
    assert client.metadata() is not None
    refused = _raw(sasl_plaintext)
    assert refused.handshake("PLAIN", version=0).error_code == 0
    token = b"\0alice\0wrong"
    refused.sock.sendall(struct.pack(">i", len(token)) + token)
    assert refused.read_frame() is None  # v0 has no error response: the connection closes


def test_oauthbearer_expired_or_signed_tokens_are_refused() -> None:
    with EmbeddedCluster(brokers=1, security_protocol="SASL_PLAINTEXT", sasl_mechanisms=("OAUTHBEARER",)) as cluster:

        def attempt(token: str) -> Any:
            client = _raw(cluster)
            assert client.handshake("OAUTHBEARER").error_code == 0
            return client.authenticate(f"n,,\x01auth=Bearer {token}\x01\x01".encode())

        good = attempt(_unsecured_jwt({"sub": "alice", "exp": time.time() + 60}))
        assert good.error_code == 0
        expired = attempt(_unsecured_jwt({"sub": "alice", "exp": time.time() - 1}))
        assert expired.error_code == 58 and "expired" in expired.error_message
        no_sub = attempt(_unsecured_jwt({"exp": time.time() + 60}))
        assert no_sub.error_code == 58 and "'sub'" in no_sub.error_message
        signed = attempt(_unsecured_jwt({"sub": "a", "exp": time.time() + 60}).replace("eyJhbGciOiAibm9uZSJ9", "eyJhbGciOiAiUlMyNTYifQ") + "sig")
        assert signed.error_code == 58 and "unsecured" in signed.error_message


# -- child process, CLI and bad arguments ---------------------------------------------------------------


def test_child_process_cluster_serves_sasl_ssl() -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    with EmbeddedCluster(
        brokers=2, process=True, security_protocol="SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",), users=USERS
    ) as cluster:
        cluster.create_topic(TOPIC, replication_factor=2)
        producer = confluent_kafka.Producer(cluster.client_config("bob", style="librdkafka"))
        for i in range(5):
            producer.produce(TOPIC, b"%d" % i)
        assert producer.flush(20) == 0
        assert [r.value for r in cluster.records(TOPIC, 0)] == [b"0", b"1", b"2", b"3", b"4"]
        bad = {**cluster.client_config("bob", style="librdkafka"), "sasl.password": "nope"}
        error = _confluent_error(bad)
        assert error is not None and error.code() == confluent_kafka.KafkaError._AUTHENTICATION


def test_cli_prints_settings_without_the_password(tmp_path: Any) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    ca_file = tmp_path / "ca.pem"
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from kprod.cli.main import main; sys.exit(main())", "cluster", "--brokers", "1", "--security-protocol", "SASL_SSL",
         "--sasl-mechanism", "PLAIN", "--user", "alice:cli-secret-42", "--ca-file", str(ca_file),
         "--topic", f"{TOPIC}:1:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n")]
        while lines[-1]:
            lines.append(process.stdout.readline().rstrip("\n"))
        bootstrap = lines[0]
        settings = dict(line.split("=", 1) for line in lines[1:-1])
        assert settings["bootstrap.servers"] == bootstrap
        assert settings["security.protocol"] == "SASL_SSL"
        assert settings["sasl.mechanism"] == "PLAIN"
        assert settings["ssl.truststore.type"] == "PEM"
        assert settings["ssl.truststore.location"] == str(ca_file)
        assert 'username="alice"' in settings["sasl.jaas.config"]
        assert "cli-secret-42" not in "\n".join(lines)
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN",
             "sasl.username": "alice", "sasl.password": "cli-secret-42", "ssl.ca.location": str(ca_file)}
        )
        producer.produce(TOPIC, b"through the CLI's cluster")
        assert producer.flush(20) == 0
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "NOT a production broker" in stderr
    assert "cli-secret-42" not in stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"security_protocol": "SASL_SSSL"}, "Did you mean 'SASL_SSL'"),
        ({"security_protocol": "PLAINTEXT", "users": USERS}, "users are SASL credentials"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanisms": ("GSSAPI",), "users": USERS}, "PLAIN, SCRAM-SHA-256"),
        ({"security_protocol": "SASL_SSL"}, "PLAIN and SCRAM need users"),
        ({"security_protocol": "SASL_PLAINTEXT", "users": USERS, "ssl_client_auth": "required"}, "needs security_protocol SSL"),
        ({"security_protocol": "SSL", "ssl_client_auth": "maybe"}, "ssl_client_auth 'maybe' is not supported"),
        ({"security_protocol": "SSL", "sasl_mechanisms": ("PLAIN",)}, "sasl_mechanisms needs"),
        ({"security_protocol": "SASL_SSL", "users": USERS, "oauthbearer_validator": _accept_known_tokens}, "needs OAUTHBEARER"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanisms": ("OAUTHBEARER",), "process": True,
          "oauthbearer_validator": lambda token: "x"}, "picklable"),
        ({"config": {"connections.max.reauth.ms": -1}}, "below its minimum 0"),
        ({"security_protocol": "SASL_SSL", "users": [("alice", "x")]}, "users must map user names"),
        ({"security_protocol": "SASL_SSL", "users": USERS, "sasl_mechanisms": 5}, "sequence of mechanism names"),
    ],
)
def test_bad_security_arguments_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ClusterError, match=message.replace("(", r"\(")):
        EmbeddedCluster(brokers=1, **options)


def test_client_config_shapes_and_errors() -> None:
    cluster = EmbeddedCluster(brokers=1, security_protocol="SASL_SSL", sasl_mechanisms=("SCRAM-SHA-512",), users=USERS)
    with pytest.raises(ClusterError, match="not started"):
        cluster.client_config("alice")
    with cluster:
        java = cluster.client_config("alice")
        assert java == {
            "bootstrap.servers": cluster.bootstrap_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required'
            ' username="alice" password="alice-secret";',
            "ssl.truststore.type": "PEM",
            "ssl.truststore.certificates": cluster.ca_pem,
        }
        assert cluster.ca_pem.startswith("-----BEGIN CERTIFICATE-----")
        with pytest.raises(ClusterError, match="Name the user"):
            cluster.client_config()
        with pytest.raises(ClusterError, match="Unknown user 'eve'"):
            cluster.client_config("eve")
        with pytest.raises(ClusterError, match="mechanism 'PLAIN' is not supported"):
            cluster.client_config("alice", mechanism="PLAIN")
    with EmbeddedCluster(brokers=1) as plain:
        assert plain.client_config() == {"bootstrap.servers": plain.bootstrap_servers, "security.protocol": "PLAINTEXT"}
        with pytest.raises(ClusterError, match="has no CA"):
            plain.ca_pem
    with EmbeddedCluster(brokers=1, security_protocol="SSL", ssl_client_auth="required") as mtls:
        keystore = mtls.client_config("carol")
        assert keystore["ssl.keystore.type"] == "PEM"
        assert keystore["ssl.keystore.key"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Java reads
        assert keystore["ssl.keystore.certificate.chain"].startswith("-----BEGIN CERTIFICATE-----")


def test_the_documented_example_passes(tmp_path: Any) -> None:
    """docs/embedded-cluster.md's security example, run as the pytest module it shows."""
    pytest.importorskip("confluent_kafka")
    doc = (Path(__file__).parents[2] / "docs" / "embedded-cluster.md").read_text(encoding="utf-8")
    start = doc.index("```python\n# test_secure_app.py\n") + len("```python\n")
    (tmp_path / "test_secure_app.py").write_text(doc[start : doc.index("```", start)], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_secure_app.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_broken_validator_refuses_the_token_not_the_broker() -> None:
    def broken(token: str) -> tuple[str, float]:
        return ("alice", "not a time")  # type: ignore[return-value]

    with EmbeddedCluster(
        brokers=1, security_protocol="SASL_PLAINTEXT", sasl_mechanisms=("OAUTHBEARER",), oauthbearer_validator=broken
    ) as cluster:
        client = _raw(cluster)
        assert client.handshake("OAUTHBEARER").error_code == 0
        response = client.authenticate(b"n,,\x01auth=Bearer anything\x01\x01")
        assert response.error_code == 58 and "could not convert string to float" in response.error_message
        assert cluster.authentications() == []
        assert cluster.internal_errors() == []


def test_tls_without_trustme_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # as if it were not installed
    with pytest.raises(ClusterError, match=r"pip install 'kprod\[tls\]'"):
        EmbeddedCluster(brokers=1, security_protocol="SSL")
    EmbeddedCluster(brokers=1, security_protocol="SASL_PLAINTEXT", users=USERS)  # no TLS, no trustme needed


def test_plaintext_to_a_tls_port_and_tls_to_a_plaintext_port_close_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with EmbeddedCluster(brokers=1, security_protocol="SSL") as secured, EmbeddedCluster(brokers=1) as plain:
        with caplog.at_level("INFO", logger="kprod.cluster"):
            raw = _raw(secured)
            try:
                assert raw.request(18, 0) is None  # a Kafka request is no TLS record
            except ConnectionResetError:
                pass
            host, port = plain.bootstrap_servers.split(":")
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    ssl.create_default_context(cadata=secured.ca_pem).wrap_socket(sock, server_hostname=host)
        messages = [r.getMessage() for r in caplog.records]
        assert any("TLS with" in m and "failed, closing" in m for m in messages)
        assert any("does not speak the Kafka protocol" in m for m in messages)
        assert secured.internal_errors() == [] and plain.internal_errors() == []
