"""Responses as kprod reads them: small typed objects, every field present at every version.

kio gives one entity class per API version, and fields come and go between
versions (``log_append_time`` from Produce v2, ``current_leader`` from v10,
``leader_epoch`` in Metadata from v7, ...). One function per API turns a kio
response of any version into the objects below, filling what older versions
lack with the default Kafka itself documents, so nothing above the protocol
layer reads kio entities or knows which version answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kprod.protocol.requests import to_millis

__all__ = [
    "ApiVersionsResult",
    "api_versions_result",
]


@dataclass(frozen=True, slots=True)
class ApiVersionsResult:
    """An ApiVersions answer: error code and the broker's (min, max) version per API key."""

    error_code: int
    broker_versions: dict[int, tuple[int, int]]
    throttle_time_ms: int = 0


def api_versions_result(response: Any) -> ApiVersionsResult:
    """Normalise an ApiVersions response of any version (v0 has no throttle time)."""
    throttle = getattr(response, "throttle_time", None)
    return ApiVersionsResult(
        error_code=int(response.error_code),
        broker_versions={
            int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys
        },
        throttle_time_ms=to_millis(throttle, 0),
    )
