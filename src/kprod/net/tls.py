"""TLS for broker connections: the SSLContext from the Java ``ssl.*`` keys, and a sans-IO session.

``build_ssl_context(config)`` turns the keys into an ``ssl.SSLContext`` (or takes
the user's ``ssl.context``); file and format problems are ``ConfigError`` at
producer construction, not connection failures later. ``TlsSession`` runs TLS
over two ``ssl.MemoryBIO``: the I/O thread keeps doing its own GIL-keeping
socket calls (:mod:`kprod.net.syscalls`) and only hands bytes through OpenSSL.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

from kprod.errors import ConfigError, SslAuthenticationError

__all__ = ["build_ssl_context", "TlsSession", "describe_tls_failure"]

log = logging.getLogger("kprod.net")

_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_READ_SIZE = 1 << 18


def _read(path: str, key: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"{key}={path!r} cannot be read: {exc.strerror or exc}.", keys=(key,)) from None


def _store_type(declared: str, data: bytes, prefix: str, explicit: bool) -> str:
    """PEM, PKCS12 or JKS: what the user declared, or (Java's default JKS left alone) what the file is."""
    if explicit and declared != "JKS":
        return declared
    if data.startswith(_JKS_MAGIC):
        return "JKS"
    if explicit:  # declared JKS but the file is something else: say what it is
        return "JKS"
    return "PEM" if b"-----BEGIN" in data[:4096] else "PKCS12"


def _jks_error(prefix: str, path: str | None) -> ConfigError:
    where = path or "the store"
    store = "trust" if prefix == "ssl.truststore" else "key"
    return ConfigError(
        f"{prefix}.location={where!r} is a Java KeyStore (JKS), which Python cannot read. Convert it"
        f" to PKCS12 with `keytool -importkeystore -srckeystore {where} -destkeystore {store}.p12"
        f" -deststoretype PKCS12` and set {prefix}.type=PKCS12 (with {prefix}.password), or export"
        " PEM: `keytool -exportcert -rfc -keystore ... -alias ...` for certificates, then"
        f" `openssl pkcs12 -in {store}.p12 -nodes` for a key, and set {prefix}.type=PEM.",
        keys=(f"{prefix}.location", f"{prefix}.type"),
    )


def _pkcs12(data: bytes, password: str | None, prefix: str) -> tuple[Any, list[Any]]:
    try:
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            f"{prefix}.type=PKCS12 needs the 'cryptography' package: pip install 'kprod[pkcs12]',"
            " or convert the store to PEM.", keys=(f"{prefix}.type",)) from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError as exc:
        raise ConfigError(
            f"{prefix} could not be opened as PKCS12: {exc}. Check {prefix}.password and the file.",
            keys=(f"{prefix}.location", f"{prefix}.password")) from None
    certs = ([cert] if cert is not None else []) + list(extra)
    return key, certs


def _pem_certs(certs: list[Any]) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def _load_trust(ctx: ssl.SSLContext, cfg: Mapping[str, Any], explicit: set[str]) -> None:
    location, inline = cfg["ssl.truststore.location"], cfg["ssl.truststore.certificates"]
    if location and inline:
        raise ConfigError("Set ssl.truststore.location or ssl.truststore.certificates, not both.",
                          keys=("ssl.truststore.location", "ssl.truststore.certificates"))
    if inline:
        kind, data = "PEM", inline.encode()
    else:
        data = _read(location, "ssl.truststore.location")
        kind = _store_type(cfg["ssl.truststore.type"], data, "ssl.truststore", "ssl.truststore.type" in explicit)
    if kind == "JKS":
        raise _jks_error("ssl.truststore", location)
    if kind == "PKCS12":
        _, certs = _pkcs12(data, cfg["ssl.truststore.password"], "ssl.truststore")
        pem = _pem_certs(certs)
    else:
        pem = data.decode("ascii", "replace")
    try:
        ctx.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        key = "ssl.truststore.certificates" if inline else "ssl.truststore.location"
        raise ConfigError(f"{key} holds no usable PEM certificate ({exc}).", keys=(key,)) from None


