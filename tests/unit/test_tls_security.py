"""TLS contexts from the ssl.* keys, the MemoryBIO session and Security.from_config, without a broker."""

from __future__ import annotations

import datetime
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from kprod import Producer
from kprod.config import ProducerConfig
from kprod.errors import AuthenticationError, ConfigError, SslAuthenticationError
from kprod.net.security import Security, TokenSource
from kprod.net.tls import TlsSession, build_ssl_context
from kprod.protocol.sasl import OAuthBearer, Plain, Scram

trustme = pytest.importorskip("trustme")
BASE = {"bootstrap.servers": "127.0.0.1:9093"}


def security(**conf: Any) -> Security:
    cfg = ProducerConfig({**BASE, **{k.replace("__", "."): v for k, v in conf.items()}})
    return Security.from_config(cfg, set(cfg.originals))


def context(conf: dict[str, Any]) -> ssl.SSLContext:
    cfg = ProducerConfig({**BASE, "security.protocol": "SSL", **conf})
    return build_ssl_context(cfg, set(cfg.originals))


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


def _handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, host: str) -> TlsSession:
    """Run a TLS handshake between a TlsSession and an in-memory server; raises what the client raises."""
    session = TlsSession(client_ctx, host, 9093)
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    to_server = session.handshake()
    for _ in range(10):
        s_in.write(to_server)
        try:
            server.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            pass
        to_client = s_out.read()
        to_server = session.handshake(to_client)
        if session.handshake_done:
            break
    assert session.handshake_done
    s_in.write(to_server)
    try:
        server.do_handshake()
    except ssl.SSLWantReadError:
        pass
    # application data both ways through the MemoryBIO layer
    s_in.write(session.encrypt(b"request bytes"))
    assert server.read(100) == b"request bytes"
    server.write(b"response bytes")
    plain, _ = session.decrypt(s_out.read())
    assert plain == b"response bytes"
    return session


def _server(ca: Any, cert: Any) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return ctx


def test_pem_truststore_file_and_inline_handshake(ca: Any, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = _server(ca, ca.issue_cert("broker.example"))
    _handshake(context({"ssl.truststore.location": str(ca_file)}), server, "broker.example")
    _handshake(context({"ssl.truststore.certificates": ca.cert_pem.bytes().decode()}), server, "broker.example")


@pytest.mark.parametrize(("case", "fragment"), [
    ("unknown-ca", "unknown CA"), ("hostname", "hostname mismatch"), ("expired", "has expired")])
def test_certificate_failures_name_host_and_reason(ca: Any, case: str, fragment: str) -> None:
    if case == "unknown-ca":
        server = _server(ca, trustme.CA().issue_cert("broker.example"))
    elif case == "expired":
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)
        server = _server(ca, ca.issue_cert("broker.example", not_before=past - datetime.timedelta(days=3), not_after=past))
    else:
        server = _server(ca, ca.issue_cert("other.example"))
    client = context({"ssl.truststore.certificates": ca.cert_pem.bytes().decode()})
    with pytest.raises(SslAuthenticationError) as info:
        _handshake(client, server, "broker.example")
    assert "broker.example:9093" in str(info.value) and fragment in str(info.value)


