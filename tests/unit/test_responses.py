"""Normalised responses: every field present at every version, version defaults filled.

Each response is written to wire bytes by kio at one version and read back
the way the client reads it (``decode_response``), then normalised; so a
field a version lacks must come out as the documented default, and a field it
has must come out as sent.
"""

from __future__ import annotations

import datetime
from dataclasses import fields
from typing import Any

import pytest

from kprod.protocol.framing import decode_response, encode_response
from kprod.protocol.messages import CLIENT_VERSIONS, ApiKey, ErrorCode, response_module
from kprod.protocol.responses import (
    NO_LEADER,
    ApiVersionsResult,
    BrokerMetadata,
    InitProducerIdResult,
    LeaderIdAndEpoch,
    MetadataResult,
    PartitionMetadata,
    ProduceResult,
    RecordError,
    TopicMetadata,
    api_versions_result,
    init_producer_id_result,
    metadata_result,
    produce_results,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _entity(cls: type[Any], **values: Any) -> Any:
    """``cls`` with the values it has fields for (a version lacks some), defaults for the rest."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def _wire(api_key: int, version: int, response: Any) -> Any:
    """``response`` as the client reads it: kio writes it at ``version``, the client decodes it."""
    _, decoded = decode_response(encode_response(response, 3)[4:], api_key, version)
    return decoded


def _versions(api_key: ApiKey) -> list[int]:
    low, high = CLIENT_VERSIONS[api_key]
    return list(range(low, high + 1))


# -- Produce -------------------------------------------------------------------------------------


def _produce_response(version: int) -> Any:
    m = response_module(ApiKey.PRODUCE, version)
    ok = _entity(
        m.PartitionProduceResponse, index=1, error_code=ErrorCode.none, base_offset=500,
        log_append_time=_EPOCH + datetime.timedelta(milliseconds=1_700_000_000_123), log_start_offset=7,
        record_errors=(), error_message=None,
    )
    failed = _entity(
        m.PartitionProduceResponse, index=0, error_code=ErrorCode(6), base_offset=-1, log_append_time=None,
        log_start_offset=-1, error_message="not the leader",
        record_errors=(_entity(m.BatchIndexAndErrorMessage, batch_index=2, batch_index_error_message="bad") ,)
        if version >= 8 else (),
        **({"current_leader": m.LeaderIdAndEpoch(leader_id=3, leader_epoch=9)} if version >= 10 else {}),
    )
    topic = _entity(m.TopicProduceResponse, name="t", partition_responses=(failed, ok))
    extra: dict[str, Any] = {}
    if version >= 10:
        extra["node_endpoints"] = (_entity(m.NodeEndpoint, node_id=3, host="b3", port=9093, rack=None),)
    return _wire(ApiKey.PRODUCE, version, _entity(
        m.ProduceResponse, responses=(topic,), throttle_time=datetime.timedelta(milliseconds=25), **extra))


@pytest.mark.parametrize("version", _versions(ApiKey.PRODUCE))
def test_produce_results_at_every_version(version: int) -> None:
    results = produce_results(_produce_response(version))
    assert set(results.partitions) == {("t", 0), ("t", 1)}
    ok = results.partitions[("t", 1)]
    assert ok == ProduceResult(0, 500, 1_700_000_000_123, 7 if version >= 5 else -1, None, (), NO_LEADER)
    failed = results.partitions[("t", 0)]
    assert (failed.error_code, failed.base_offset, failed.log_append_time) == (6, -1, -1)
    assert failed.log_start_offset == -1
    assert failed.error_message == ("not the leader" if version >= 8 else None)
    assert failed.record_errors == ((RecordError(2, "bad"),) if version >= 8 else ())
    assert failed.current_leader == (LeaderIdAndEpoch(3, 9) if version >= 10 else NO_LEADER)
    assert results.node_endpoints == ({3: ("b3", 9093)} if version >= 10 else {})
    assert results.throttle_time_ms == 25
    # Plain values only: nothing of kio reaches the producer.
    assert type(ok.error_code) is int and type(failed.error_code) is int


def test_produce_results_without_a_leader_hint_keep_no_leader() -> None:
    m = response_module(ApiKey.PRODUCE, 11)
    failed = m.PartitionProduceResponse(
        index=0, error_code=ErrorCode(6), base_offset=-1, log_append_time=None, log_start_offset=-1,
        record_errors=(), error_message=None,
    )
    response = _wire(ApiKey.PRODUCE, 11, m.ProduceResponse(
        responses=(m.TopicProduceResponse(name="t", partition_responses=(failed,)),),
        throttle_time=datetime.timedelta(0)))
    assert produce_results(response).partitions[("t", 0)].current_leader is NO_LEADER


# -- Metadata ------------------------------------------------------------------------------------


def _metadata_response(version: int) -> Any:
    m = response_module(ApiKey.METADATA, version)
    partitions = tuple(
        _entity(m.MetadataResponsePartition, error_code=ErrorCode.none, partition_index=index, leader_id=leader,
                leader_epoch=4, replica_nodes=(1, 2), isr_nodes=(leader,), offline_replicas=(2,))
        for index, leader in ((1, 2), (0, 1))  # out of order on purpose
    )
    topics = (
        _entity(m.MetadataResponseTopic, error_code=ErrorCode.none, name="t", is_internal=False,
                partitions=partitions, topic_id=None, topic_authorized_operations=-2147483648),
        _entity(m.MetadataResponseTopic, error_code=ErrorCode(3), name="gone", is_internal=False, partitions=(),
                topic_id=None, topic_authorized_operations=-2147483648),
    )
    brokers = (_entity(m.MetadataResponseBroker, node_id=1, host="h1", port=9091, rack="r1"),)
    return _wire(ApiKey.METADATA, version, _entity(
        m.MetadataResponse, throttle_time=datetime.timedelta(milliseconds=5), brokers=brokers, cluster_id="cid",
        controller_id=1, topics=topics, cluster_authorized_operations=-2147483648))


@pytest.mark.parametrize("version", _versions(ApiKey.METADATA))
def test_metadata_result_at_every_version(version: int) -> None:
    result = metadata_result(_metadata_response(version))
    epoch = 4 if version >= 7 else -1
    offline = (2,) if version >= 5 else ()
    assert result == MetadataResult(
        brokers=(BrokerMetadata(1, "h1", 9091, "r1"),),
        cluster_id="cid" if version >= 2 else None,
        controller_id=1,
        topics=(
            TopicMetadata("t", 0, False, (
                PartitionMetadata(0, 0, 1, epoch, (1, 2), (1,), offline),
                PartitionMetadata(1, 0, 2, epoch, (1, 2), (2,), offline),
            )),
            TopicMetadata("gone", 3, False, ()),
        ),
        throttle_time_ms=5 if version >= 3 else 0,
    )


# -- InitProducerId, ApiVersions ---------------------------------------------------------------


@pytest.mark.parametrize("version", _versions(ApiKey.INIT_PRODUCER_ID))
def test_init_producer_id_result_at_every_version(version: int) -> None:
    m = response_module(ApiKey.INIT_PRODUCER_ID, version)
    response = _wire(ApiKey.INIT_PRODUCER_ID, version, m.InitProducerIdResponse(
        throttle_time=datetime.timedelta(milliseconds=2), error_code=ErrorCode.none, producer_id=4000,
        producer_epoch=3))
    assert init_producer_id_result(response) == InitProducerIdResult(0, 4000, 3, 2)


@pytest.mark.parametrize("version", _versions(ApiKey.API_VERSIONS))
def test_api_versions_result_at_every_version(version: int) -> None:
    m = response_module(ApiKey.API_VERSIONS, version)
    response = _wire(ApiKey.API_VERSIONS, version, _entity(
        m.ApiVersionsResponse, error_code=ErrorCode.none,
        api_keys=(m.ApiVersion(api_key=0, min_version=3, max_version=13),),
        throttle_time=datetime.timedelta(milliseconds=9), supported_features=(), finalized_features_epoch=-1,
        finalized_features=(), zk_migration_ready=False))
    assert api_versions_result(response) == ApiVersionsResult(0, {0: (3, 13)}, 9 if version >= 1 else 0)
