"""Secured listeners for the managed real-Kafka cluster: certificates, SCRAM users, a JWKS server.

`KafkaCluster(secured=True)` gives every node, beside the PLAINTEXT listener the
brokers use among themselves, these listeners on 127.0.0.1:

* `MTLS` (security protocol SSL): TLS with client certificates required;
* `SASL_SSL`: PLAIN, SCRAM-SHA-512 and OAUTHBEARER over TLS;
* `SASL_PLAINTEXT`: SCRAM-SHA-256, with a short session lifetime
  (`connections.max.reauth.ms`, KIP-368) so clients must re-authenticate.

The CA and certificates are made by `trustme` for each cluster; SCRAM users are
created when the storage is formatted (`StorageTool format --add-scram`);
OAUTHBEARER tokens are RS256 JWTs that the brokers check against a JWKS served
by a loopback HTTP server in this process (Kafka 4.x only fetches URLs listed in
the `org.apache.kafka.sasl.oauthbearer.allowed.urls` system property).
Facts behind the settings: real-kafka.md section 6 in the shared project docs.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SecurityMaterial", "LISTENER_NAMES", "USER", "PASSWORD", "REAUTH_MS", "CLIENT_ID", "CLIENT_SECRET"]

LISTENER_NAMES = ("MTLS", "SASL_SSL", "SASL_PLAINTEXT")
USER = "alice"
PASSWORD = "alice-secret"
#: Session lifetime on the SASL_PLAINTEXT listener: clients re-authenticate this often.
REAUTH_MS = 4000
CLIENT_ID = "kprod-client"
CLIENT_SECRET = "kprod-client-secret"
_KID = "kprod-test-key"
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
_OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
_OAUTH_VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64url(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


class _JwksServer:
    """Serves the JWKS (GET) and an OIDC client-credentials token endpoint (POST /token) on 127.0.0.1."""

    def __init__(self, document: bytes, mint: Any) -> None:
        body = document
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(200, body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                if self.headers.get("Authorization") != expected or form.get("grant_type") != ["client_credentials"]:
                    self._answer(401, b'{"error":"invalid_client"}')
                    return
                self._answer(200, json.dumps({"access_token": mint(), "token_type": "Bearer",
                                              "expires_in": 3600}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self.token_url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class SecurityMaterial:
    """Files, users and the token signer for one secured cluster."""

    directory: Path
    ca_pem: Path = field(init=False)
    server_pem: Path = field(init=False)
    client_pem: Path = field(init=False)
    other_ca_pem: Path = field(init=False)
    jwks_url: str = field(init=False, default="")

    def __post_init__(self) -> None:
        import trustme
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        self.ca_pem = self.directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem))
        # 127.0.0.1 only: "localhost" then serves as the wrong host name in the tests.
        server = ca.issue_cert("127.0.0.1")
        key = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
        pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        self.server_pem = self.directory / "server.pem"  # PKCS#8 key then chain: what Kafka's PEM store reads
        self.server_pem.write_bytes(pkcs8 + b"".join(blob.bytes() for blob in server.cert_chain_pems))
        client = ca.issue_cert("kprod-client")
        self.client_pem = self.directory / "client.pem"
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client_pem))
        self.other_ca_pem = self.directory / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(self.other_ca_pem))
        self._ca = ca
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._signing_key.public_key().public_numbers()
        jwks = {"keys": [{"kty": "RSA", "kid": _KID, "use": "sig", "alg": "RS256",
                          "n": _int_b64url(numbers.n), "e": _int_b64url(numbers.e)}]}
        self._jwks = _JwksServer(json.dumps(jwks).encode(), self.token)
        self.jwks_url = self._jwks.url
        #: OIDC client-credentials endpoint: CLIENT_ID / CLIENT_SECRET get a token the brokers accept.
        self.token_endpoint_url = self._jwks.token_url

    def close(self) -> None:
        self._jwks.close()

    # -- broker side ------------------------------------------------------------------------

    @property
    def jvm_flags(self) -> list[str]:
        return [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.jwks_url}"]

    @property
    def format_arguments(self) -> list[str]:
        return [
            "--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]",
            "--add-scram", f"SCRAM-SHA-256=[name={USER},password={PASSWORD}]",
        ]

    def broker_settings(self) -> dict[str, str]:
        """Settings every node shares (the listeners themselves are per node)."""
        return {
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,MTLS:SSL,"
            "SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.server_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_pem),
            "listener.name.mtls.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512,OAUTHBEARER",
            "listener.name.sasl_ssl.plain.sasl.jaas.config":
                f'{_PLAIN_MODULE} required user_{USER}="{PASSWORD}";',
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{_SCRAM_MODULE} required;",
            "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config": f"{_OAUTH_MODULE} required;",
            "listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class": _OAUTH_VALIDATOR,
            "sasl.oauthbearer.jwks.endpoint.url": self.jwks_url,
            "sasl.oauthbearer.expected.audience": "kafka",
            "sasl.oauthbearer.expected.issuer": "kprod-tests",
            # With a session lifetime set, a token's own expiry bounds the session (KIP-368).
            "listener.name.sasl_ssl.oauthbearer.connections.max.reauth.ms": "3600000",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": f"{_SCRAM_MODULE} required;",
            "listener.name.sasl_plaintext.scram-sha-256.connections.max.reauth.ms": str(REAUTH_MS),
        }

    # -- client side -------------------------------------------------------------------------

    def token(self, subject: str = USER, lifetime_s: float = 3600.0, *, issued_at: float | None = None) -> str:
        """An RS256 JWT the brokers accept (a negative lifetime makes an expired one)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = time.time() if issued_at is None else issued_at
        header = {"alg": "RS256", "typ": "JWT", "kid": _KID}
        claims = {"sub": subject, "iat": int(now), "exp": int(now + lifetime_s), "aud": "kafka",
                  "iss": "kprod-tests", "scope": "kafka"}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._signing_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def client_settings(self, kind: str, bootstrap: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(kprod settings, confluent-kafka settings) for one listener and mechanism.

        ``kind``: ``mtls``, ``plain``, ``scram-sha-512``, ``oauthbearer`` (SASL_SSL listener) or
        ``scram-sha-256`` (SASL_PLAINTEXT listener). The bootstrap must be that listener's.
        """
        tls_kprod = {"ssl.truststore.location": str(self.ca_pem)}
        tls_ck = {"ssl.ca.location": str(self.ca_pem)}
        if kind == "mtls":
            return ({"bootstrap.servers": bootstrap, "security.protocol": "SSL", **tls_kprod,
                     "ssl.keystore.location": str(self.client_pem)},
                    {"bootstrap.servers": bootstrap, "security.protocol": "SSL", **tls_ck,
                     "ssl.certificate.location": str(self.client_pem), "ssl.key.location": str(self.client_pem)})
        if kind in ("plain", "scram-sha-512"):
            mechanism = kind.upper()
            return ({"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", **tls_kprod,
                     "sasl.mechanism": mechanism, "sasl.username": USER, "sasl.password": PASSWORD},
                    {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", **tls_ck,
                     "sasl.mechanism": mechanism, "sasl.username": USER, "sasl.password": PASSWORD})
        if kind == "scram-sha-256":
            return ({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                     "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": USER, "sasl.password": PASSWORD},
                    {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                     "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": USER, "sasl.password": PASSWORD})
        if kind == "oauthbearer":
            def provider() -> tuple[str, float]:
                token = self.token()
                return token, time.time() + 3600.0

            def oauth_cb(_config: str) -> tuple[str, float]:
                return self.token(), time.time() + 3600.0

            return ({"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", **tls_kprod,
                     "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.token.provider": provider},
                    {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", **tls_ck,
                     "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb})
        raise ValueError(f"unknown kind {kind!r}")
