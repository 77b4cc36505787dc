"""The records a producer sends and the metadata it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["ProducerRecord", "RecordMetadata", "Header"]

#: A record header: a string key and a bytes value (or None).
Header = tuple[str, bytes | None]


class ProducerRecord(NamedTuple):
    """A record to send: Java's ``ProducerRecord``.

    ``partition`` None lets the partitioner choose; ``timestamp`` None means
    "now" (milliseconds since the epoch, CreateTime).
    """

    topic: str
    value: Any = None
    key: Any = None
    partition: int | None = None
    timestamp: int | None = None
    headers: Sequence[Header] | None = None


class RecordMetadata(NamedTuple):
    """Where a record was written: Java's ``RecordMetadata``.

    ``offset`` is -1 when the broker does not say (acks=0). ``timestamp`` is the
    broker's LogAppendTime when the topic uses it, else the record's CreateTime.
    Sizes are -1 for a null key or value.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    serialized_key_size: int
    serialized_value_size: int
