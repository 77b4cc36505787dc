"""Parsing ``host:port`` addresses from ``bootstrap.servers``."""

from __future__ import annotations

from kprod.errors import ConfigError

__all__ = ["parse_address"]


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port), with a clear error otherwise."""
    text = address.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(
            f"Invalid broker address {address!r}: expected host:port, e.g. 127.0.0.1:9092."
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"Invalid port in broker address {address!r}: must be 1-65535.")
    return host, port
