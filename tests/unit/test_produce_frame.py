"""The hand-written Produce request (kprod.protocol.produce) against kio, its reference:
the same bytes for every version kprod speaks, and frames kio reads back as written."""

from __future__ import annotations

import random

import pytest

from kprod.protocol.framing import decode_request, encode_request
from kprod.protocol.messages import CLIENT_VERSIONS, ApiKey
from kprod.protocol.produce import MAX_VERSION, MIN_VERSION, ProduceRequest
from kprod.protocol.requests import produce_request

VERSIONS = range(MIN_VERSION, MAX_VERSION + 1)

# Record lengths around the uvarint and int16 boundaries of compact bytes.
SIZES = (0, 1, 126, 127, 128, 16382, 16383, 16384, 70_000)

SHAPES: dict[str, dict[str, list[tuple[int, bytes]]]] = {
    "no topics": {},
    "one partition": {"t": [(0, b"\x01\x02\x03")]},
    "two partitions": {"orders": [(0, b"a" * 100), (5, b"b" * 300)]},
    "two topics": {"orders": [(1, b"x" * 200)], "payments-ü": [(0, b""), (2, b"y" * 130), (9, b"z")]},
    "sizes": {"t": [(i, bytes([i]) * size) for i, size in enumerate(SIZES)]},
    "long topic name": {"n" * 249: [(2_147_483_647, b"r")]},
}


def kio_frame(version: int, acks: int, timeout_ms: int, topic_data: dict[str, list[tuple[int, bytes]]],
              transactional_id: str | None, correlation_id: int, client_id: str | None) -> bytes:
    request = produce_request(version, acks, timeout_ms, topic_data, transactional_id)
    assert type(request) is not ProduceRequest
    return encode_request(request, correlation_id, client_id)


def test_covers_every_produce_version_kprod_negotiates() -> None:
    low, high = CLIENT_VERSIONS[ApiKey.PRODUCE]
    assert (low, high) == (MIN_VERSION, MAX_VERSION)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_same_bytes_as_kio(version: int, shape: str) -> None:
    topic_data = SHAPES[shape]
    for acks, transactional_id, client_id, correlation_id in (
        (1, None, "kprod-producer-1", 0),
        (-1, "tx-ü", None, 2_147_483_647),
        (0, "", "", 12345),
    ):
        request = ProduceRequest(version, acks, 30_000, topic_data, transactional_id)
        ours = encode_request(request, correlation_id, client_id)
        assert ours == kio_frame(version, acks, 30_000, topic_data, transactional_id, correlation_id, client_id)


@pytest.mark.parametrize("version", VERSIONS)
def test_random_requests_match_kio(version: int) -> None:
    rng = random.Random(version)
    for _ in range(25):
        topic_data = {
            f"topic-{t}-{rng.randrange(10**6)}": [
                (rng.randrange(2**31), rng.randbytes(rng.choice((0, 1, 127, 128, 300, 20_000))))
                for _ in range(rng.randrange(1, 5))
            ]
            for t in range(rng.randrange(1, 4))
        }
        acks = rng.choice((-1, 0, 1))
        timeout = rng.randrange(2**31)
        correlation_id = rng.randrange(2**31)
        ours = ProduceRequest(version, acks, timeout, topic_data).encode_frame(correlation_id, "kp")
        assert ours == kio_frame(version, acks, timeout, topic_data, None, correlation_id, "kp")


@pytest.mark.parametrize("version", VERSIONS)
def test_kio_reads_back_what_was_written(version: int) -> None:
    topic_data = SHAPES["two topics"]
    frame = ProduceRequest(version, -1, 1500, topic_data, "tx").encode_frame(77, "client")
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    decoded = decode_request(frame[4:])
    assert (decoded.api_key, decoded.api_version, decoded.correlation_id, decoded.client_id) == (
        ApiKey.PRODUCE, version, 77, "client")
    body = decoded.request
    assert (body.transactional_id, int(body.acks)) == ("tx", -1)
    assert {t.name: [(int(p.index), bytes(p.records)) for p in t.partition_data] for t in body.topic_data} == topic_data


@pytest.mark.parametrize("version", (0, 2, 12, 13))
def test_versions_outside_the_range_are_refused(version: int) -> None:
    with pytest.raises(ValueError, match=f"Produce v{version}"):
        ProduceRequest(version, 1, 1000, {"t": [(0, b"x")]})