def _load_keystore(ctx: ssl.SSLContext, cfg: Mapping[str, Any], explicit: set[str]) -> None:
    location = cfg["ssl.keystore.location"]
    chain, key_pem = cfg["ssl.keystore.certificate.chain"], cfg["ssl.keystore.key"]
    key_password = cfg["ssl.key.password"]
    if location and (chain or key_pem):
        raise ConfigError("Set ssl.keystore.location or ssl.keystore.certificate.chain + ssl.keystore.key, not both.",
                          keys=("ssl.keystore.location", "ssl.keystore.certificate.chain", "ssl.keystore.key"))
    if bool(chain) != bool(key_pem):
        raise ConfigError("ssl.keystore.certificate.chain and ssl.keystore.key go together: set both.",
                          keys=("ssl.keystore.certificate.chain", "ssl.keystore.key"))
    if chain:
        pem = key_pem.strip() + "\n" + chain.strip() + "\n"
    elif location:
        data = _read(location, "ssl.keystore.location")
        kind = _store_type(cfg["ssl.keystore.type"], data, "ssl.keystore", "ssl.keystore.type" in explicit)
        if kind == "JKS":
            raise _jks_error("ssl.keystore", location)
        if kind == "PKCS12":
            from cryptography.hazmat.primitives.serialization import (
                BestAvailableEncryption, Encoding, PrivateFormat)

            key, certs = _pkcs12(data, cfg["ssl.keystore.password"], "ssl.keystore")
            if key is None or not certs:
                raise ConfigError("ssl.keystore.location holds no private key with a certificate.",
                                  keys=("ssl.keystore.location",))
            key_password = os.urandom(16).hex()
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                    BestAvailableEncryption(key_password.encode())).decode() + _pem_certs(certs)
        else:
            pem = data.decode("ascii", "replace")
    else:
        return
    # load_cert_chain reads files only: a private temporary file, removed at once (the key in it
    # is as encrypted as the user's own).
    fd, path = tempfile.mkstemp(prefix="kprod-keystore-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        ctx.load_cert_chain(path, password=key_password or None)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"The client key store could not be loaded ({exc.reason or exc}): it needs the private key"
            " and its certificate chain in PEM, and ssl.key.password if the key is encrypted.",
            keys=("ssl.keystore.location", "ssl.keystore.key", "ssl.key.password")) from None
    finally:
        os.unlink(path)


def build_ssl_context(cfg: Mapping[str, Any], explicit: set[str] | None = None) -> ssl.SSLContext:
    """The client SSLContext for ``cfg`` (a ProducerConfig or a mapping with every ssl.* key)."""
    explicit = explicit if explicit is not None else set()
    given = cfg["ssl.context"]
    if given is not None:
        if not isinstance(given, ssl.SSLContext):
            raise ConfigError(f"ssl.context must be an ssl.SSLContext, not {type(given).__name__}.",
                              keys=("ssl.context",))
        return given
    if cfg["ssl.truststore.location"] or cfg["ssl.truststore.certificates"]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_trust(ctx, cfg, explicit)
    else:
        ctx = ssl.create_default_context()
    _load_keystore(ctx, cfg, explicit)
    if cfg["ssl.endpoint.identification.algorithm"] == "":
        ctx.check_hostname = False
        log.warning("ssl.endpoint.identification.algorithm is empty: broker host names are NOT checked"
                    " against their certificates, so a man in the middle with any certificate from a"
                    " trusted CA would be accepted.")
    protocols = cfg["ssl.enabled.protocols"]
    unknown = [p for p in protocols if p not in _VERSIONS]
    if unknown or not protocols:
        raise ConfigError(f"ssl.enabled.protocols may hold TLSv1.2 and TLSv1.3 only (got {', '.join(protocols) or 'none'}).",
                          keys=("ssl.enabled.protocols",))
    ctx.minimum_version = min(_VERSIONS[p] for p in protocols)
    ctx.maximum_version = max(_VERSIONS[p] for p in protocols)
    if cfg["ssl.protocol"] == "TLSv1.2" and "ssl.enabled.protocols" not in explicit:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if cfg["ssl.cipher.suites"]:
        try:
            ctx.set_ciphers(":".join(cfg["ssl.cipher.suites"]))
        except ssl.SSLError:
            raise ConfigError("ssl.cipher.suites names no cipher OpenSSL knows; use OpenSSL names such as"
                              " ECDHE-RSA-AES128-GCM-SHA256 (TLS 1.3 suites are always on).",
                              keys=("ssl.cipher.suites",)) from None
    return ctx


