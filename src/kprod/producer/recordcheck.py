"""The one check of a record's fields, for ``send()``, ``send_many()`` and the compiled path.

A record is refused here, before anything is reserved, opened or counted, so a
refused call changes nothing and nothing a caller passes can reach the I/O
thread and fail there. ``Producer.send``, ``Producer.send_many`` and the
accumulator call these functions; the compiled path (``kprod._speedups.SendPath``)
takes only records it can see pass this rule (it receives the limits below at
construction) and hands every other record to the Python path, which refuses
it here. Each refusal is a :mod:`kprod.errors` class naming the field and, for
``send_many()``, the record's index.

The rule:

* topic: a ``str``, a legal Kafka topic name (1 to 249 of ``[a-zA-Z0-9._-]``,
  not ``.`` or ``..``);
* key, value: what the serializer returned, ``bytes`` or ``None`` (a
  ``bytearray`` or ``memoryview`` is copied to ``bytes``);
* headers: ``None`` or a sequence of ``(str, bytes | None)`` pairs; a
  ``bytearray`` / ``memoryview`` header value is copied to ``bytes``, anything
  else (an int, a str) is refused, as is a key not encodable in UTF-8;
* partition: ``None`` or an ``int`` (not a ``bool``) from 0 to the topic's
  partition count - 1;
* timestamp: ``None`` (now) or an ``int`` (not a ``bool``), ``0 <= ts < 2**63``
  (Kafka's varlong is signed 64-bit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from kprod.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidTopicNameError,
    RecordTooLargeError,
    SerializationError,
)
from kprod.protocol.records import BATCH_HEADER_SIZE

__all__ = [
    "BATCH_HEADER_SIZE",
    "MAX_PARTITIONS",
    "MAX_TIMESTAMP",
    "check_headers",
    "check_partition",
    "check_size",
    "check_timestamp",
    "check_topic",
    "check_value_bytes",
]

#: Largest record timestamp (ms): Kafka's varlong is a signed 64-bit int.
MAX_TIMESTAMP: Final = (1 << 63) - 1
#: Largest partition count (Kafka's partition numbers are int32).
MAX_PARTITIONS: Final = (1 << 31) - 1
_TOPIC_MAX_LENGTH: Final = 249
_LEGAL_TOPIC: Final = re.compile(r"[a-zA-Z0-9._-]+")

Header = tuple[str, bytes | None]


def _record(topic: str | None, index: int | None) -> str:
    """How a message names the record: 'record 3 of send_many() to topic t' or 'a record to topic t'."""
    where = f" to topic {topic}" if topic is not None else ""
    return f"record {index} of send_many(){where}" if index is not None else f"a record{where}"


def check_topic(topic: Any) -> str:
    """``topic`` if it is a legal topic name; else InvalidArgumentError (field ``topic``)."""
    if type(topic) is not str:
        raise InvalidArgumentTypeError(
            f"send() takes a topic name (str) or a ProducerRecord, not {type(topic).__name__}.", field="topic")
    if (not topic or len(topic) > _TOPIC_MAX_LENGTH or topic in (".", "..")
            or _LEGAL_TOPIC.fullmatch(topic) is None):
        raise InvalidTopicNameError(
            f"Invalid topic {topic!r}: a topic name is 1 to {_TOPIC_MAX_LENGTH} characters of a-z, A-Z, 0-9, "
            "'.', '_' and '-' (and not '.' or '..'). Nothing was sent.", topic=topic)
    return topic


def check_partition(topic: str, partition: Any, num_partitions: int, index: int | None = None,
                    by: str = "the record") -> int:
    """``partition`` if it is an int in ``0..num_partitions-1``; else InvalidArgumentError."""
    if type(partition) is int and 0 <= partition < num_partitions:
        return partition
    error = InvalidArgumentError if type(partition) is int else InvalidArgumentTypeError
    raise error(
        f"Invalid partition {partition!r} for {_record(topic, index)} (set by {by}): the topic has "
        f"{num_partitions} partitions, so give an int from 0 to {num_partitions - 1}, or None to let the "
        "partitioner choose. Nothing was sent.",
        topic=topic, field="partition", index=index,
    )


def check_timestamp(topic: str, timestamp: Any, index: int | None = None) -> None:
    """Refuse a timestamp that is not None or an int in ``0..MAX_TIMESTAMP``."""
    if timestamp is None or (type(timestamp) is int and 0 <= timestamp <= MAX_TIMESTAMP):
        return
    error = InvalidArgumentError if type(timestamp) is int else InvalidArgumentTypeError
    raise error(
        f"Invalid timestamp {timestamp!r} for {_record(topic, index)}: give milliseconds since the epoch as an "
        f"int from 0 to 2**63 - 1, or None for now. Nothing was sent.",
        topic=topic, field="timestamp", index=index,
    )


def check_headers(topic: str, headers: Any, index: int | None = None) -> Sequence[Header] | None:
    """``headers`` as (str, bytes | None) pairs (the same object when it already is one), or
    SerializationError naming the header at fault. None and empty mean no headers."""
    if headers is None:
        return None
    if type(headers) is not list and type(headers) is not tuple:
        if isinstance(headers, (str, bytes, bytearray, memoryview, Mapping)) or not hasattr(headers, "__iter__"):
            raise SerializationError(
                f"Invalid headers {headers!r} on {_record(topic, index)}: give a list of (str, bytes | None) "
                "pairs. Nothing was sent.", topic=topic, field="headers", index=index)
        headers = list(headers)
    out: list[Header] | None = None
    for position, header in enumerate(headers):
        if type(header) is tuple and len(header) == 2:
            key, value = header
        elif isinstance(header, (tuple, list)) and len(header) == 2:
            key, value = header
            header = (key, value)
            out = out if out is not None else list(headers[:position])
        else:
            raise _bad_header(topic, index, position, header, "it is not a (str, bytes | None) pair")
        if type(key) is not str:
            raise _bad_header(topic, index, position, header, f"its key is {type(key).__name__}, not str")
        if not key.isascii():
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad_header(topic, index, position, header, "its key cannot be encoded in UTF-8") from None
        if value is not None and type(value) is not bytes:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise _bad_header(topic, index, position, header,
                                  f"its value is {type(value).__name__}, not bytes, bytearray, memoryview or None")
            header = (key, bytes(value))
            out = out if out is not None else list(headers[:position])
        if out is not None:
            out.append(header)
    return headers if out is None else out


def _bad_header(topic: str, index: int | None, position: int, header: Any, why: str) -> SerializationError:
    return SerializationError(
        f"Invalid header {position} {header!r} on {_record(topic, index)}: {why}. Headers are (str, bytes | None) "
        "pairs. Nothing was sent.", topic=topic, field="headers", index=index)


def check_value_bytes(topic: str, data: Any, what: str, index: int | None = None) -> bytes | None:
    """A serializer's result as bytes or None (a bytearray / memoryview is copied)."""
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise SerializationError(
        f"The {what}.serializer returned {type(data).__name__} for {_record(topic, index)}; a serializer must "
        "return bytes or None. Nothing was sent.", topic=topic, is_key=what == "key", field=what, index=index)


def check_size(topic: str, size: int, max_request_size: int, buffer_memory: int, index: int | None = None) -> None:
    """Refuse a record whose serialized key and value (``size`` bytes) cannot fit one request
    (``max.request.size`` with the batch header) or the buffer (``buffer.memory``)."""
    if size + BATCH_HEADER_SIZE <= max_request_size and size <= buffer_memory:
        return
    limit = min(max_request_size, buffer_memory)
    which = "max.request.size" if max_request_size <= buffer_memory else "buffer.memory"
    prefix = f"Record {index} of send_many(): " if index is not None else ""
    raise RecordTooLargeError(
        f"{prefix}The record for topic {topic} is {size} bytes serialized, larger than {which} ({limit} bytes); "
        f"it was not sent. Raise {which} (and the topic's max.message.bytes) or send smaller records.", topic=topic)
