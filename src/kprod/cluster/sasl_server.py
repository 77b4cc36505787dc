"""The server side of SASL for the embedded cluster: mechanisms and per-connection state.

A broker with a SASL listener serves only ApiVersions, SaslHandshake and
SaslAuthenticate until a connection has authenticated; any other request
closes the connection, as Kafka does. The mechanisms are PLAIN, SCRAM-SHA-256
and SCRAM-SHA-512 (RFC 5802/7677 with ``hashlib``/``hmac``: the server keeps
salted keys, never passwords) and OAUTHBEARER (RFC 7628: the client's first
message carries a bearer token, checked by a validator callable; the default
accepts an unsecured JWT with a ``sub`` claim and an ``exp`` in the future).

With ``connections.max.reauth.ms`` set, a successful authentication returns
that session lifetime (SaslAuthenticate v1+, KIP-368) and a connection that
sends anything but a re-authentication after its session expired is closed.
The principal may not change on re-authentication.

Like the rest of the cluster this is a development and test tool: it lets
clients test their security settings, it is not a hardened authenticator.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from kprod.cluster.engine import CLOSE, Reply
from kprod.cluster.entities import error, make
from kprod.protocol.framing import RequestFrame
from kprod.protocol.messages import ApiKey, response_module

__all__ = [
    "Authentication",
    "MECHANISMS",
    "SASL_VERSIONS",
    "AuthSession",
    "SaslFailure",
    "SaslServer",
    "TokenValidator",
    "unsecured_jwt_validator",
]

log = logging.getLogger("kprod.cluster")

SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
#: Versions advertised in ApiVersions when SASL is on (and only then).
SASL_VERSIONS: dict[int, tuple[int, int]] = {SASL_HANDSHAKE: (0, 1), SASL_AUTHENTICATE: (0, 2)}
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
SCRAM_ITERATIONS = 4096  # RFC 7677's minimum, and Kafka's default

NONE = 0
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58

#: ``validator(token) -> principal`` or ``(principal, expiry as epoch seconds)``; raises to refuse.
TokenValidator = Callable[[str], "str | tuple[str, float]"]
_NO_LIFETIME = datetime.timedelta(0)


class Authentication(NamedTuple):
    """One successful SASL authentication, as ``EmbeddedCluster.authentications()`` lists it."""

    principal: str
    mechanism: str
    reauthentication: bool  # on a connection that had authenticated before (KIP-368)


class SaslFailure(Exception):
    """A client's SASL exchange failed; the message goes back in SaslAuthenticate's error_message."""


# -- mechanisms ---------------------------------------------------------------------------


class _Exchange:
    """One authentication exchange: client tokens in, server tokens out."""

    mechanism = ""
    principal: str | None = None
    expires_at: float | None = None  # credential expiry (epoch seconds), OAUTHBEARER only

    def step(self, token: bytes) -> tuple[bytes, bool]:
        """Answer one client token: (server token, done). Raises SaslFailure to refuse."""
        raise NotImplementedError


class _Plain(_Exchange):
    mechanism = "PLAIN"

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users

    def step(self, token: bytes) -> tuple[bytes, bool]:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise SaslFailure("Invalid SASL/PLAIN message: expected authzid NUL username NUL password.")
        authzid, username, password = (p.decode("utf-8", "replace") for p in parts)
        if authzid and authzid != username:
            raise SaslFailure("Authentication failed: the authorization id must be empty or the username.")
        expected = self._users.get(username)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise SaslFailure("Authentication failed: Invalid username or password")
        self.principal = username
        return b"", True


class ScramCredential:
    """What a SCRAM server stores for a user (RFC 5802 section 3): salt, iterations and two keys."""

    __slots__ = ("salt", "iterations", "stored_key", "server_key")

    def __init__(self, digest: str, password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS):
        self.salt = salt if salt is not None else os.urandom(24)
        self.iterations = iterations
        salted = hashlib.pbkdf2_hmac(digest, password.encode(), self.salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", digest)
        self.stored_key = hashlib.new(digest, client_key).digest()
        self.server_key = hmac.digest(salted, b"Server Key", digest)


def _scram_attributes(message: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for item in message.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) != 1:
            raise SaslFailure(f"Invalid SCRAM message: attribute {item!r} is not k=value.")
        attributes.setdefault(key, value)
    return attributes


class _Scram(_Exchange):
    def __init__(self, digest: str, credentials: Mapping[str, ScramCredential]) -> None:
        self.mechanism = "SCRAM-SHA-256" if digest == "sha256" else "SCRAM-SHA-512"
        self._digest = digest
        self._credentials = credentials
        self._state = "first"
        self._gs2 = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None

    def step(self, token: bytes) -> tuple[bytes, bool]:
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid SCRAM message: not UTF-8.") from None
        if self._state == "first":
            return self._first(message), False
        if self._state == "final":
            return self._final(message), True
        raise SaslFailure("Invalid SCRAM exchange: the exchange is already complete.")

    def _first(self, message: str) -> bytes:
        flag, _, rest = message.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag not in ("n", "y"):
            raise SaslFailure("SCRAM channel binding is not supported; the client must send 'n,,'.")
        attributes = _scram_attributes(bare)
        username = attributes.get("n", "").replace("=2C", ",").replace("=3D", "=")
        client_nonce = attributes.get("r", "")
        if not username or not client_nonce:
            raise SaslFailure("Invalid SCRAM client-first message: username and nonce are required.")
        credential = self._credentials.get(username)
        if credential is None:
            raise SaslFailure(f"Authentication failed: Invalid user credentials ({self.mechanism})")
        self._credential = credential
        self.principal = username
        self._gs2 = f"{flag},{authzid},"
        self._client_first_bare = bare
        self._nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        self._state = "final"
        return self._server_first.encode()

    def _final(self, message: str) -> bytes:
        self._state = "done"
        credential = self._credential
        assert credential is not None
        without_proof, sep, proof_text = message.rpartition(",p=")
        if not sep:
            raise SaslFailure("Invalid SCRAM client-final message: no proof.")
        attributes = _scram_attributes(without_proof)
        if attributes.get("r") != self._nonce:
            raise SaslFailure("Invalid SCRAM client-final message: the nonce does not match.")
        if attributes.get("c") != base64.b64encode(self._gs2.encode()).decode():
            raise SaslFailure("Invalid SCRAM client-final message: the channel binding does not match.")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError:
            raise SaslFailure("Invalid SCRAM client-final message: the proof is not base64.") from None
        signature = hmac.digest(credential.stored_key, auth_message, self._digest)
        if len(proof) != len(signature):
            raise SaslFailure(f"Authentication failed: Invalid user credentials ({self.mechanism})")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.new(self._digest, client_key).digest(), credential.stored_key):
            raise SaslFailure(f"Authentication failed: Invalid user credentials ({self.mechanism})")
        server_signature = hmac.digest(credential.server_key, auth_message, self._digest)
        return b"v=" + base64.b64encode(server_signature)


def _b64url_json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def unsecured_jwt_validator(token: str) -> tuple[str, float]:
    """Accept an unsecured JWT (``alg: none``, as Kafka's unsecured login module and
    librdkafka's ``enable.sasl.oauthbearer.unsecure.jwt`` make) whose ``sub`` names
    the principal and whose ``exp`` is in the future. Returns (sub, exp)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("the token is not a JWT (header.payload.signature)")
    try:
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
    except ValueError as exc:
        raise ValueError(f"the token's header or payload is not base64url JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("alg") != "none" or parts[2]:
        raise ValueError("only unsecured JWTs (alg 'none', no signature) are accepted by the default validator")
    if not isinstance(claims, dict):
        raise ValueError("the token's payload is not a JSON object")
    subject, expiry = claims.get("sub"), claims.get("exp")
    if not isinstance(subject, str) or not subject:
        raise ValueError("the token has no 'sub' claim")
    if not isinstance(expiry, (int, float)) or isinstance(expiry, bool):
        raise ValueError("the token has no numeric 'exp' claim")
    if expiry <= time.time():
        raise ValueError("the token has expired")
    return subject, float(expiry)


class _OAuthBearer(_Exchange):
    mechanism = "OAUTHBEARER"

    def __init__(self, validator: TokenValidator) -> None:
        self._validator = validator

    def step(self, token: bytes) -> tuple[bytes, bool]:
        # RFC 7628: gs2-header \x01 key=value \x01 ... \x01 \x01
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid OAUTHBEARER message: not UTF-8.") from None
        fields = text.split("\x01")
        if len(fields) < 3 or not fields[0].startswith(("n,", "y,")) or fields[-2:] != ["", ""]:
            raise SaslFailure("Invalid OAUTHBEARER client first message (RFC 7628).")
        values = dict(item.partition("=")[::2] for item in fields[1:-2])
        scheme, _, bearer = values.get("auth", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer:
            raise SaslFailure("Invalid OAUTHBEARER client first message: no 'auth=Bearer <token>'.")
        try:
            result = self._validator(bearer)
            if isinstance(result, tuple):
                principal, expires_at = str(result[0]), float(result[1])
            else:
                principal, expires_at = str(result), None
        except Exception as exc:  # whatever the user's validator raises refuses the token, never the broker
            raise SaslFailure(f"Authentication failed: the OAUTHBEARER token was refused: {exc}") from None
        self.principal, self.expires_at = principal, expires_at
        return b"", True


# -- the cluster-wide server and per-connection sessions ------------------------------------


class SaslServer:
    """The enabled mechanisms and credentials of every broker's SASL listener."""

    versions = SASL_VERSIONS

    def __init__(
        self,
        mechanisms: tuple[str, ...],
        users: Mapping[str, str],
        validator: TokenValidator | None = None,
        lifetime_ms: int = 0,
    ) -> None:
        self.mechanisms = mechanisms
        self.lifetime_ms = lifetime_ms
        self._users = dict(users)
        self._validator = validator or unsecured_jwt_validator
        #: every successful authentication, in order (read by EmbeddedCluster.authentications())
        self.authentications: list[Authentication] = []
        self._scram: dict[str, dict[str, ScramCredential]] = {}
        for mechanism, digest in (("SCRAM-SHA-256", "sha256"), ("SCRAM-SHA-512", "sha512")):
            if mechanism in mechanisms:
                self._scram[mechanism] = {u: ScramCredential(digest, p) for u, p in self._users.items()}

    def exchange(self, mechanism: str) -> _Exchange:
        if mechanism == "PLAIN":
            return _Plain(self._users)
        if mechanism == "OAUTHBEARER":
            return _OAuthBearer(self._validator)
        return _Scram("sha256" if mechanism == "SCRAM-SHA-256" else "sha512", self._scram[mechanism])

    def session(self) -> AuthSession:
        return AuthSession(self)


class AuthSession:
    """One connection's authentication state; the engine asks it about every request."""

    __slots__ = ("server", "authenticated", "failed", "principal", "expires_at", "raw_tokens", "_exchange", "_clock")

    def __init__(self, server: SaslServer, clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self.authenticated = False
        self.failed = False
        self.principal: str | None = None
        self.expires_at = 0.0  # monotonic deadline of the session (0: none)
        self.raw_tokens = False  # after SaslHandshake v0: tokens arrive as bare size-prefixed frames
        self._exchange: _Exchange | None = None
        self._clock = clock

    def gate(self, frame: RequestFrame) -> Any:
        """None to serve the request normally, or the outcome (Reply or CLOSE) for it."""
        api_key = frame.api_key
        if api_key in SASL_VERSIONS:
            low, high = SASL_VERSIONS[api_key]
            if frame.request is None or not low <= frame.api_version <= high:
                return CLOSE
            if api_key == SASL_HANDSHAKE:
                return self._handshake(frame)
            return self._authenticate(frame)
        if self.failed:
            return CLOSE
        if not self.authenticated:
            return None if api_key == ApiKey.API_VERSIONS else CLOSE
        if self.expires_at and self._clock() >= self.expires_at:
            log.info("closing a connection of %s: its SASL session expired without re-authentication", self.principal)
            return CLOSE
        return None

    def _handshake(self, frame: RequestFrame) -> Any:
        request: Any = frame.request
        mechanism = request.mechanism
        enabled = self.server.mechanisms
        module = response_module(SASL_HANDSHAKE, frame.api_version)
        if self._exchange is not None or self.failed or (self.authenticated and frame.api_version == 0):
            code = ILLEGAL_SASL_STATE
        elif mechanism not in enabled:
            code = UNSUPPORTED_SASL_MECHANISM
            self.failed = True
        else:
            code = NONE
            self._exchange = self.server.exchange(mechanism)
            self.raw_tokens = frame.api_version == 0
        entity = module.SaslHandshakeResponse(error_code=error(code), mechanisms=enabled)
        return Reply(entity, frame.correlation_id)

    def _authenticate(self, frame: RequestFrame) -> Reply:
        version = frame.api_version
        module = response_module(SASL_AUTHENTICATE, version)
        code, message, token, lifetime = NONE, None, b"", _NO_LIFETIME
        try:
            if self._exchange is None:
                code, message = ILLEGAL_SASL_STATE, "SaslAuthenticate must follow a SaslHandshake."
                self.failed = True
            else:
                request: Any = frame.request
                token, done = self._step(request.auth_bytes)
                if done and self.expires_at:
                    lifetime = datetime.timedelta(seconds=max(0.0, self.expires_at - self._clock()))
        except SaslFailure as exc:
            code, message = SASL_AUTHENTICATION_FAILED, str(exc)
        entity = make(
            module.SaslAuthenticateResponse,
            error_code=error(code),
            error_message=message,
            auth_bytes=token,
            session_lifetime=lifetime,
        )
        return Reply(entity, frame.correlation_id)

    def raw_token(self, token: bytes) -> bytes | None:
        """A bare token after SaslHandshake v0: the server token to send, or None to close."""
        try:
            answer, done = self._step(token)
        except SaslFailure as exc:
            log.info("SASL authentication failed (SaslHandshake v0): %s", exc)
            return None
        if done:
            self.raw_tokens = False
        return answer

    def _step(self, token: bytes) -> tuple[bytes, bool]:
        exchange = self._exchange
        assert exchange is not None
        try:
            answer, done = exchange.step(token)
            if done:
                self._complete(exchange)
        except SaslFailure:
            self._exchange = None
            self.authenticated = False
            self.failed = True
            raise
        return answer, done

    def _complete(self, exchange: _Exchange) -> None:
        self._exchange = None
        if self.authenticated and exchange.principal != self.principal:
            raise SaslFailure(
                f"Re-authentication as {exchange.principal!r} refused: the connection authenticated as"
                f" {self.principal!r}, and the principal may not change."
            )
        now = self._clock()
        expires_at = 0.0
        lifetime_ms = self.server.lifetime_ms
        if lifetime_ms:
            expires_at = now + lifetime_ms / 1000
            if exchange.expires_at is not None:  # a token never outlives itself (KIP-368)
                expires_at = min(expires_at, now + max(0.0, exchange.expires_at - time.time()))
        self.server.authentications.append(
            Authentication(str(exchange.principal), exchange.mechanism, self.authenticated)
        )
        self.authenticated = True
        self.principal = exchange.principal
        self.expires_at = expires_at
