"""Framing and headers, checked against hand-written wire bytes (the connection state machine: test_connection_state.py).

The expected bytes below are written out field by field from the protocol
definition (kafka-protocol.md §1-3), not produced by kio, so a wrong header
version, a compact string where an int16 one belongs or a missing tagged
section shows up as a byte difference.
"""

from __future__ import annotations

import datetime
import struct
import uuid

import pytest

from kprod.errors import ProtocolError
from kprod.protocol.framing import (
    MAX_FRAME_SIZE,
    FrameReader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from kprod.protocol.messages import ApiKey, ErrorCode, request_type, response_module, response_type
from kprod.protocol.requests import metadata_request, produce_request
from kprod.protocol.versions import api_versions_request, broker_ranges


def _frame(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">i", len(body)) + body


# -- golden request bytes -------------------------------------------------------------------


def test_metadata_v1_uses_request_header_v1_and_int16_strings() -> None:
    frame = encode_request(metadata_request(1, ["t1"]), correlation_id=7, client_id="kp")
    expected = _frame(
        bytes.fromhex("0003"),  # api key 3 (Metadata)
        bytes.fromhex("0001"),  # api version 1
        bytes.fromhex("00000007"),  # correlation id
        bytes.fromhex("0002") + b"kp",  # client id: int16 length; header v1 has no tagged section
        bytes.fromhex("00000001"),  # topics: int32 array length 1
        bytes.fromhex("0002") + b"t1",  # topic name: int16 string
    )
    assert frame == expected
    assert len(frame) == 4 + 20


def test_metadata_v1_all_topics_and_null_client_id() -> None:
    frame = encode_request(metadata_request(1, None), correlation_id=0, client_id=None)
    assert frame == _frame(
        bytes.fromhex("0003" "0001" "00000000"),
        bytes.fromhex("ffff"),  # null client id
        bytes.fromhex("ffffffff"),  # null topics array = all topics
    )


def test_produce_v8_non_flexible_golden_bytes() -> None:
    request = produce_request(8, acks=-1, timeout_ms=30000, topic_data={"t": [(2, b"\x01\x02\x03")]})
    frame = encode_request(request, correlation_id=0x01020304, client_id="c")
    assert frame == _frame(
        bytes.fromhex("0000" "0008" "01020304" "0001") + b"c",  # header v1
        bytes.fromhex("ffff"),  # transactional_id: null, int16 length
        bytes.fromhex("ffff"),  # acks -1
        bytes.fromhex("00007530"),  # timeout 30000 ms
        bytes.fromhex("00000001"),  # topic_data: 1 topic
        bytes.fromhex("0001") + b"t",
        bytes.fromhex("00000001"),  # partition_data: 1 partition
        bytes.fromhex("00000002"),  # index 2
        bytes.fromhex("00000003") + b"\x01\x02\x03",  # records: int32 length + bytes
    )


def test_produce_v9_flexible_golden_bytes() -> None:
    request = produce_request(9, acks=1, timeout_ms=1000, topic_data={"t": [(0, b"\xaa\xbb")]})
    frame = encode_request(request, correlation_id=5, client_id="c")
    assert frame == _frame(
        bytes.fromhex("0000" "0009" "00000005" "0001") + b"c",
        bytes.fromhex("00"),  # header v2 tagged section (client id keeps its int16 length)
        bytes.fromhex("00"),  # transactional_id: compact nullable string, null
        bytes.fromhex("0001"),  # acks 1
        bytes.fromhex("000003e8"),  # timeout 1000 ms
        bytes.fromhex("02"),  # topic_data: compact array of 1
        bytes.fromhex("02") + b"t",  # compact string
        bytes.fromhex("02"),  # partition_data: compact array of 1
        bytes.fromhex("00000000"),  # index 0
        bytes.fromhex("03") + b"\xaa\xbb",  # records: compact bytes (uvarint N+1)
        bytes.fromhex("00"),  # partition tagged section
        bytes.fromhex("00"),  # topic tagged section
        bytes.fromhex("00"),  # body tagged section
    )


def test_metadata_v12_flexible_golden_bytes() -> None:
    frame = encode_request(metadata_request(12, ["t1"]), correlation_id=7, client_id="kp")
    expected = _frame(
        bytes.fromhex("0003" "000c" "00000007"),
        bytes.fromhex("0002") + b"kp",  # client id: still int16 length in header v2
        bytes.fromhex("00"),  # header tagged section
        bytes.fromhex("02"),  # topics: compact array of 1
        bytes(16),  # topic_id: zero uuid when asking by name
        bytes.fromhex("03") + b"t1",  # name: compact nullable string
        bytes.fromhex("00"),  # topic element tagged section
        bytes.fromhex("00"),  # allow_auto_topic_creation false
        bytes.fromhex("00"),  # include_topic_authorized_operations false
        bytes.fromhex("00"),  # body tagged section
    )
    assert frame == expected
    assert len(frame) == 4 + 37


def test_api_versions_v3_golden_bytes() -> None:
    frame = encode_request(api_versions_request(3, "1.0"), correlation_id=1, client_id="kprod")
    assert frame == _frame(
        bytes.fromhex("0012" "0003" "00000001" "0005") + b"kprod",
        bytes.fromhex("00"),  # header v2 tagged section
        bytes.fromhex("06") + b"kprod",  # client_software_name: compact string
        bytes.fromhex("04") + b"1.0",  # client_software_version
        bytes.fromhex("00"),
    )


def test_api_versions_v0_request_has_an_empty_body() -> None:
    frame = encode_request(api_versions_request(0, "1.0"), correlation_id=9, client_id="k")
    assert frame == _frame(bytes.fromhex("0012" "0000" "00000009" "0001") + b"k")


def test_server_side_decodes_what_the_client_encodes() -> None:
    request = metadata_request(12, ["a", "b"])
    frame = encode_request(request, correlation_id=42, client_id="me")
    decoded = decode_request(frame[4:])
    assert (decoded.api_key, decoded.api_version, decoded.correlation_id) == (3, 12, 42)
    assert decoded.client_id == "me"
    assert [t.name for t in decoded.request.topics] == ["a", "b"]
    # kio reads the all-zero uuid back as None and writes None as zeros: same bytes again.
    assert encode_request(decoded.request, 42, "me") == frame
    assert decoded.response_header_version == 1


# -- golden response bytes ---------------------------------------------------------------


def _metadata_v12_response_bytes(correlation_id: int) -> bytes:
    """A Metadata v12 response written field by field: one broker, one topic, one partition."""
    return _frame(
        struct.pack(">i", correlation_id),
        bytes.fromhex("00"),  # response header v1 tagged section
        bytes.fromhex("00000000"),  # throttle_time_ms
        bytes.fromhex("02"),  # brokers: compact array of 1
        bytes.fromhex("00000001"),  # node_id 1
        bytes.fromhex("0a") + b"127.0.0.1",  # host
        bytes.fromhex("00002382"),  # port 9090
        bytes.fromhex("00"),  # rack: null
        bytes.fromhex("00"),  # broker tagged section
        bytes.fromhex("04") + b"cid",  # cluster_id
        bytes.fromhex("00000001"),  # controller_id
        bytes.fromhex("02"),  # topics: compact array of 1
        bytes.fromhex("0000"),  # error_code
        bytes.fromhex("02") + b"t",  # name
        uuid.UUID(int=0xABCDEF).bytes,  # topic_id
        bytes.fromhex("00"),  # is_internal
        bytes.fromhex("02"),  # partitions: compact array of 1
        bytes.fromhex("0000"),  # error_code
        bytes.fromhex("00000000"),  # partition_index
        bytes.fromhex("00000001"),  # leader_id
        bytes.fromhex("00000005"),  # leader_epoch
        bytes.fromhex("02" "00000001"),  # replica_nodes [1]
        bytes.fromhex("02" "00000001"),  # isr_nodes [1]
        bytes.fromhex("01"),  # offline_replicas []
        bytes.fromhex("00"),  # partition tagged section
        bytes.fromhex("80000000"),  # topic_authorized_operations (INT32_MIN: not requested)
        bytes.fromhex("00"),  # topic tagged section
        bytes.fromhex("00"),  # body tagged section
    )


def test_metadata_v12_response_decodes_from_hand_written_bytes() -> None:
    frame = _metadata_v12_response_bytes(3)
    correlation_id, response = decode_response(frame[4:], ApiKey.METADATA, 12)
    assert correlation_id == 3
    (broker,) = response.brokers
    assert (broker.node_id, broker.host, broker.port, broker.rack) == (1, "127.0.0.1", 9090, None)
    assert response.cluster_id == "cid"
    assert response.controller_id == 1
    (topic,) = response.topics
    assert (topic.name, topic.topic_id, topic.is_internal) == ("t", uuid.UUID(int=0xABCDEF), False)
    (partition,) = topic.partitions
    assert partition.error_code == ErrorCode.none
    assert (partition.partition_index, partition.leader_id, partition.leader_epoch) == (0, 1, 5)
    assert (tuple(partition.replica_nodes), tuple(partition.isr_nodes)) == ((1,), (1,))
    assert tuple(partition.offline_replicas) == ()


def test_truncated_response_body_raises_protocol_error_naming_the_api() -> None:
    frame = _metadata_v12_response_bytes(3)[4:]
    with pytest.raises(ProtocolError, match=r"Metadata v12 response \(correlation id 3\)"):
        decode_response(frame[:-6], ApiKey.METADATA, 12)


def _unsupported_api_versions_v0_body() -> object:
    module = response_module(ApiKey.API_VERSIONS, 0)
    return module.ApiVersionsResponse(
        error_code=ErrorCode(35),
        api_keys=(module.ApiVersion(api_key=18, min_version=0, max_version=2),),
    )


def test_unsupported_version_answer_is_a_v0_body_with_header_v0() -> None:
    frame = encode_response(_unsupported_api_versions_v0_body(), correlation_id=11)
    assert frame == _frame(
        bytes.fromhex("0000000b"),  # response header v0: correlation id only
        bytes.fromhex("0023"),  # error_code 35 UNSUPPORTED_VERSION
        bytes.fromhex("00000001"),  # api_keys: int32 array of 1
        bytes.fromhex("0012" "0000" "0002"),  # ApiVersions v0-v2
    )


@pytest.mark.parametrize("asked", [1, 3, 4])
def test_api_versions_error_35_decodes_as_v0_whatever_version_was_asked(asked: int) -> None:
    frame = encode_response(_unsupported_api_versions_v0_body(), correlation_id=11)
    correlation_id, response = decode_response(frame[4:], ApiKey.API_VERSIONS, asked)
    assert correlation_id == 11
    assert type(response) is response_type(ApiKey.API_VERSIONS, 0)
    assert response.error_code == ErrorCode(35)
    assert broker_ranges(response) == {18: (0, 2)}


def test_api_versions_v3_success_response_keeps_v3_fields() -> None:
    module = response_module(ApiKey.API_VERSIONS, 3)
    response = module.ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(module.ApiVersion(api_key=0, min_version=3, max_version=12),),
        throttle_time=datetime.timedelta(0),
        supported_features=(),
        finalized_features_epoch=-1,
        finalized_features=(),
        zk_migration_ready=False,
    )
    frame = encode_response(response, correlation_id=2)
    # ApiVersions responses always use header v0, even for a flexible body.
    assert frame[4:8] == bytes.fromhex("00000002")
    assert frame[8:10] == bytes.fromhex("0000")
    correlation_id, decoded = decode_response(frame[4:], ApiKey.API_VERSIONS, 3)
    assert correlation_id == 2
    assert decoded == response
    assert broker_ranges(decoded) == {0: (3, 12)}


