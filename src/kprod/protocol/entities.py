"""Helpers to build and read kio entities at any version, for both sides of the protocol.

kio has one class per API version and fields come and go between versions;
:func:`make_entity` fills the fields a class has and drops the rest, so one
construction serves every version (the client's request builders and the
embedded cluster's response handlers both use it). kio represents time
fields as ``timedelta`` (durations) and ``datetime`` (timestamps); the
converters here are the one place kprod turns them into and out of
milliseconds.
"""

from __future__ import annotations

import datetime
from dataclasses import fields
from functools import cache
from typing import Any

__all__ = ["field_names", "make_entity", "ms", "to_millis", "from_millis"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ONE_MS = datetime.timedelta(milliseconds=1)


@cache
def field_names(cls: type[Any]) -> frozenset[str]:
    """The dataclass field names of a kio entity class."""
    return frozenset(f.name for f in fields(cls))


def make_entity(cls: type[Any], **values: Any) -> Any:
    """An instance of ``cls`` from the values it has fields for (the others are dropped)."""
    names = field_names(cls)  # type: ignore[arg-type]  # classes are hashable; mypy says no for type[Any]
    return cls(**{k: v for k, v in values.items() if k in names})


def ms(value: int) -> datetime.timedelta:
    """Milliseconds as the timedelta kio uses for duration fields (``*_ms`` in Kafka's schemas)."""
    return datetime.timedelta(milliseconds=value)


def to_millis(value: datetime.datetime | datetime.timedelta | int | None, default: int = -1) -> int:
    """A kio time field (datetime, timedelta or int) as integer milliseconds."""
    if value is None:
        return default
    if isinstance(value, datetime.datetime):
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, datetime.timedelta):
        return value // _ONE_MS
    return int(value)


def from_millis(value: int) -> datetime.datetime | None:
    """A timestamp field (``log_append_time``) from epoch milliseconds; -1 (or any negative) is None."""
    if value < 0:
        return None
    return _EPOCH + datetime.timedelta(milliseconds=value)
