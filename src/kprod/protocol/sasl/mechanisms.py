"""SASL client mechanisms as sans-IO objects: bytes in, bytes out.

Each mechanism answers ``first()`` (the client's opening message) and
``step(challenge)`` (the next message, or None once the exchange is over). They
never touch sockets or clocks; :mod:`kprod.protocol.sasl.authenticator` wraps
them in Kafka's SaslHandshake / SaslAuthenticate requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Protocol

from kprod.errors import AuthenticationError

__all__ = ["Mechanism", "Plain", "Scram", "OAuthBearer", "SCRAM_MIN_ITERATIONS"]

#: Kafka's brokers store SCRAM credentials with at least this many iterations;
#: a server asking for fewer is not a Kafka broker we should trust.
SCRAM_MIN_ITERATIONS = 4096


class Mechanism(Protocol):
    """A client-side SASL mechanism."""

    name: str

    def first(self) -> bytes:
        """The client's first message."""

    def step(self, challenge: bytes) -> bytes | None:
        """The answer to a server message, or None when the exchange is complete."""


class Plain:
    """PLAIN (RFC 4616): one message, ``authzid NUL user NUL password``."""

    name = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._message = b"\0" + username.encode() + b"\0" + password.encode()

    def first(self) -> bytes:
        return self._message

    def step(self, challenge: bytes) -> bytes | None:
        return None


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes, what: str) -> dict[str, str]:
    try:
        text = message.decode()
        return {part[0]: part[2:] for part in text.split(",") if len(part) >= 2 and part[1] == "="}
    except UnicodeDecodeError:
        raise AuthenticationError(f"The broker's SCRAM {what} is not UTF-8.") from None


class Scram:
    """SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), without channel binding."""

    def __init__(self, name: str, username: str, password: str, *, nonce: str | None = None) -> None:
        if name not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ValueError(f"not a SCRAM mechanism: {name}")
        self.name = name
        self._hash = "sha256" if name == "SCRAM-SHA-256" else "sha512"
        self._password = password.encode()
        self._nonce = nonce if nonce is not None else base64.b64encode(secrets.token_bytes(24)).decode()
        self._first_bare = f"n={_saslname(username)},r={self._nonce}"
        self._server_signature: bytes | None = None
        self._stage = 0

    def _hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self._hash).digest()

    def first(self) -> bytes:
        self._stage = 1
        return ("n,," + self._first_bare).encode()

    def step(self, challenge: bytes) -> bytes | None:
        if self._stage == 1:
            self._stage = 2
            return self._client_final(challenge)
        if self._stage == 2:
            self._stage = 3
            self._verify_server_final(challenge)
            return None
        raise AuthenticationError(f"The broker sent an unexpected {self.name} message after the exchange ended.")

    def _client_final(self, server_first: bytes) -> bytes:
        attrs = _attributes(server_first, "server-first message")
        if "e" in attrs:
            raise AuthenticationError(f"{self.name} failed: the broker said {attrs['e']!r}.")
        nonce, salt_b64, iterations_text = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationError(f"{self.name}: the broker's nonce does not extend ours; refusing to continue.")
        if not iterations_text.isdigit() or int(iterations_text) < SCRAM_MIN_ITERATIONS:
            raise AuthenticationError(
                f"{self.name}: the broker asked for {iterations_text or 'no'} iterations, fewer than"
                f" the {SCRAM_MIN_ITERATIONS} Kafka uses; refusing to continue.")
        try:
            salt = base64.b64decode(salt_b64, validate=True)
        except ValueError:
            raise AuthenticationError(f"{self.name}: the broker's salt is not base64.") from None
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, int(iterations_text))
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first.decode()},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _verify_server_final(self, server_final: bytes) -> None:
        attrs = _attributes(server_final, "server-final message")
        if "e" in attrs:
            raise AuthenticationError(f"{self.name} failed: the broker said {attrs['e']!r}.")
        try:
            signature = base64.b64decode(attrs.get("v", ""), validate=True)
        except ValueError:
            signature = b""
        assert self._server_signature is not None
        if not hmac.compare_digest(signature, self._server_signature):
            raise AuthenticationError(
                f"{self.name}: the broker's server signature is wrong; it does not know this user's"
                " credentials (a man in the middle, or a broker misconfiguration).")


class OAuthBearer:
    """OAUTHBEARER (RFC 7628) client first message with SASL extensions (KIP-342)."""

    name = "OAUTHBEARER"

    def __init__(self, token: str, extensions: dict[str, str] | None = None) -> None:
        parts = [f"auth=Bearer {token}"]
        parts += [f"{key}={value}" for key, value in (extensions or {}).items()]
        self._message = ("n,,\x01" + "\x01".join(parts) + "\x01\x01").encode()
        self.server_error: str | None = None

    def first(self) -> bytes:
        return self._message

    def step(self, challenge: bytes) -> bytes | None:
        if challenge and self.server_error is None:
            # RFC 7628 3.2.2: the server's error JSON is acknowledged with a lone %x01;
            # the broker then fails the exchange with SASL_AUTHENTICATION_FAILED.
            self.server_error = challenge.decode("utf-8", "replace")
            return b"\x01"
        return None
