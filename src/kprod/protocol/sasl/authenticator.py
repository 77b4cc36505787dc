"""Kafka's SASL exchange (KIP-152) around a mechanism, without I/O.

``start(versions)`` returns the SaslHandshake request; ``on_response(response)``
returns the next request, or None once authenticated. Errors are raised as
``AuthenticationError`` subclasses naming what to do. A new ``SaslAuthenticator``
is made per (re-)authentication, so re-authentication (KIP-368) is the same
exchange on an open connection.
"""

from __future__ import annotations

from typing import Any, Callable

from kprod.errors import (
    AuthenticationError,
    IllegalSaslStateError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)
from kprod.protocol.messages import ApiKey, request_type
from kprod.protocol.sasl.mechanisms import Mechanism
from kprod.protocol.versions import negotiate

__all__ = ["SaslAuthenticator"]


class SaslAuthenticator:
    """Drives SaslHandshake v1 then SaslAuthenticate round trips for one mechanism."""

    def __init__(self, mechanism: Mechanism | Callable[[], Mechanism]) -> None:
        self._mechanism_source = mechanism
        self.mechanism: Mechanism | None = None
        self._auth_version = 0
        self._stage = 0
        #: Set once authenticated: the broker's session lifetime in ms (0: none, KIP-368).
        self.session_lifetime_ms = 0
        self.done = False

    @property
    def name(self) -> str:
        source = self._mechanism_source
        return source.name if hasattr(source, "name") else (self.mechanism.name if self.mechanism else "?")

    def start(self, versions: Any) -> Any:
        """The SaslHandshake request.

        ``versions``: the negotiated API versions of the connection (a dict), or the
        broker's ApiVersions result (what ``ClientConnection`` passes), negotiated here.
        """
        if not isinstance(versions, dict):
            versions = negotiate(versions.broker_versions)
        if ApiKey.SASL_HANDSHAKE not in versions or ApiKey.SASL_AUTHENTICATE not in versions:
            raise AuthenticationError(
                "The broker does not offer SaslHandshake v1 and SaslAuthenticate (Kafka 1.0+); is"
                " this listener a SASL listener? Check security.protocol and the port.")
        self._auth_version = versions[ApiKey.SASL_AUTHENTICATE]
        source = self._mechanism_source
        mechanism: Mechanism = source if hasattr(source, "first") else source()  # type: ignore[operator,assignment]
        self.mechanism = mechanism
        self._stage = 1
        return request_type(ApiKey.SASL_HANDSHAKE, versions[ApiKey.SASL_HANDSHAKE])(mechanism=mechanism.name)

    def _authenticate(self, auth_bytes: bytes) -> Any:
        return request_type(ApiKey.SASL_AUTHENTICATE, self._auth_version)(auth_bytes=auth_bytes)

    def on_response(self, response: Any) -> Any:
        """The next request, or None when authentication succeeded."""
        mechanism = self.mechanism
        assert mechanism is not None
        code = int(response.error_code)
        if self._stage == 1:
            if code == UnsupportedSaslMechanismError.code:
                enabled = ", ".join(response.mechanisms) or "none"
                raise UnsupportedSaslMechanismError(
                    f"sasl.mechanism={mechanism.name} is not enabled on this listener; the broker offers: {enabled}.")
            if code == IllegalSaslStateError.code:
                raise IllegalSaslStateError("The broker did not expect a SaslHandshake now.")
            if code:
                raise AuthenticationError(f"SaslHandshake failed with error code {code}.")
            self._stage = 2
            return self._authenticate(mechanism.first())
        if code:
            message = response.error_message or ""
            server_error = getattr(mechanism, "server_error", None)
            if server_error:
                message = f"{message} ({server_error})" if message else server_error
            if code == SaslAuthenticationFailedError.code:
                raise SaslAuthenticationFailedError(
                    f"{message or 'Authentication failed'} (mechanism {mechanism.name}). Check the"
                    " user name and password, or the token, and that the mechanism is right.")
            if code == IllegalSaslStateError.code:
                raise IllegalSaslStateError(message or None)
            raise AuthenticationError(f"SaslAuthenticate failed with error code {code}: {message}")
        answer = mechanism.step(bytes(response.auth_bytes))
        if answer is not None:
            return self._authenticate(answer)
        lifetime = getattr(response, "session_lifetime", None)
        self.session_lifetime_ms = int(lifetime.total_seconds() * 1000) if lifetime is not None else 0
        self.done = True
        return None