# -- FrameReader ------------------------------------------------------------------------------


def test_frame_reader_keeps_partial_frames_fed_one_byte_at_a_time() -> None:
    reader = FrameReader()
    stream = _frame(b"abc") + _frame(b"") + _frame(b"defgh")  # frames end at bytes 7, 11, 20
    frames: list[bytes] = []
    last_end = 0
    for i in range(len(stream)):
        got = reader.feed(stream[i : i + 1])
        if i + 1 in (7, 11, 20):
            assert len(got) == 1
            last_end = i + 1
        else:
            assert got == []
        assert reader.buffered == i + 1 - last_end
        frames += got
    assert frames == [b"abc", b"", b"defgh"]


def test_frame_reader_returns_all_frames_of_one_chunk_and_buffers_the_rest() -> None:
    reader = FrameReader()
    stream = _frame(b"one") + _frame(b"two") + _frame(b"three")[:5]
    assert reader.feed(stream) == [b"one", b"two"]
    assert reader.buffered == 5
    assert reader.feed(_frame(b"three")[5:]) == [b"three"]
    assert reader.buffered == 0


def test_frame_reader_rejects_a_negative_size() -> None:
    with pytest.raises(ProtocolError, match=r"frame of -1 bytes, outside 0\.\.104857600"):
        FrameReader().feed(b"\xff\xff\xff\xff")


