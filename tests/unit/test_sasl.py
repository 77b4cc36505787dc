"""SASL mechanisms, the KIP-152 exchange and JAAS lines, without a broker."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac

import pytest

from kprod.errors import (
    AuthenticationError,
    ConfigError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)
from kprod.protocol.messages import ApiKey, response_type
from kprod.protocol.sasl import OAuthBearer, Plain, SaslAuthenticator, Scram, parse_jaas

# RFC 7677 section 3: SCRAM-SHA-256, user "user", password "pencil".
RFC7677_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC7677_CLIENT_FINAL = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha256_matches_rfc7677() -> None:
    scram = Scram("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
    assert scram.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert scram.step(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    assert scram.step(RFC7677_SERVER_FINAL) is None


def test_scram_rejects_a_wrong_server_signature() -> None:
    scram = Scram("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
    scram.first()
    scram.step(RFC7677_SERVER_FIRST)
    bad = b"v=" + base64.b64encode(b"\0" * 32)
    with pytest.raises(AuthenticationError, match="server signature is wrong"):
        scram.step(bad)


def test_scram_rejects_few_iterations_and_foreign_nonce() -> None:
    scram = Scram("SCRAM-SHA-512", "u", "p", nonce="abc")
    scram.first()
    with pytest.raises(AuthenticationError, match="iterations"):
        scram.step(b"r=abcdef,s=QUJD,i=1000")
    scram = Scram("SCRAM-SHA-512", "u", "p", nonce="abc")
    scram.first()
    with pytest.raises(AuthenticationError, match="nonce"):
        scram.step(b"r=xyz123,s=QUJD,i=4096")


def _sha512_server(password: str, salt: bytes, client_first: bytes, server_nonce: str) -> tuple[bytes, bytes, bytes]:
    """An independent SCRAM-SHA-512 server computation (RFC 5802 section 3)."""
    bare = client_first[3:]
    nonce = bare.split(b",r=")[1].decode() + server_nonce
    server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096".encode()
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 4096)
    without_proof = f"c=biws,r={nonce}".encode()
    auth = bare + b"," + server_first + b"," + without_proof
    server_sig = hmac.new(hmac.new(salted, b"Server Key", "sha512").digest(), auth, "sha512").digest()
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    sig = hmac.new(hashlib.sha512(client_key).digest(), auth, "sha512").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return server_first, without_proof + b",p=" + base64.b64encode(proof), b"v=" + base64.b64encode(server_sig)


def test_scram_sha512_round_trip_and_name_escaping() -> None:
    scram = Scram("SCRAM-SHA-512", "a=b,c", "s3cret")
    first = scram.first()
    assert first.startswith(b"n,,n=a=3Db=2Cc,r=")
    server_first, expected_final, server_final = _sha512_server("s3cret", b"salty", first, "SRV")
    assert scram.step(server_first) == expected_final
    assert scram.step(server_final) is None


def test_plain_and_oauthbearer_messages() -> None:
    assert Plain("alice", "pw").first() == b"\0alice\0pw"
    bearer = OAuthBearer("tok.en.x", {"logicalCluster": "lkc-1", "identityPoolId": "pool-2"})
    assert bearer.first() == b"n,,\x01auth=Bearer tok.en.x\x01logicalCluster=lkc-1\x01identityPoolId=pool-2\x01\x01"
    assert bearer.step(b"") is None
    bearer = OAuthBearer("bad")
    assert bearer.step(b'{"status":"invalid_token"}') == b"\x01"
    assert bearer.server_error == '{"status":"invalid_token"}'


VERSIONS = {ApiKey.SASL_HANDSHAKE: 1, ApiKey.SASL_AUTHENTICATE: 2}


def _handshake(code: int = 0, mechanisms: tuple[str, ...] = ("PLAIN",)) -> object:
    return response_type(ApiKey.SASL_HANDSHAKE, 1)(error_code=code, mechanisms=mechanisms)  # type: ignore[call-arg]


def _auth(code: int = 0, auth_bytes: bytes = b"", message: str | None = None, lifetime_ms: int = 0) -> object:
    return response_type(ApiKey.SASL_AUTHENTICATE, 2)(  # type: ignore[call-arg]
        error_code=code, error_message=message, auth_bytes=auth_bytes,
        session_lifetime=datetime.timedelta(milliseconds=lifetime_ms))


def test_authenticator_plain_exchange_records_session_lifetime() -> None:
    auth = SaslAuthenticator(Plain("alice", "pw"))
    handshake = auth.start(VERSIONS)
    assert handshake.__api_key__ == ApiKey.SASL_HANDSHAKE and handshake.mechanism == "PLAIN"
    request = auth.on_response(_handshake())
    assert request.__api_key__ == ApiKey.SASL_AUTHENTICATE and request.auth_bytes == b"\0alice\0pw"
    assert auth.on_response(_auth(lifetime_ms=3000)) is None
    assert auth.done and auth.session_lifetime_ms == 3000


def test_authenticator_names_the_brokers_mechanisms() -> None:
    auth = SaslAuthenticator(Scram("SCRAM-SHA-512", "u", "p"))
    auth.start(VERSIONS)
    with pytest.raises(UnsupportedSaslMechanismError, match="the broker offers: PLAIN, SCRAM-SHA-256"):
        auth.on_response(_handshake(33, ("PLAIN", "SCRAM-SHA-256")))


def test_authenticator_bad_credentials_and_no_sasl_listener() -> None:
    auth = SaslAuthenticator(Plain("alice", "wrong"))
    auth.start(VERSIONS)
    auth.on_response(_handshake())
    with pytest.raises(SaslAuthenticationFailedError, match="Invalid username or password") as info:
        auth.on_response(_auth(58, message="Invalid username or password"))
    assert isinstance(info.value, AuthenticationError) and not info.value.retriable
    with pytest.raises(AuthenticationError, match="SASL listener"):
        SaslAuthenticator(Plain("a", "b")).start({})


def test_jaas_lines_from_provider_pages() -> None:
    plain = parse_jaas(
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="$ConnectionString"'
        ' password="Endpoint=sb://ns.example/;SharedAccessKeyName=k;SharedAccessKey=a\\"b=";')
    assert plain.short_module == "PlainLoginModule"
    assert plain.options == {"username": "$ConnectionString",
                             "password": 'Endpoint=sb://ns.example/;SharedAccessKeyName=k;SharedAccessKey=a"b='}
    oauth = parse_jaas(
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required\n"
        "  clientId='x' extension_logicalCluster=\"lkc-1\" scope=kafka ;")
    assert oauth.options["extension_logicalCluster"] == "lkc-1" and oauth.options["scope"] == "kafka"
    assert "password" not in repr(plain.options.keys()) or "sb://" not in repr(plain)


@pytest.mark.parametrize("text", [
    "", "PlainLoginModule", "PlainLoginModule maybe;", 'PlainLoginModule required username="x"',
    'PlainLoginModule required username="x; ', "PlainLoginModule required username=;",
])
def test_bad_jaas_lines_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="sasl.jaas.config"):
        parse_jaas(text)


def test_sasl_package_is_sans_io() -> None:
    """protocol.sasl imports no sockets, threads, clocks or logging, and nothing above the protocol layer."""
    import ast
    from pathlib import Path

    import kprod.protocol.sasl as package

    forbidden = {"socket", "ssl", "threading", "time", "logging", "select", "asyncio", "urllib"}
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in forbidden, (path.name, name)
                if name.startswith("kprod."):
                    assert name.startswith(("kprod.protocol", "kprod.errors")), (path.name, name)
