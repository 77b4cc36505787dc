"""Encode a response whose record fields are spliced in as buffers, not copied.

A Fetch response may carry megabytes of stored batches. Encoding them through
kio would copy every byte into a buffer twice; instead each partition's
``records`` field is encoded with a unique 16-byte placeholder, and the
encoded frame is cut around the placeholders: the result is a list of buffers
(frame pieces and the stored batch objects themselves) for one ``sendmsg``.
Only the length prefix in front of each placeholder is rewritten.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Sequence
from typing import Any

from kprod.protocol.framing import encode_response
from kprod.protocol.varint import encode_uvarint

__all__ = ["new_placeholder", "encode_spliced"]

_PLACEHOLDER_SIZE = 16
_PREFIX = os.urandom(_PLACEHOLDER_SIZE - 4)
_counter = itertools.count()
_I32 = struct.Struct(">i")
# the length prefix kio writes in front of a 16-byte bytes field
_FLEXIBLE_LENGTH = encode_uvarint(_PLACEHOLDER_SIZE + 1)
_CLASSIC_LENGTH = _I32.pack(_PLACEHOLDER_SIZE)


def new_placeholder() -> bytes:
    """16 bytes that cannot occur by chance in a response (random per process, counted)."""
    return _PREFIX + (next(_counter) & 0xFFFFFFFF).to_bytes(4, "big")


def encode_spliced(
    entity: Any, correlation_id: int, payloads: Sequence[tuple[bytes, Sequence[bytes]]]
) -> list[bytes | memoryview]:
    """The size-prefixed frame of ``entity`` with each placeholder replaced by its buffers.

    ``payloads`` lists (placeholder, buffers) in the order the placeholders
    appear in the response.
    """
    frame = encode_response(entity, correlation_id)
    if not payloads:
        return [frame]
    flexible = bool(getattr(entity, "__flexible__", False))
    old_prefix = _FLEXIBLE_LENGTH if flexible else _CLASSIC_LENGTH
    view = memoryview(frame)
    pieces: list[bytes | memoryview] = [b""]  # the size prefix, filled in at the end
    cursor = 4
    size = len(frame) - 4
    for placeholder, buffers in payloads:
        at = frame.find(old_prefix + placeholder, cursor)
        if at < 0:
            raise RuntimeError("a record placeholder is missing from the encoded response")
        length = sum(len(b) for b in buffers)
        new_prefix = encode_uvarint(length + 1) if flexible else _I32.pack(length)
        pieces.append(view[cursor:at])
        pieces.append(new_prefix)
        pieces.extend(buffers)
        cursor = at + len(old_prefix) + _PLACEHOLDER_SIZE
        size += len(new_prefix) - len(old_prefix) + length - _PLACEHOLDER_SIZE
    pieces.append(view[cursor:])
    pieces[0] = _I32.pack(size)
    return pieces
