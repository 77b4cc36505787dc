"""TLS and SASL settings of the embedded cluster, its test certificates, and client settings.

``EmbeddedCluster(security_protocol=..., sasl_mechanisms=..., users=...)`` is
checked here into a :class:`ServerSecurity` (plain data, so the child-process
mode can pickle it). For SSL and SASL_SSL a throw-away CA and a broker
certificate for ``127.0.0.1`` and ``localhost`` are made with ``trustme``
(the ``kprod[tls]`` extra), and :func:`client_config` turns them into the
settings a client needs, with the Java client's keys (what kprod takes) or
librdkafka's (what confluent-kafka takes).

TLS on the brokers' event loop is sans-IO: :class:`TlsSession` wraps an
``ssl.SSLObject`` over two ``MemoryBIO``s, so the loop keeps its own
non-blocking socket calls and drives the handshake with them.

A development and test tool: the certificates are generated per cluster and
worthless outside it; this is no production broker's security.
"""

from __future__ import annotations

import difflib
import os
import ssl
import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kprod.cluster.exceptions import ClusterError
from kprod.cluster.sasl_server import MECHANISMS, TokenValidator

__all__ = [
    "CLIENT_AUTH",
    "SECURITY_PROTOCOLS",
    "ServerSecurity",
    "TlsAuthority",
    "TlsSession",
    "client_config",
    "client_ssl_context",
    "parse_security",
    "redacted",
    "server_ssl_context",
]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
CLIENT_AUTH = ("none", "requested", "required")
DEFAULT_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
}
_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class ServerSecurity:
    """What the brokers need to serve TLS and SASL (picklable; secrets kept out of repr)."""

    protocol: str = "PLAINTEXT"
    mechanisms: tuple[str, ...] = ()
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    client_auth: str = "none"
    oauthbearer_validator: TokenValidator | None = field(default=None, repr=False)
    ca_pem: bytes = field(default=b"", repr=False)
    cert_chain_pem: bytes = field(default=b"", repr=False)
    key_pem: bytes = field(default=b"", repr=False)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _import_trustme() -> Any:
    try:
        import trustme
    except ImportError:
        raise ClusterError(
            "The embedded cluster's SSL and SASL_SSL listeners need the 'trustme' package to make"
            " their test certificates: pip install 'kprod[tls]'."
        ) from None
    return trustme


class TlsAuthority:
    """A throw-away CA, the brokers' certificate (SAN IP:127.0.0.1, DNS:localhost) and client certificates."""

    def __init__(self, host: str) -> None:
        trustme = _import_trustme()
        self._ca = trustme.CA(organization_name="kprod embedded cluster (test only)")
        identities = ["127.0.0.1", "localhost"] + ([host] if host not in ("127.0.0.1", "localhost") else [])
        server = self._ca.issue_cert(*identities, common_name="kprod embedded broker")
        self.ca_pem: bytes = self._ca.cert_pem.bytes()
        self.cert_chain_pem: bytes = b"".join(blob.bytes() for blob in server.cert_chain_pems)
        self.key_pem: bytes = server.private_key_pem.bytes()
        self._clients: dict[str, tuple[bytes, bytes]] = {}

    def client_certificate(self, name: str) -> tuple[bytes, bytes]:
        """(certificate chain PEM, PKCS#8 private key PEM) for a client named ``name`` (its CN)."""
        if name not in self._clients:
            leaf = self._ca.issue_cert("client.kprod.test", common_name=name)
            chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
            self._clients[name] = (chain, _pkcs8(leaf.private_key_pem.bytes()))
        return self._clients[name]