def test_empty_endpoint_identification_skips_hostname_with_a_warning(ca: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = _server(ca, ca.issue_cert("other.example"))
    with caplog.at_level(logging.WARNING, logger="kprod.net"):
        client = context({"ssl.truststore.certificates": ca.cert_pem.bytes().decode(),
                          "ssl.endpoint.identification.algorithm": ""})
    assert "NOT checked" in caplog.text
    _handshake(client, server, "broker.example")


def test_client_certificate_from_pem_file_inline_and_pkcs12(ca: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, load_pem_private_key, pkcs12
    from cryptography import x509

    leaf = ca.issue_cert("client")
    both = tmp_path / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(both))
    key_pem = leaf.private_key_pem.bytes().decode()
    chain_pem = "".join(blob.bytes().decode() for blob in leaf.cert_chain_pems)
    p12 = tmp_path / "client.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"client", load_pem_private_key(leaf.private_key_pem.bytes(), None),
        x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()), None, BestAvailableEncryption(b"pw")))
    server_ctx = _server(ca, ca.issue_cert("broker.example"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_ctx)
    trust = {"ssl.truststore.certificates": ca.cert_pem.bytes().decode()}
    for conf in ({"ssl.keystore.location": str(both)},
                 {"ssl.keystore.certificate.chain": chain_pem, "ssl.keystore.key": key_pem},
                 {"ssl.keystore.location": str(p12), "ssl.keystore.type": "PKCS12", "ssl.keystore.password": "pw"}):
        _handshake(context({**trust, **conf}), server_ctx, "broker.example")
    with pytest.raises(ConfigError, match="ssl.keystore.password"):
        context({**trust, "ssl.keystore.location": str(p12), "ssl.keystore.type": "PKCS12",
                 "ssl.keystore.password": "wrong"})


def test_pkcs12_truststore_with_password(ca: Any, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    store = tmp_path / "trust.p12"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        None, None, None, [x509.load_pem_x509_certificate(ca.cert_pem.bytes())], BestAvailableEncryption(b"changeit")))
    client = context({"ssl.truststore.location": str(store), "ssl.truststore.password": "changeit"})
    _handshake(client, _server(ca, ca.issue_cert("broker.example")), "broker.example")


def test_jks_stores_get_a_conversion_recipe(tmp_path: Path) -> None:
    jks = tmp_path / "trust.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed" + b"\0" * 60)
    for conf in ({"ssl.truststore.location": str(jks)},
                 {"ssl.truststore.location": str(jks), "ssl.truststore.type": "JKS"}):
        with pytest.raises(ConfigError, match="keytool -importkeystore") as info:
            context(conf)
        assert "ssl.truststore.type=PKCS12" in str(info.value)
    with pytest.raises(ConfigError, match="keytool"):
        context({"ssl.keystore.location": str(jks)})