def test_frame_reader_rejects_an_oversize_frame() -> None:
    with pytest.raises(ProtocolError, match=r"frame of 11 bytes, outside 0\.\.10"):
        FrameReader(max_size=10).feed(struct.pack(">i", 11))
    with pytest.raises(ProtocolError, match=f"outside 0..{MAX_FRAME_SIZE}"):
        FrameReader().feed(struct.pack(">i", MAX_FRAME_SIZE + 1))
    # The limit itself is allowed.
    reader = FrameReader(max_size=10)
    assert reader.feed(_frame(b"0123456789")) == [b"0123456789"]


def test_frame_reader_returns_whole_frames_as_views_of_the_chunk() -> None:
    chunk = bytearray(_frame(b"abc") + _frame(b"defg"))
    first, second = FrameReader().feed(chunk)
    assert (first.obj, second.obj) == (chunk, chunk)  # not copied
    assert (bytes(first), bytes(second)) == (b"abc", b"defg")


def test_frame_reader_direct_buffer_receives_the_rest_of_a_large_frame() -> None:
    body = bytes(range(256)) * 40  # 10240 bytes
    reader = FrameReader()
    assert reader.direct_buffer(100) is None  # no frame in progress
    assert reader.feed(_frame(body)[:1004]) == []  # size prefix + 1000 bytes
    assert reader.direct_buffer(10240 - 1000) is None  # not more than the threshold missing
    rest = reader.direct_buffer(100)
    assert rest is not None and len(rest) == 10240 - 1000
    rest[:5000] = body[1000:6000]
    assert reader.direct_filled(5000) is None
    assert reader.buffered == 4 + 6000
    rest = reader.direct_buffer(100)
    assert rest is not None and len(rest) == 10240 - 6000
    rest[:] = body[6000:]
    frame = reader.direct_filled(len(rest))
    assert frame is not None and bytes(frame) == body and frame.readonly
    assert reader.buffered == 0 and reader.direct_buffer(0) is None