_REASONS = {
    10: "has expired",
    9: "is not valid yet",
    18: "is self-signed and not in the trust store",
    19: "chain ends in a self-signed CA that is not in the trust store (unknown CA)",
    20: "is signed by a CA that is not in the trust store (unknown CA)",
    21: "is signed by a CA that is not in the trust store (unknown CA)",
    62: "does not name this host (hostname mismatch)",
}


def describe_tls_failure(host: str, port: int, exc: BaseException) -> SslAuthenticationError:
    """An error naming the broker and why TLS failed, with what to do."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        reason = _REASONS.get(code, exc.verify_message)
        if code == 62:
            hint = ("Connect with the name in the certificate, or (test setups only) set"
                    " ssl.endpoint.identification.algorithm to an empty string.")
        elif code in (10, 9):
            hint = "Renew the broker's certificate or check this machine's clock."
        else:
            hint = "Set ssl.truststore.location (or .certificates) to the CA that signed the broker's certificate."
        return SslAuthenticationError(
            f"TLS handshake with broker {where} failed: its certificate {reason} ({exc.verify_message}). {hint}")
    text = getattr(exc, "reason", None) or str(exc)
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, EOFError)) or "EOF" in str(text).upper():
        return SslAuthenticationError(
            f"Broker {where} closed the connection during the TLS handshake: this is probably a"
            " PLAINTEXT (or SASL_PLAINTEXT) listener, or it requires a client certificate. Check the"
            " port and security.protocol, and the ssl.keystore.* settings for mTLS.")
    if "WRONG_VERSION_NUMBER" in str(text) or "record layer failure" in str(text):
        return SslAuthenticationError(
            f"Broker {where} did not answer with TLS: this is a PLAINTEXT (or SASL_PLAINTEXT) listener."
            " Set security.protocol to PLAINTEXT/SASL_PLAINTEXT or use the TLS port.")
    if "CERTIFICATE_REQUIRED" in str(text) or "ALERT_BAD_CERTIFICATE" in str(text) or "UNKNOWN_CA" in str(text):
        return SslAuthenticationError(
            f"Broker {where} refused our client certificate ({text}): set ssl.keystore.* to a"
            " certificate the broker's trust store accepts.")
    return SslAuthenticationError(f"TLS handshake with broker {where} failed: {text}.")


class TlsSession:
    """One TLS client session over memory buffers: ciphertext in and out, plaintext through."""

    __slots__ = ("_incoming", "_outgoing", "_obj", "handshake_done", "host", "port")

    def __init__(self, ctx: ssl.SSLContext, host: str, port: int) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        # The host is passed even when names are not checked: SNI routes many managed services.
        self._obj = ctx.wrap_bio(self._incoming, self._outgoing, server_side=False, server_hostname=host)
        self.handshake_done = False
        self.host = host
        self.port = port

    def handshake(self, received: bytes = b"") -> bytes:
        """Feed handshake bytes from the broker; returns bytes to send. Raises SslAuthenticationError."""
        if received:
            self._incoming.write(received)
        try:
            self._obj.do_handshake()
            self.handshake_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            raise describe_tls_failure(self.host, self.port, exc) from None
        return self._outgoing.read()

    def eof(self) -> SslAuthenticationError:
        """The error for a connection closed before the handshake finished."""
        return describe_tls_failure(self.host, self.port, EOFError("EOF"))

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """Ciphertext for ``data`` (memory BIOs never block, so all of it at once)."""
        written = self._obj.write(data)
        if written < len(data):  # partial writes are off in CPython; kept as a guard
            view = memoryview(data)
            while written < len(data):
                written += self._obj.write(view[written:])
        return self._outgoing.read()

    def decrypt(self, data: bytes) -> tuple[bytes, bytes]:
        """(plaintext now available, ciphertext to send back, usually empty)."""
        incoming = self._incoming
        incoming.write(data)
        chunks = []
        read = self._obj.read
        # Each SSLObject call releases the GIL (a cost on the I/O thread: kprod.net.syscalls), so
        # stop as soon as OpenSSL has taken every received byte instead of reading once more only
        # to be told it wants more (a read returns at most one 16 KiB record, well under _READ_SIZE).
        while True:
            try:
                chunk = read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not incoming.pending:
                break
        out = self._outgoing.read() if self._outgoing.pending else b""
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), out
