"""The Produce request (v3-v11), framed without kio.

Every other message kprod sends is written by kio from Kafka's schemas. The
Produce request is the one the I/O thread writes hundreds of times a second,
and kio's generic writer spends about 30 µs on each (its cost is per field,
not per byte), while the request is little more than a few integers around
the record batches. :class:`ProduceRequest` writes the same bytes with a few
``struct`` calls and one join. kio stays the reference: the unit tests compare
the two byte for byte for every version and shape (``tests/unit/test_produce_frame.py``).

Layout (Kafka's ``ProduceRequest.json``): header v1 (v3-v8) or v2 (v9+, flexible),
then transactional_id, acks, timeout_ms, and per topic its name and per partition
its index and records. Flexible versions use compact strings, arrays and bytes
(unsigned varint length + 1) and an empty tagged-field section per struct.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from kprod.protocol.messages import ApiKey
from kprod.protocol.varint import encode_uvarint

__all__ = ["ProduceRequest", "MIN_VERSION", "MAX_VERSION"]

MIN_VERSION = 3
MAX_VERSION = 11
_FIRST_FLEXIBLE = 9

_HEADER = struct.Struct(">ihhi")  # frame size, api key, api version, correlation id
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
_NO_TAGS = b"\x00"


def _string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\x00" if flexible else b"\xff\xff"
    data = value.encode()
    return (encode_uvarint(len(data) + 1) if flexible else _INT16.pack(len(data))) + data


class ProduceRequest:
    """One Produce request; :meth:`encode_frame` writes it as kio would.

    ``topic_data``: ``{topic: [(partition, record batch bytes), ...]}``.
    """

    __slots__ = ("__version__", "acks", "timeout_ms", "topic_data", "transactional_id")
    __api_key__ = ApiKey.PRODUCE

    def __init__(
        self,
        version: int,
        acks: int,
        timeout_ms: int,
        topic_data: Mapping[str, Sequence[tuple[int, bytes]]],
        transactional_id: str | None = None,
    ) -> None:
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise ValueError(f"Produce v{version} is not written here (v{MIN_VERSION}-v{MAX_VERSION}).")
        self.__version__ = version
        self.acks = acks
        self.timeout_ms = timeout_ms
        self.topic_data = topic_data
        self.transactional_id = transactional_id

    def __repr__(self) -> str:
        partitions = sum(len(p) for p in self.topic_data.values())
        return f"ProduceRequest(v{self.__version__}, acks={self.acks}, {partitions} partition(s))"

    def encode_frame(self, correlation_id: int, client_id: str | None) -> bytes:
        """The size-prefixed frame: request header, then the body."""
        version = self.__version__
        flexible = version >= _FIRST_FLEXIBLE
        # The header's client id keeps its int16 length even in header v2.
        parts: list[bytes] = [b"", _string(client_id, False)]
        if flexible:
            parts.append(_NO_TAGS)
        parts.append(_string(self.transactional_id, flexible))
        parts.append(_ACKS_TIMEOUT.pack(self.acks, self.timeout_ms))
        topic_data = self.topic_data
        parts.append(encode_uvarint(len(topic_data) + 1) if flexible else _INT32.pack(len(topic_data)))
        for topic, partitions in topic_data.items():
            parts.append(_string(topic, flexible))
            if flexible:
                parts.append(encode_uvarint(len(partitions) + 1))
                for index, records in partitions:
                    parts.append(_INT32.pack(index))
                    parts.append(encode_uvarint(len(records) + 1))
                    parts.append(records)
                    parts.append(_NO_TAGS)
                parts.append(_NO_TAGS)
            else:
                parts.append(_INT32.pack(len(partitions)))
                for index, records in partitions:
                    parts.append(_INT32.pack(index))
                    parts.append(_INT32.pack(len(records)))
                    parts.append(records)
        if flexible:
            parts.append(_NO_TAGS)
        size = 8 + sum(map(len, parts))  # api key, version, correlation id + the rest
        parts[0] = _HEADER.pack(size, ApiKey.PRODUCE, version, correlation_id)
        return b"".join(parts)
