"""Builders for the requests kprod sends, at any negotiated version.

kio generates one entity class per API version, and fields come and go
between versions. These builders take plain Python values and fill the
entity of the requested version, leaving out fields that version lacks, so
callers above the protocol layer never touch kio.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kprod.protocol.entities import make_entity, ms, to_millis
from kprod.protocol.messages import ApiKey, request_module, request_type

__all__ = [
    "metadata_request",
    "produce_request",
    "init_producer_id_request",
    "create_topics_request",
    "delete_topics_request",
    "fetch_request",
    "list_offsets_request",
    "ms",
    "to_millis",
]

_ZERO_UUID = uuid.UUID(int=0)


def metadata_request(version: int, topics: Iterable[str] | None, *, allow_auto_topic_creation: bool = False) -> Any:
    """Metadata for ``topics`` (None = all topics)."""
    module = request_module(ApiKey.METADATA, version)
    topic_cls = module.MetadataRequestTopic
    topic_entities = None
    if topics is not None:
        topic_entities = tuple(make_entity(topic_cls, name=t, topic_id=_ZERO_UUID) for t in topics)
    return make_entity(
        module.MetadataRequest,
        topics=topic_entities,
        allow_auto_topic_creation=allow_auto_topic_creation,
        include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False,
    )


def produce_request(
    version: int,
    acks: int,
    timeout_ms: int,
    topic_data: Mapping[str, Sequence[tuple[int, bytes]]],
    transactional_id: str | None = None,
) -> Any:
    """Produce one record batch per partition: ``{topic: [(partition, batch bytes), ...]}``.

    The kio entity: the reference for :class:`kprod.protocol.produce.ProduceRequest`,
    which the producer sends (same bytes, framed without kio's per-field cost).
    """
    module = request_module(ApiKey.PRODUCE, version)
    partition_cls = module.PartitionProduceData
    topic_cls = module.TopicProduceData
    return module.ProduceRequest(
        transactional_id=transactional_id,
        acks=acks,
        timeout=ms(timeout_ms),
        topic_data=tuple(
            topic_cls(
                name=topic,
                partition_data=tuple(partition_cls(index=p, records=batch) for p, batch in partitions),
            )
            for topic, partitions in topic_data.items()
        ),
    )


def init_producer_id_request(
    version: int,
    *,
    transactional_id: str | None = None,
    transaction_timeout_ms: int = 2**31 - 1,
    producer_id: int = -1,
    producer_epoch: int = -1,
) -> Any:
    """InitProducerId; an idempotent-only producer sends a null transactional id."""
    return make_entity(
        request_type(ApiKey.INIT_PRODUCER_ID, version),
        transactional_id=transactional_id,
        transaction_timeout=ms(transaction_timeout_ms),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
    )


def create_topics_request(
    version: int,
    topics: Sequence[tuple[str, int, int, Mapping[str, str] | None]],
    *,
    timeout_ms: int = 30000,
    validate_only: bool = False,
) -> Any:
    """CreateTopics for ``[(name, partitions, replication factor, configs), ...]``."""
    module = request_module(ApiKey.CREATE_TOPICS, version)
    config_cls = module.CreatableTopicConfig
    topic_cls = module.CreatableTopic
    return make_entity(
        module.CreateTopicsRequest,
        topics=tuple(
            make_entity(
                topic_cls,
                name=name,
                num_partitions=partitions,
                replication_factor=replication,
                assignments=(),
                configs=tuple(config_cls(name=k, value=v) for k, v in (configs or {}).items()),
            )
            for name, partitions, replication, configs in topics
        ),
        timeout=ms(timeout_ms),
        validate_only=validate_only,
    )


def delete_topics_request(version: int, topics: Sequence[str], *, timeout_ms: int = 30000) -> Any:
    """DeleteTopics by name."""
    module = request_module(ApiKey.DELETE_TOPICS, version)
    topic_state = getattr(module, "DeleteTopicState", None)
    return make_entity(
        module.DeleteTopicsRequest,
        topic_names=tuple(topics),
        topics=tuple(make_entity(topic_state, name=t, topic_id=_ZERO_UUID) for t in topics) if topic_state else (),
        timeout=ms(timeout_ms),
    )


def fetch_request(
    version: int,
    partitions: Mapping[str, Sequence[tuple[int, int]]],
    *,
    max_wait_ms: int = 500,
    min_bytes: int = 1,
    max_bytes: int = 52428800,
    partition_max_bytes: int = 1048576,
    isolation_level: int = 0,
) -> Any:
    """Fetch ``{topic: [(partition, fetch offset), ...]}`` as a consumer (replica id -1)."""
    module = request_module(ApiKey.FETCH, version)
    partition_cls = module.FetchPartition
    topic_cls = module.FetchTopic
    return make_entity(
        module.FetchRequest,
        cluster_id=None,
        replica_id=-1,
        max_wait=ms(max_wait_ms),
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation_level,
        session_id=0,
        session_epoch=-1,
        topics=tuple(
            make_entity(
                topic_cls,
                topic=topic,
                topic_id=_ZERO_UUID,
                partitions=tuple(
                    make_entity(
                        partition_cls,
                        partition=p,
                        current_leader_epoch=-1,
                        fetch_offset=offset,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=partition_max_bytes,
                    )
                    for p, offset in parts
                ),
            )
            for topic, parts in partitions.items()
        ),
        forgotten_topics_data=(),
        rack_id="",
    )


def list_offsets_request(version: int, partitions: Mapping[str, Sequence[tuple[int, int]]]) -> Any:
    """ListOffsets ``{topic: [(partition, timestamp), ...]}`` (-1 latest, -2 earliest)."""
    module = request_module(ApiKey.LIST_OFFSETS, version)
    partition_cls = module.ListOffsetsPartition
    topic_cls = module.ListOffsetsTopic
    return make_entity(
        module.ListOffsetsRequest,
        replica_id=-1,
        isolation_level=0,
        topics=tuple(
            topic_cls(
                name=topic,
                partitions=tuple(
                    make_entity(partition_cls, partition_index=p, current_leader_epoch=-1, timestamp=ts, max_num_offsets=1)
                    for p, ts in parts
                ),
            )
            for topic, parts in partitions.items()
        ),
    )
