"""Small helpers to build kio response entities at any version.

kio has one class per API version and fields come and go between versions;
``make`` fills the fields a class has and drops the rest, so each handler
writes one construction for all the versions it serves. ``make``,
``field_names`` and the time conversions are the protocol layer's
(:mod:`kprod.protocol.entities`, which the client's request builders use
too); this module adds caches for the values every response repeats.
"""

from __future__ import annotations

import datetime
from functools import cache

from kprod.protocol.entities import field_names, from_millis, make_entity, ms
from kprod.protocol.messages import ErrorCode

__all__ = ["error", "make", "millis", "timestamp", "field_names"]

#: An instance of a kio entity class from the values it has fields for.
make = make_entity

#: A timestamp field (``log_append_time``) from epoch milliseconds; -1 is None.
timestamp = from_millis


@cache
def error(code: int) -> ErrorCode:
    """The kio ErrorCode member of a Kafka error code."""
    return ErrorCode(code)


@cache
def millis(value: int) -> datetime.timedelta:
    """A duration field (``throttle_time``, ...) from milliseconds (cached: responses repeat a few)."""
    return ms(value)