@pytest.mark.parametrize(("conf", "fragment"), [
    ({"ssl.truststore.location": "/nonexistent/ca.pem"}, "cannot be read"),
    ({"ssl.truststore.certificates": "not a certificate"}, "no usable PEM certificate"),
    ({"ssl.enabled.protocols": "TLSv1.1"}, "TLSv1.2 and TLSv1.3 only"),
    ({"ssl.cipher.suites": "NOT-A-CIPHER"}, "OpenSSL names"),
    ({"ssl.context": "yes"}, "ssl.SSLContext"),
    ({"ssl.keystore.key": "x"}, "go together"),
])
def test_bad_tls_settings_are_config_errors(conf: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        context(conf)
    with pytest.raises(ConfigError, match=fragment):  # and the producer refuses them up front
        Producer({**BASE, "security.protocol": "SSL", **conf})


def test_protocol_versions_and_ready_context() -> None:
    ctx = context({"ssl.enabled.protocols": "TLSv1.3"})
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    mine = ssl.create_default_context()
    assert context({"ssl.context": mine}) is mine


JAAS_PLAIN = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="key" password="secret";'
JAAS_SCRAM = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";'


def _mechanism(sec: Security) -> Any:
    auth = sec.new_authenticator()
    assert auth is not None
    from kprod.protocol.messages import ApiKey
    auth.start({ApiKey.SASL_HANDSHAKE: 1, ApiKey.SASL_AUTHENTICATE: 2})
    return auth.mechanism


def test_sasl_from_jaas_lines_and_from_username_password() -> None:
    sec = security(security__protocol="SASL_SSL", sasl__jaas__config=JAAS_PLAIN)  # mechanism inferred
    assert sec.mechanism_name == "PLAIN" and sec.tls is not None
    assert isinstance(_mechanism(sec), Plain) and _mechanism(sec).first() == b"\0key\0secret"
    sec = security(security__protocol="SASL_PLAINTEXT", sasl__mechanism="SCRAM-SHA-512", sasl__jaas__config=JAAS_SCRAM)
    assert sec.tls is None and isinstance(_mechanism(sec), Scram) and _mechanism(sec).name == "SCRAM-SHA-512"
    sec = security(security__protocol="SASL_SSL", sasl__mechanism="SCRAM-SHA-256", sasl__username="u", sasl__password="p")
    assert _mechanism(sec).first().startswith(b"n,,n=u,r=")


@pytest.mark.parametrize(("conf", "fragment"), [
    ({"security.protocol": "SASL_SSL"}, "needs sasl.mechanism"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": JAAS_PLAIN},
     "does not serve sasl.mechanism=SCRAM-SHA-512"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}, "needs a token source"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
      "sasl.jaas.config": "software.amazon.msk.auth.iam.IAMLoginModule required;"}, "token provider"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER",
      "sasl.oauthbearer.token.endpoint.url": "https://idp.example/token"}, "client.credentials.client.id"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.token.provider": lambda: 1,
      "sasl.login.callback.handler.class": "software.amazon.msk.auth.iam.IAMClientCallbackHandler"}, "Java class"),
])
def test_sasl_settings_that_do_not_fit_are_config_errors(conf: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Producer({**BASE, **conf})


def test_oauthbearer_jaas_extensions_and_token_provider() -> None:
    sec = security(**{
        "security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.token.provider": lambda: ("tok", time.time() + 600),
        "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required"
                            ' extension_logicalCluster="lkc-1" extension_identityPoolId="pool-2";'})
    mechanism = _mechanism(sec)
    assert isinstance(mechanism, OAuthBearer)
    assert mechanism.first() == b"n,,\x01auth=Bearer tok\x01logicalCluster=lkc-1\x01identityPoolId=pool-2\x01\x01"


def _source(fetch: Any, now: list[float], **conf: Any) -> TokenSource:
    cfg = ProducerConfig({**BASE, **conf})
    return TokenSource(fetch, cfg, wall=lambda: now[0])


def test_token_refresh_follows_the_window_buffer_and_min_period() -> None:
    now = [1000.0]
    calls: list[float] = []

    def fetch() -> tuple[str, float]:
        calls.append(now[0])
        return f"t{len(calls)}", now[0] + 3600  # one hour

    source = _source(fetch, now, **{"sasl.login.refresh.window.jitter": 0.0})
    assert source.current() == "t1"
    assert source.refresh_at == pytest.approx(1000 + 0.8 * 3600)
    now[0] += 0.8 * 3600 - 1
    source.maintain()
    assert len(calls) == 1
    now[0] += 1
    source.maintain()
    assert calls == [1000.0, 1000 + 0.8 * 3600] and source.token == "t2"
    # short tokens: refresh buffer.seconds before expiry, but no sooner than min.period.seconds
    short = _source(lambda: ("s", now[0] + 400), now, **{"sasl.login.refresh.window.jitter": 0.0})
    short.current()
    assert short.refresh_at == pytest.approx(now[0] + 100)  # 400 - 300 s buffer


def test_token_provider_failures_are_authentication_errors_and_keep_a_valid_token() -> None:
    now = [0.0]
    answers: list[Any] = [("good", 100.0), RuntimeError("idp down")]

    def fetch() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    source = _source(fetch, now, **{"sasl.login.refresh.min.period.seconds": 0, "sasl.login.refresh.buffer.seconds": 0})
    assert source.current() == "good"
    now[0] = 90.0
    assert source.current() == "good"  # refresh failed, old token still valid
    with pytest.raises(AuthenticationError, match="already expired"):
        _source(lambda: ("old", -1.0), now).current()
    with pytest.raises(AuthenticationError, match="must return"):
        _source(lambda: 42, now).current()
    now[0] = time.time()
    ms = _source(lambda: ("m", (now[0] + 900) * 1000.0), now)  # milliseconds, as the MSK signer returns
    ms.current()
    assert ms.expiry == pytest.approx(now[0] + 900)
