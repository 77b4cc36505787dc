"""murmur2 and keyed partitioning match the Java client bit for bit."""

from __future__ import annotations

import random

import pytest
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from kprod.partitioner import murmur2, partition_for_key


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # Kafka's UtilsTest vectors (kafka-protocol.md §7)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_java_utils_test_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize(
    ("key", "positive", "partition"),
    [
        (b"21", 1173551340, 0),
        (b"abc", 479470107, 3),
        (b"a-little-bit-long-string", 1161502112, 2),
        (b"a-little-bit-longer-string", 661178819, 5),
    ],
)
def test_six_partition_table(key: bytes, positive: int, partition: int) -> None:
    assert murmur2(key) & 0x7FFFFFFF == positive
    assert partition_for_key(key, 6) == partition


@pytest.mark.parametrize(("key", "partition"), [(b"", 681), (b"a", 524), (b"123456789", 566)])
def test_thousand_partitions(key: bytes, partition: int) -> None:
    # kafka-python's Java-compatibility vectors
    assert partition_for_key(key, 1000) == partition


def test_to_positive_is_a_mask_not_abs() -> None:
    key = b"21"  # negative hash: abs() would give 973932308
    assert murmur2(key) < 0
    assert partition_for_key(key, 1000) == 1173551340 % 1000 != abs(murmur2(key)) % 1000


def test_every_length_and_tail_against_kafka_python() -> None:
    rng = random.Random(99)
    for length in range(0, 300):
        for _ in range(3):
            key = bytes(rng.getrandbits(8) for _ in range(length))
            assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key), (length, key)


def test_bytes_like_inputs_hash_the_same() -> None:
    key = b"order-12345-\xff\x00\x80"
    assert murmur2(bytearray(key)) == murmur2(memoryview(key)) == murmur2(key)
    assert partition_for_key(memoryview(key), 7) == partition_for_key(key, 7)


def test_result_is_a_signed_32_bit_int() -> None:
    rng = random.Random(5)
    for _ in range(500):
        h = murmur2(rng.randbytes(rng.randrange(40)))
        assert -(1 << 31) <= h < (1 << 31)


@pytest.mark.parametrize("bad", [0, -3])
def test_partition_count_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match=r"num_partitions must be an int from 1 to 2\*\*31 - 1"):
        partition_for_key(b"k", bad)
