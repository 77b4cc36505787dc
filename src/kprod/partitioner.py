"""Partitioning: Java-compatible murmur2 key hashing (partitioner classes follow below it).

A keyed record must land on the same partition as with the Java client, so
``partition_for_key`` reproduces ``Utils.toPositive(Utils.murmur2(key)) % n``
bit for bit: 32-bit wraparound, seed 0x9747b28c, little-endian 4-byte words,
logical shifts, and ``h & 0x7fffffff`` (not ``abs``).
"""

from __future__ import annotations

import importlib
import itertools
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, runtime_checkable

from kprod import _native
from kprod.errors import ConfigError, InvalidArgumentError, InvalidArgumentTypeError
from kprod.producer.recordcheck import MAX_PARTITIONS

__all__ = ["murmur2", "partition_for_key", "partitions_for_keys", "Partitioner", "RoundRobinPartitioner", "resolve_partitioner"]

# --- murmur2 ------------------------------------------------------------------------

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
# Unpackers of n little-endian uint32 words for keys up to 256 bytes; longer keys build one.
_CACHED_WORDS: Final = 64
_WORD_UNPACKERS: Final = tuple(struct.Struct(f"<{n}I").unpack_from for n in range(_CACHED_WORDS + 1))


def _murmur2_unsigned(data: bytes | bytearray | memoryview) -> int:
    length = len(data)
    words = length >> 2
    unpack = _WORD_UNPACKERS[words] if words <= _CACHED_WORDS else struct.Struct(f"<{words}I").unpack_from
    h = _SEED ^ length
    # Per word: k *= m; k ^= k >>> 24; k *= m; h = h * m ^ k. Masking once after the
    # XOR is exact because XOR and "mod 2**32" commute; k must be masked before its shift.
    for k in unpack(data):
        k = (k * _M) & _MASK
        h = ((h * _M) ^ ((k ^ (k >> 24)) * _M)) & _MASK
    tail = length & 3
    if tail:
        i = words << 2
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def _murmur2_py(data: bytes | bytearray | memoryview) -> int:
    """Kafka's murmur2 of ``data`` as Java returns it: a signed 32-bit int (pure Python)."""
    h = _murmur2_unsigned(data)
    return h - 0x100000000 if h & 0x80000000 else h


#: Kafka's murmur2 of ``data`` as Java returns it: a signed 32-bit int. Compiled
#: (``kprod._speedups``, ~40 ns per 16-byte key) when built, else ``_murmur2_py`` (~1.5 µs).
murmur2: Callable[[bytes | bytearray | memoryview], int] = (
    _native.speedups.murmur2 if _native.speedups is not None else _murmur2_py
)


def _partitions_for_keys_py(keys: Sequence[bytes | None], num_partitions: int) -> list[int]:
    """``partition_for_key`` of each key, -1 for a null key (pure Python)."""
    _check_count(num_partitions)
    return [-1 if key is None else (murmur2(key) & 0x7FFFFFFF) % num_partitions for key in keys]


_partitions_for_keys_impl: Callable[[Sequence[bytes | None], int], list[int]] = (
    _native.speedups.partitions_for_keys if _native.speedups is not None else _partitions_for_keys_py
)


def _check_count(num_partitions: Any) -> None:
    """A partition count is an int from 1 to 2**31 - 1 (Kafka's partition numbers are int32)."""
    if type(num_partitions) is not int or not 1 <= num_partitions <= MAX_PARTITIONS:
        error = InvalidArgumentError if type(num_partitions) is int else InvalidArgumentTypeError
        raise error(f"num_partitions must be an int from 1 to 2**31 - 1, got {num_partitions!r}.",
                    field="num_partitions")


def partitions_for_keys(keys: Sequence[bytes | None], num_partitions: int) -> list[int]:
    """The partition Java's default partitioner picks for each serialized key of a
    sequence, -1 for a null key (the sticky partitioner places those); for send_many().
    Compiled (``kprod._speedups``) when built."""
    _check_count(num_partitions)
    return _partitions_for_keys_impl(keys, num_partitions)


def partition_for_key(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    """The partition Java's default partitioner picks for a non-null serialized key."""
    _check_count(num_partitions)
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


# --- partitioners (added by the producer layer) ----------------------------------------


class Cluster(Protocol):
    """What a custom partitioner may ask about the cluster."""

    def partition_count(self, topic: str) -> int: ...
    def partitions_for_topic(self, topic: str) -> list[Any]: ...
    def available_partitions_for_topic(self, topic: str) -> list[int]: ...


@runtime_checkable
class Partitioner(Protocol):
    """A custom partitioner (``partitioner.class``), as Java's ``Partitioner``.

    ``partition`` returns the partition for a record whose ``partition`` was
    not given; it runs on the sending thread for every such record, so it
    should be quick. ``configure(configs)`` and ``close()`` are optional.
    """

    def partition(self, topic: str, key: Any, key_bytes: bytes | None, value: Any,
                  value_bytes: bytes | None, cluster: Cluster) -> int: ...


class RoundRobinPartitioner:
    """Java's ``RoundRobinPartitioner``: records spread evenly, keys ignored."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def partition(self, topic: str, key: Any, key_bytes: bytes | None, value: Any,
                  value_bytes: bytes | None, cluster: Cluster) -> int:
        with self._lock:
            counter = self._counters.get(topic)
            if counter is None:
                counter = self._counters[topic] = itertools.count()
            n = next(counter)
        available = cluster.available_partitions_for_topic(topic)
        if available:
            return available[n % len(available)]
        return n % cluster.partition_count(topic)


_BUILT_IN = {
    "org.apache.kafka.clients.producer.RoundRobinPartitioner": RoundRobinPartitioner,
    "RoundRobinPartitioner": RoundRobinPartitioner,
    "round_robin": RoundRobinPartitioner,
}
_DEFAULT_NAMES = frozenset({
    "org.apache.kafka.clients.producer.internals.DefaultPartitioner",
    "org.apache.kafka.clients.producer.UniformStickyPartitioner",
    "default",
})


def resolve_partitioner(spec: Any, config: Mapping[str, Any] | None = None) -> Partitioner | None:
    """The ``partitioner.class`` setting as a partitioner object; None = built-in.

    Accepts None (the built-in murmur2 / uniform sticky partitioning), a
    partitioner object or class, a function with ``partition``'s signature,
    or a dotted ``module.Class`` name.
    """
    if spec is None or spec in _DEFAULT_NAMES:
        return None
    if isinstance(spec, str):
        target = _BUILT_IN.get(spec)
        if target is None:
            module_name, _, attr = spec.rpartition(".")
            try:
                target = getattr(importlib.import_module(module_name), attr) if module_name else None
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"partitioner.class {spec!r} could not be loaded: {exc}.") from exc
            if target is None:
                raise ConfigError(f"partitioner.class {spec!r}: give 'package.module.ClassName' or a partitioner object.")
        spec = target
    partitioner = spec() if isinstance(spec, type) else spec
    if not hasattr(partitioner, "partition"):
        if callable(partitioner):
            partitioner = _FunctionPartitioner(partitioner)
        else:
            raise ConfigError(
                f"partitioner.class {spec!r} is not a partitioner: it needs "
                "partition(topic, key, key_bytes, value, value_bytes, cluster)."
            )
    configure = getattr(partitioner, "configure", None)
    if configure is not None and config is not None:
        configure(dict(getattr(config, "originals", config)))
    return partitioner  # type: ignore[no-any-return]


class _FunctionPartitioner:
    __slots__ = ("partition",)

    def __init__(self, fn: Any) -> None:
        self.partition = fn
