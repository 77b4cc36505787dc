"""Small helpers to build kio response entities at any version.

kio has one class per API version and fields come and go between versions;
``make`` fills the fields a class has and drops the rest, so each handler
writes one construction for all the versions it serves. Error codes and time
values are converted to the types kio's writers expect, with caches for the
values every response repeats.
"""

from __future__ import annotations

import datetime
from dataclasses import fields
from functools import cache
from typing import Any

from kprod.protocol.messages import ErrorCode

__all__ = ["error", "make", "millis", "timestamp", "field_names"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


@cache
def field_names(cls: type[Any]) -> frozenset[str]:
    """The dataclass field names of a kio entity class."""
    return frozenset(f.name for f in fields(cls))


def make(cls: type[Any], **values: Any) -> Any:
    """An instance of ``cls`` from the values it has fields for."""
    names = field_names(cls)  # type: ignore[arg-type]  # classes are hashable; mypy says no for type[Any]
    return cls(**{k: v for k, v in values.items() if k in names})


@cache
def error(code: int) -> ErrorCode:
    """The kio ErrorCode member of a Kafka error code."""
    return ErrorCode(code)


@cache
def millis(value: int) -> datetime.timedelta:
    """A duration field (``throttle_time``, ...) from milliseconds."""
    return datetime.timedelta(milliseconds=value)


def timestamp(value: int) -> datetime.datetime | None:
    """A timestamp field (``log_append_time``) from epoch milliseconds; -1 is None."""
    if value < 0:
        return None
    return _EPOCH + datetime.timedelta(milliseconds=value)
