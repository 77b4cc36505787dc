"""The cluster's building blocks without sockets: log, producer state, election rules, settings, splicing."""

from __future__ import annotations

import pytest

from kprod.cluster.config import DEFAULT_RETENTION_BYTES, parse_broker_config, parse_topic_config
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.idempotence import ProducerStates
from kprod.cluster.log import PartitionLog
from kprod.cluster.splice import encode_spliced, new_placeholder
from kprod.cluster.state import ClusterState
from kprod.protocol.framing import decode_response
from kprod.protocol.messages import ApiKey, ErrorCode, response_module
from kprod.protocol.records import RecordBatchBuilder, assign_offsets
from kprod.protocol.requests import ms


def _stamped(base: int, count: int, size: int = 10) -> bytes:
    builder = RecordBatchBuilder()
    for i in range(count):
        builder.append(1000 + i, None, b"x" * size)
    return assign_offsets(builder.build(), base)


class TestPartitionLog:
    def test_append_and_read(self) -> None:
        log = PartitionLog(retention_bytes=-1)
        batches = [_stamped(0, 2), _stamped(2, 3), _stamped(5, 1)]
        for batch, count in zip(batches, (2, 3, 1)):
            log.append(batch, count)
        assert (log.log_start_offset, log.end_offset, len(log)) == (0, 6, 3)
        assert log.read(0, 10**6) == (batches, sum(map(len, batches)))
        assert log.read(3, 10**6)[0] == batches[1:]  # the batch holding offset 3 onwards
        assert log.read(5, 1)[0] == batches[2:]  # min_one: one batch even over the limit
        assert log.read(5, 1, min_one=False) == ([], 0)
        assert log.read(6, 100) == ([], 0)

    def test_retention_drops_oldest_batches_but_keeps_the_newest(self) -> None:
        batch_size = len(_stamped(0, 1))
        log = PartitionLog(retention_bytes=3 * batch_size)
        for offset in range(2000):
            log.append(_stamped(offset, 1), 1)
        assert log.end_offset == 2000
        assert log.log_start_offset == 1997
        assert log.size_bytes == 3 * batch_size
        assert len(log.batches()) == 3
        assert log.read(1997, 10**6)[0] == log.batches()
        tiny = PartitionLog(retention_bytes=1)
        tiny.append(_stamped(0, 1), 1)
        tiny.append(_stamped(1, 1), 1)
        assert (tiny.log_start_offset, len(tiny)) == (1, 1)

    def test_timestamp_lookups(self) -> None:
        log = PartitionLog(retention_bytes=-1)
        log.append(_stamped(0, 3), 3)  # timestamps 1000..1002
        log.append(_stamped(3, 2), 2)  # 1000..1001
        assert log.offset_for_timestamp(1001) == (1, 1001)
        assert log.offset_for_timestamp(1003) is None
        assert log.max_timestamp() == (2, 1002)


class TestProducerStates:
    def test_rules(self) -> None:
        states = ProducerStates()
        assert states.check(7, 0, 10, 12).error_code == 0  # unknown producer: any sequence
        states.record(7, 0, 10, 12, base_offset=100, log_append_time=-1)
        duplicate = states.check(7, 0, 10, 12)
        assert duplicate.error_code == 0 and duplicate.duplicate_of is not None
        assert duplicate.duplicate_of.base_offset == 100
        assert states.check(7, 0, 13, 14).error_code == 0
        assert states.check(7, 0, 14, 15).error_code == 45
        assert states.check(7, 1, 3, 4).error_code == 45
        assert states.check(7, 1, 0, 4).error_code == 0
        states.record(7, 1, 0, 4, base_offset=200, log_append_time=-1)
        assert states.check(7, 0, 13, 14).error_code == 47
        assert states.epoch_of(7) == 1