def _pkcs8(key_pem: bytes) -> bytes:
    """Java's PEM keystore reads PKCS#8 keys only; trustme writes the traditional form."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _choice(kind: str, value: Any, choices: Sequence[str]) -> str:
    if isinstance(value, str) and value.upper() in [c.upper() for c in choices]:
        return next(c for c in choices if c.upper() == value.upper())
    close = difflib.get_close_matches(str(value).upper(), [c.upper() for c in choices], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ClusterError(f"{kind} {value!r} is not supported.{hint} Choose one of: {', '.join(choices)}.")


def parse_security(
    protocol: str,
    mechanisms: Sequence[str] | None,
    users: Mapping[str, str] | None,
    client_auth: str | None,
    validator: TokenValidator | None,
) -> ServerSecurity:
    """Check the security arguments of ``EmbeddedCluster`` (no certificates made yet)."""
    protocol = _choice("security_protocol", protocol, SECURITY_PROTOCOLS)
    sasl = protocol.startswith("SASL_")
    tls = protocol in ("SSL", "SASL_SSL")
    if mechanisms is not None and not sasl:
        raise ClusterError(f"sasl_mechanisms needs security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}.")
    if isinstance(mechanisms, str):
        mechanisms = (mechanisms,)
    if mechanisms is not None and not isinstance(mechanisms, (list, tuple, set, frozenset)):
        raise ClusterError(f"sasl_mechanisms must be a sequence of mechanism names, got {mechanisms!r}.")
    chosen = tuple(_choice("SASL mechanism", m, MECHANISMS) for m in (mechanisms or DEFAULT_MECHANISMS))
    if sasl and not chosen:
        raise ClusterError(f"sasl_mechanisms is empty: enable at least one of {', '.join(MECHANISMS)}.")
    if users is not None and not sasl:
        raise ClusterError(f"users are SASL credentials: use security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}.")
    if users is not None and not isinstance(users, Mapping):
        raise ClusterError("users must map user names to passwords, e.g. users={'alice': 'secret'}.")
    checked: dict[str, str] = {}
    for name, password in (users or {}).items():
        if not isinstance(name, str) or not name or not isinstance(password, str) or not password:
            raise ClusterError("users maps user names to passwords, both non-empty strings.")
        checked[name] = password
    if sasl and not checked and any(m != "OAUTHBEARER" for m in chosen):
        raise ClusterError(
            "PLAIN and SCRAM need users: pass users={'alice': 'secret'} (or enable only OAUTHBEARER)."
        )
    if client_auth is not None and not tls:
        raise ClusterError(f"ssl_client_auth needs security_protocol SSL or SASL_SSL, not {protocol}.")
    auth = _choice("ssl_client_auth", client_auth or "none", CLIENT_AUTH).lower()
    if validator is not None:
        if "OAUTHBEARER" not in chosen:
            raise ClusterError("oauthbearer_validator needs OAUTHBEARER in sasl_mechanisms.")
        if not callable(validator):
            raise ClusterError("oauthbearer_validator must be a callable taking the token and returning the principal.")
    return ServerSecurity(
        protocol=protocol,
        mechanisms=chosen if sasl else (),
        users=checked,
        client_auth=auth,
        oauthbearer_validator=validator,
    )


# -- TLS on the event loop -----------------------------------------------------------------------


def server_ssl_context(security: ServerSecurity) -> ssl.SSLContext:
    """The brokers' TLS context: their certificate, and the CA for client certificates (mTLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only: write the PEMs to a private file for the call
    descriptor, path = tempfile.mkstemp(prefix="kprod-broker-", suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(security.key_pem + security.cert_chain_pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    if security.client_auth != "none":
        context.load_verify_locations(cadata=security.ca_pem.decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED if security.client_auth == "required" else ssl.CERT_OPTIONAL
    return context


class TlsSession:
    """One connection's TLS: ciphertext in from the socket, plaintext out, and back.

    ``wire`` holds ciphertext waiting for the socket (handshake records and
    encrypted responses); the event loop sends it like any outbox.
    """

    __slots__ = ("_object", "_incoming", "_outgoing", "_handshaken", "wire")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._handshaken = False
        self.wire: deque[bytes | memoryview] = deque()

    def receive(self, data: bytes | memoryview) -> bytes | None:
        """Feed received ciphertext; returns the plaintext it completes, None when the peer closed TLS.

        Raises ``ssl.SSLError`` when the handshake or a record fails.
        """
        self._incoming.write(data)
        chunks: list[bytes] = []
        try:
            if not self._handshaken:
                self._object.do_handshake()
                self._handshaken = True
            while True:
                chunk = self._object.read(_READ_SIZE)
                if not chunk:
                    self._pull()
                    return None
                chunks.append(chunk)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except ssl.SSLZeroReturnError:
            self._pull()
            return None
        finally:
            self._pull()
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    def encrypt(self, plaintext: deque[bytes | memoryview]) -> None:
        """Move every plaintext buffer into ``wire`` as TLS records."""
        write = self._object.write
        while plaintext:
            write(plaintext.popleft())
        self._pull()

    def _pull(self) -> None:
        if self._outgoing.pending:
            self.wire.append(self._outgoing.read())


# -- what clients need ------------------------------------------------------------------------------


def _jaas(mechanism: str, user: str, password: str) -> str:
    module = _LOGIN_MODULES[mechanism]
    if mechanism == "OAUTHBEARER":
        return f'{module} required unsecuredLoginStringClaim_sub="{user}";'
    return f'{module} required username="{user}" password="{password}";'


def client_config(
    security: ServerSecurity,
    authority: TlsAuthority | None,
    bootstrap: str,
    user: str | None,
    mechanism: str | None,
    style: str,
) -> dict[str, str]:
    """Client settings for ``user``: see ``EmbeddedCluster.client_config``."""
    style = _choice("style", style, ("java", "librdkafka")).lower()
    settings = {"bootstrap.servers": bootstrap, "security.protocol": security.protocol}
    needs_client_cert = security.client_auth != "none"
    if user is None and (security.sasl or needs_client_cert):
        if len(security.users) == 1:
            user = next(iter(security.users))
        elif security.sasl and security.users:
            raise ClusterError(f"Name the user: client_config(user=...), one of {', '.join(sorted(security.users))}.")
        else:
            user = "client"
    if security.sasl:
        assert user is not None
        mechanism = _choice("mechanism", mechanism or security.mechanisms[0], security.mechanisms)
        password = security.users.get(user, "")
        if mechanism != "OAUTHBEARER" and user not in security.users:
            raise ClusterError(f"Unknown user {user!r}: the cluster has {', '.join(sorted(security.users))}.")
        settings["sasl.mechanism" if style == "java" else "sasl.mechanisms"] = mechanism
        if style == "java":
            settings["sasl.jaas.config"] = _jaas(mechanism, user, password)
        elif mechanism == "OAUTHBEARER":
            settings["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
            settings["sasl.oauthbearer.config"] = f"principal={user}"
        else:
            settings["sasl.username"] = user
            settings["sasl.password"] = password
    elif mechanism is not None:
        raise ClusterError(f"mechanism applies to SASL listeners; this cluster is {security.protocol}.")
    if security.tls:
        assert authority is not None
        if style == "java":
            settings["ssl.truststore.type"] = "PEM"
            settings["ssl.truststore.certificates"] = authority.ca_pem.decode("ascii")
        else:
            settings["ssl.ca.pem"] = authority.ca_pem.decode("ascii")
        if needs_client_cert:
            assert user is not None
            chain, key = authority.client_certificate(user)
            if style == "java":
                settings["ssl.keystore.type"] = "PEM"
                settings["ssl.keystore.certificate.chain"] = chain.decode("ascii")
                settings["ssl.keystore.key"] = key.decode("ascii")
            else:
                settings["ssl.certificate.pem"] = chain.decode("ascii")
                settings["ssl.key.pem"] = key.decode("ascii")
    return settings


def client_ssl_context(authority: TlsAuthority, user: str | None, client_auth: str) -> ssl.SSLContext:
    """A client ``ssl.SSLContext`` trusting the cluster's CA (with a client certificate for mTLS)."""
    context = ssl.create_default_context(cadata=authority.ca_pem.decode("ascii"))
    if client_auth != "none":
        chain, key = authority.client_certificate(user or "client")
        descriptor, path = tempfile.mkstemp(prefix="kprod-client-", suffix=".pem")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(key + chain)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
    return context


_SECRET_KEYS = frozenset({"sasl.password", "ssl.keystore.key", "ssl.key.pem", "ssl.key.password"})


def redacted(settings: Mapping[str, str]) -> dict[str, str]:
    """``settings`` fit to print or log: passwords and private keys replaced by a placeholder."""
    shown = {}
    for key, value in settings.items():
        if key in _SECRET_KEYS:
            value = "[hidden]"
        elif key == "sasl.jaas.config" and 'password="' in value:
            head, _, rest = value.partition('password="')
            value = head + 'password="[hidden]"' + rest.partition('"')[2]
        shown[key] = value
    return shown
