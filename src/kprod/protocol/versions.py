"""API version negotiation with ApiVersions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kprod.errors import UnsupportedVersionError
from kprod.protocol.messages import CLIENT_VERSIONS, ApiKey, api_name, request_type

__all__ = [
    "CLIENT_SOFTWARE_NAME",
    "api_versions_request",
    "broker_ranges",
    "choose_version",
    "negotiate",
]

CLIENT_SOFTWARE_NAME = "kprod"


def api_versions_request(version: int, software_version: str) -> Any:
    """An ApiVersions request at ``version`` (v3+ names the client software)."""
    cls = request_type(ApiKey.API_VERSIONS, version)
    if version >= 3:
        return cls(client_software_name=CLIENT_SOFTWARE_NAME, client_software_version=software_version)
    return cls()


def broker_ranges(response: Any) -> dict[int, tuple[int, int]]:
    """The broker's (min, max) version per API key from an ApiVersions response."""
    return {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys}


def choose_version(api_key: int, broker: Mapping[int, tuple[int, int]]) -> int:
    """The highest version of ``api_key`` both kprod and the broker support."""
    client_min, client_max = CLIENT_VERSIONS[ApiKey(api_key)]
    if api_key not in broker:
        raise UnsupportedVersionError(
            f"The broker does not support {api_name(api_key)} at all; "
            "kprod needs a Kafka 2.1 or newer broker."
        )
    broker_min, broker_max = broker[api_key]
    high = min(client_max, broker_max)
    low = max(client_min, broker_min)
    if high < low:
        raise UnsupportedVersionError(
            f"No common {api_name(api_key)} version: the broker supports v{broker_min}-v{broker_max}, "
            f"kprod v{client_min}-v{client_max}. Upgrade the broker (Kafka 2.1+) or kprod."
        )
    return high


def negotiate(broker: Mapping[int, tuple[int, int]]) -> dict[int, int]:
    """The version to use for every API both sides know (those with no overlap are left out)."""
    chosen: dict[int, int] = {}
    for api_key in CLIENT_VERSIONS:
        try:
            chosen[api_key] = choose_version(api_key, broker)
        except UnsupportedVersionError:
            continue
    return chosen