class TestElection:
    def _state(self) -> ClusterState:
        state = ClusterState([(n, "127.0.0.1", 9000 + n) for n in range(3)], parse_broker_config(None))
        for broker in state.brokers.values():
            broker.running = True
        state.create_topic("t", 1, 3)
        return state

    def test_stop_elects_next_in_sync_replica(self) -> None:
        state = self._state()
        partition = state.partition("t", 0)
        assert (partition.replicas, partition.leader) == ((0, 1, 2), 0)
        state.stop_broker(0)
        assert (partition.leader, partition.leader_epoch, partition.isr) == (1, 1, [1, 2])
        state.stop_broker(1)
        state.stop_broker(2)
        assert (partition.leader, partition.isr) == (-1, [2])
        state.start_broker(0)  # not in the ISR: no unclean election
        assert partition.leader == -1
        state.start_broker(2)
        assert (partition.leader, partition.isr) == (2, [0, 2])

    def test_stalled_replica_stays_out_until_restored(self) -> None:
        state = self._state()
        partition = state.partition("t", 0)
        state.shrink_isr("t", 0, [0, 2])
        partition.log.append(_stamped(0, 4), 4)
        assert partition.replica_end_offset(1) == 0
        assert partition.replica_end_offset(2) == 4
        state.stop_broker(0)  # 1 is stalled, so 2 leads
        assert partition.leader == 2
        state.restore_isr("t", 0)
        assert partition.isr == [1, 2] and partition.replica_end_offset(1) == 4

    def test_epoch_boundaries(self) -> None:
        state = self._state()
        partition = state.partition("t", 0)
        partition.log.append(_stamped(0, 4), 4)
        state.move_leader("t", 0, 1)
        partition.log.append(_stamped(4, 2), 2)
        state.stop_broker(1)
        assert partition.leader_epoch == 2
        assert [partition.end_offset_for_epoch(e) for e in (0, 1, 2, 3)] == [(0, 4), (1, 6), (2, 6), (-1, -1)]

    def test_changes_are_announced(self) -> None:
        state = self._state()
        changed: list[str] = []
        state.on_change = lambda partitions: changed.extend(p.name for p in partitions)
        state.move_leader("t", 0, 2)
        state.stop_broker(1)
        assert changed == ["t-0", "t-0"]


class TestSettings:
    def test_defaults_follow_kafka_except_retention(self) -> None:
        config = parse_broker_config(None)
        assert (config.auto_create_topics, config.num_partitions, config.default_replication_factor) == (True, 1, 1)
        assert config.topic_defaults.min_insync_replicas == 1
        assert config.topic_defaults.max_message_bytes == 1048588
        assert config.topic_defaults.retention_bytes == DEFAULT_RETENTION_BYTES

    def test_topic_overrides_and_errors(self) -> None:
        defaults = parse_broker_config({"log.message.timestamp.type": "LogAppendTime"}).topic_defaults
        assert defaults.log_append_time
        topic = parse_topic_config({"retention.bytes": "-1", "cleanup.policy": "delete", "retention.ms": "5"}, defaults)
        assert topic.retention_bytes == -1
        with pytest.raises(ClusterError, match="only 'delete'"):
            parse_topic_config({"cleanup.policy": "compact"}, defaults)
        with pytest.raises(ClusterError, match="below its minimum 1"):
            parse_topic_config({"min.insync.replicas": 0}, defaults)


def test_splice_matches_plain_encoding() -> None:
    records = [_stamped(0, 2), _stamped(2, 1)]
    for version in (4, 11, 12):
        module = response_module(ApiKey.FETCH, version)
        placeholder = new_placeholder()

        def entity(data: bytes) -> object:
            partition = module.PartitionData(
                partition_index=0,
                error_code=ErrorCode(0),
                high_watermark=3,
                last_stable_offset=3,
                **({"log_start_offset": 0} if version >= 5 else {}),
                aborted_transactions=None,
                **({"preferred_read_replica": -1} if version >= 11 else {}),
                records=data,
            )
            return module.FetchResponse(
                throttle_time=ms(0),
                **({"error_code": ErrorCode(0), "session_id": 0} if version >= 7 else {}),
                responses=(module.FetchableTopicResponse(topic="t", partitions=(partition,)),),
            )

        from kprod.protocol.framing import encode_response

        spliced = b"".join(encode_spliced(entity(placeholder), 9, [(placeholder, records)]))
        assert spliced == encode_response(entity(b"".join(records)), 9)
        correlation_id, decoded = decode_response(spliced[4:], ApiKey.FETCH, version)
        assert correlation_id == 9
        assert decoded.responses[0].partitions[0].records == b"".join(records)


def test_frames_are_cut_across_any_read_boundary() -> None:
    import socket

    from kprod.cluster.engine import Engine
    from kprod.cluster.faults import Faults
    from kprod.cluster.server import Connection, EventLoop

    state = ClusterState([(0, "127.0.0.1", 0)], parse_broker_config(None))
    loop = EventLoop(Engine(state, Faults()), "127.0.0.1")
    frames = [b"a" * 5, b"", b"b" * 300, b"c" * 70_000]
    stream = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    left, right = socket.socketpair()
    try:
        for chunk_size in (1, 3, 4, 5, 7, 1000, len(stream)):
            conn = Connection(left, 0, "test")
            for start in range(0, len(stream), chunk_size):
                loop._cut_frames(conn, memoryview(stream[start : start + chunk_size]))
            assert [bytes(f) for f in conn.inbox] == frames, chunk_size
            assert conn.reader.buffered == 0
    finally:
        left.close()
        right.close()
        loop.stop()
