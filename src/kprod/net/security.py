"""From the ``security.protocol`` / ``ssl.*`` / ``sasl.*`` keys to what a connection needs.

``Security.from_config(cfg)`` checks that the keys fit together (credentials for
the mechanism, readable stores) and raises ``ConfigError`` at producer
construction. A connection then asks for ``tls`` (an SSLContext or None) and
``new_authenticator()`` (a SaslAuthenticator or None). OAUTHBEARER tokens come
from a ``TokenSource``, which the I/O thread keeps fresh (``maintain``); the
application's threads never fetch tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from kprod.errors import AuthenticationError, ConfigError
from kprod.net.tls import build_ssl_context
from kprod.protocol.sasl import OAuthBearer, Plain, SaslAuthenticator, Scram, parse_jaas
from kprod.protocol.sasl.jaas import MODULE_MECHANISMS, JaasConfig
from kprod.protocol.sasl.mechanisms import Mechanism

__all__ = ["Security", "TokenSource"]

log = logging.getLogger("kprod.net")

_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_JAVA_OAUTH_HANDLERS = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
)


def _b64url_json(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, without checking its signature (the broker does)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def _as_token(result: Any) -> tuple[str, float]:
    """(token, expiry epoch seconds) from what a token provider returned."""
    if isinstance(result, tuple) and len(result) == 2:
        token, expiry = result
    elif hasattr(result, "token"):
        token = result.token
        expiry = getattr(result, "expiry", None) or getattr(result, "expires_at", None)
    elif isinstance(result, str):
        token, expiry = result, None
    else:
        raise AuthenticationError(
            "sasl.oauthbearer.token.provider must return (token, expiry) or an object with .token and"
            f" .expiry, not {type(result).__name__}.")
    if not isinstance(token, str) or not token:
        raise AuthenticationError("sasl.oauthbearer.token.provider returned an empty or non-string token.")
    if expiry is None:
        expiry = jwt_expiry(token)
    if expiry is None:
        raise AuthenticationError("sasl.oauthbearer.token.provider gave no expiry and the token is not a JWT with exp.")
    expiry = float(expiry)
    if expiry > 1e11:  # milliseconds (what aws-msk-iam-sasl-signer-python returns)
        expiry /= 1000.0
    return token, expiry


class TokenSource:
    """An OAUTHBEARER token and when to refresh it (Java's sasl.login.refresh.* rules)."""

    def __init__(self, fetch: Callable[[], Any], cfg: Mapping[str, Any], wall: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._wall = wall
        self._factor = cfg["sasl.login.refresh.window.factor"]
        self._jitter = cfg["sasl.login.refresh.window.jitter"]
        self._min_period = cfg["sasl.login.refresh.min.period.seconds"]
        self._buffer = cfg["sasl.login.refresh.buffer.seconds"]
        self._retry_s = cfg["sasl.login.retry.backoff.ms"] / 1000.0
        self._retry_max_s = cfg["sasl.login.retry.backoff.max.ms"] / 1000.0
        self._failures = 0
        self.token: str | None = None
        self.expiry = 0.0
        #: Wall-clock time (epoch s) at which the token should be replaced.
        self.refresh_at = 0.0

    def _schedule(self, now: float) -> None:
        lifetime = max(0.0, self.expiry - now)
        after = lifetime * (self._factor + random.uniform(0, self._jitter))
        if lifetime - after < self._buffer:
            after = max(0.0, lifetime - self._buffer)
        if after < self._min_period:
            after = min(self._min_period, lifetime * self._factor)
        self.refresh_at = now + after

    def refresh(self) -> str:
        """Fetch a new token now (I/O thread). Raises AuthenticationError if it cannot."""
        now = self._wall()
        try:
            token, expiry = _as_token(self._fetch())
        except AuthenticationError:
            self._failed(now)
            raise
        except Exception as exc:  # a user's provider may raise anything: report it, never crash the thread
            self._failed(now)
            raise AuthenticationError(f"Getting an OAUTHBEARER token failed: {type(exc).__name__}: {exc}") from exc
        if expiry <= now:
            self._failed(now)
            raise AuthenticationError("The OAUTHBEARER token provider returned a token that has already expired.")
        self._failures = 0
        self.token, self.expiry = token, expiry
        self._schedule(now)
        log.debug("OAUTHBEARER token refreshed; expires in %.0f s, next refresh in %.0f s", expiry - now, self.refresh_at - now)
        return token

    def _failed(self, now: float) -> None:
        self._failures += 1
        self.refresh_at = now + min(self._retry_max_s, self._retry_s * 2 ** (self._failures - 1))

    def current(self) -> str:
        """A token that is not past its refresh time, fetching one if needed."""
        if self.token is None or self._wall() >= self.refresh_at or self._wall() >= self.expiry:
            if self.token is not None and self._wall() < self.expiry:
                try:
                    return self.refresh()
                except AuthenticationError as exc:  # the old token is still valid: use it
                    log.warning("OAUTHBEARER token refresh failed (the current token stays in use): %s", exc)
                    return self.token
            return self.refresh()
        return self.token

    def maintain(self) -> None:
        """Refresh ahead of time if due (called by the I/O thread between polls)."""
        if self.token is not None and self._wall() >= self.refresh_at:
            self.current()


def client_credentials_fetcher(cfg: Mapping[str, Any], jaas: JaasConfig | None) -> Callable[[], tuple[str, float]]:
    """The OIDC client-credentials grant (Kafka 4.x keys, or the older JAAS options)."""
    options = jaas.options if jaas is not None else {}
    url: str = cfg["sasl.oauthbearer.token.endpoint.url"]
    client_id = cfg["sasl.oauthbearer.client.credentials.client.id"] or options.get("clientId")
    secret = cfg["sasl.oauthbearer.client.credentials.client.secret"] or options.get("clientSecret")
    scope = cfg["sasl.oauthbearer.scope"] or options.get("scope")
    urlencode = cfg["sasl.oauthbearer.header.urlencode"]
    timeout_ms = cfg["sasl.login.read.timeout.ms"] or cfg["sasl.login.connect.timeout.ms"] or 10000
    if url.startswith("file:"):
        path = urllib.parse.urlparse(url).path

        def read_file() -> tuple[str, float]:
            with open(path, encoding="utf-8") as handle:
                token = handle.read().strip()
            return _as_token(token)

        return read_file
    if not client_id or not secret:
        raise ConfigError(
            "sasl.oauthbearer.token.endpoint.url is set, so the client-credentials grant needs"
            " sasl.oauthbearer.client.credentials.client.id and .client.secret (or clientId/clientSecret"
            " in sasl.jaas.config).",
            keys=("sasl.oauthbearer.client.credentials.client.id", "sasl.oauthbearer.client.credentials.client.secret"))

    def fetch() -> tuple[str, float]:
        user, password = (urllib.parse.quote(client_id), urllib.parse.quote(secret)) if urlencode else (client_id, secret)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_ms / 1000.0) as answer:
                body = json.loads(answer.read())
        except Exception as exc:
            raise AuthenticationError(f"The OAuth token endpoint {url} did not give a token: {exc}") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise AuthenticationError(f"The OAuth token endpoint {url} answered without an access_token.")
        expiry = jwt_expiry(token)
        if expiry is None and isinstance(body.get("expires_in"), (int, float)):
            expiry = time.time() + float(body["expires_in"])
        return token, expiry if expiry is not None else time.time() + 3600.0

    return fetch


def _unsecured_fetcher(options: dict[str, str]) -> Callable[[], tuple[str, float]]:
    """Java's unsecured tokens (unsecuredLoginStringClaim_sub), for development brokers only."""
    lifetime = float(options.get("unsecuredLoginLifetimeSeconds", "3600"))

    def fetch() -> tuple[str, float]:
        now = time.time()
        claims: dict[str, Any] = {"sub": options["unsecuredLoginStringClaim_sub"], "iat": now, "exp": now + lifetime}
        for key, value in options.items():
            if key.startswith("unsecuredLoginStringClaim_") and key != "unsecuredLoginStringClaim_sub":
                claims[key[len("unsecuredLoginStringClaim_"):]] = value
        return _b64url_json({"alg": "none"}) + "." + _b64url_json(claims) + ".", now + lifetime

    return fetch


class Security:
    """What every connection of one producer needs for TLS and SASL."""

    def __init__(self, protocol: str, tls: ssl.SSLContext | None,
                 mechanism: Callable[[], Mechanism] | None, mechanism_name: str | None,
                 token_source: TokenSource | None) -> None:
        self.protocol = protocol
        self.tls = tls
        self._mechanism = mechanism
        self.mechanism_name = mechanism_name
        self.token_source = token_source

    @property
    def sasl(self) -> bool:
        return self._mechanism is not None

    def new_authenticator(self) -> SaslAuthenticator | None:
        """A fresh SASL exchange for one (re-)authentication; None without SASL."""
        if self._mechanism is None:
            return None
        return SaslAuthenticator(self._mechanism)

    @classmethod
    def plaintext(cls) -> "Security":
        return cls("PLAINTEXT", None, None, None, None)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], explicit: set[str] | None = None) -> "Security":
        """Check and resolve the security keys of ``cfg``; ``ConfigError`` names what to fix."""
        explicit = explicit if explicit is not None else set()
        protocol = cfg["security.protocol"]
        tls = build_ssl_context(cfg, explicit) if protocol in _TLS_PROTOCOLS else None
        if protocol not in _SASL_PROTOCOLS:
            stray = sorted(k for k in explicit if k.startswith("sasl."))
            if stray:
                log.warning("%s set but security.protocol=%s: SASL is not used.", ", ".join(stray), protocol)
            return cls(protocol, tls, None, None, None)
        jaas = parse_jaas(cfg["sasl.jaas.config"]) if cfg["sasl.jaas.config"] else None
        name = cfg["sasl.mechanism"]
        if "sasl.mechanism" not in explicit and jaas is not None:
            inferred = MODULE_MECHANISMS.get(jaas.short_module, ())
            if len(inferred) == 1:
                name = inferred[0]
        if name == "GSSAPI":
            raise ConfigError(
                "security.protocol=%s needs sasl.mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or"
                " OAUTHBEARER (GSSAPI/Kerberos, Java's default, is not supported by kprod)." % protocol,
                keys=("sasl.mechanism",))
        if jaas is not None and jaas.short_module in MODULE_MECHANISMS and name not in MODULE_MECHANISMS[jaas.short_module]:
            raise ConfigError(
                f"sasl.jaas.config uses {jaas.short_module}, which does not serve sasl.mechanism={name};"
                f" it serves {', '.join(MODULE_MECHANISMS[jaas.short_module])}.",
                keys=("sasl.jaas.config", "sasl.mechanism"))
        if jaas is not None and jaas.short_module not in MODULE_MECHANISMS:
            raise ConfigError(
                f"sasl.jaas.config names {jaas.module}, a login module kprod cannot run; use"
                " PlainLoginModule, ScramLoginModule or OAuthBearerLoginModule (for AWS IAM, pass a"
                " token provider in sasl.oauthbearer.token.provider: see docs/security.md).",
                keys=("sasl.jaas.config",))
        if name == "OAUTHBEARER":
            return cls._oauthbearer(cfg, protocol, tls, jaas)
        options = jaas.options if jaas is not None else {}
        user = cfg["sasl.username"] if cfg["sasl.username"] is not None else options.get("username")
        password = cfg["sasl.password"] if cfg["sasl.password"] is not None else options.get("password")
        if not user or password is None:
            raise ConfigError(
                f"sasl.mechanism={name} needs a user name and password: set sasl.username and"
                " sasl.password, or sasl.jaas.config with username=\"...\" password=\"...\".",
                keys=("sasl.username", "sasl.password", "sasl.jaas.config"))
        if name == "PLAIN":
            return cls(protocol, tls, lambda: Plain(user, password), name, None)
        return cls(protocol, tls, lambda: Scram(name, user, password), name, None)

    @classmethod
    def _oauthbearer(cls, cfg: Mapping[str, Any], protocol: str, tls: ssl.SSLContext | None,
                     jaas: JaasConfig | None) -> "Security":
        options = jaas.options if jaas is not None else {}
        handler = cfg["sasl.login.callback.handler.class"]
        if handler is not None and handler not in _JAVA_OAUTH_HANDLERS:
            raise ConfigError(
                f"sasl.login.callback.handler.class={handler} is a Java class kprod cannot run; for a"
                " custom token source pass a Python callable in sasl.oauthbearer.token.provider.",
                keys=("sasl.login.callback.handler.class",))
        provider = cfg["sasl.oauthbearer.token.provider"]
        fetch: Callable[[], Any]
        if provider is not None:
            if not callable(provider):
                raise ConfigError("sasl.oauthbearer.token.provider must be a callable returning (token, expiry).",
                                  keys=("sasl.oauthbearer.token.provider",))
            fetch = provider
        elif cfg["sasl.oauthbearer.token.endpoint.url"]:
            fetch = client_credentials_fetcher(cfg, jaas)
        elif "unsecuredLoginStringClaim_sub" in options:
            fetch = _unsecured_fetcher(options)
        else:
            raise ConfigError(
                "sasl.mechanism=OAUTHBEARER needs a token source: sasl.oauthbearer.token.provider (a"
                " callable), or sasl.oauthbearer.token.endpoint.url with client credentials.",
                keys=("sasl.oauthbearer.token.provider", "sasl.oauthbearer.token.endpoint.url"))
        extensions = {k[len("extension_"):]: v for k, v in options.items() if k.startswith("extension_")}
        for key in extensions:
            if not key.isalnum() or key == "auth":
                raise ConfigError(f"SASL extension name {key!r} must be letters and digits, and not 'auth'.",
                                  keys=("sasl.jaas.config",))
        source = TokenSource(fetch, cfg)
        return cls(protocol, tls, lambda: OAuthBearer(source.current(), extensions), "OAUTHBEARER", source)
