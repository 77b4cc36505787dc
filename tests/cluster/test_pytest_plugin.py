"""The pytest plugin kprod ships (entry point ``pytest11``), run on small test files with ``pytester``."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.kafka_topics(*names, partitions=1, replication_factor=1, config=None)*"])


def test_session_cluster_marker_topics_and_reset(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from confluent_kafka import Producer

        SEEN = []

        @pytest.mark.kafka_topics("orders", partitions=6, replication_factor=3,
                                  config={"min.insync.replicas": "2"})
        def test_topic_is_there(kafka_cluster):
            SEEN.append(kafka_cluster)
            assert len(kafka_cluster.brokers) == 3
            assert [kafka_cluster.partition_info("orders", p).replicas.__len__() for p in range(6)] == [3] * 6
            assert kafka_cluster.topic_config("orders")["min.insync.replicas"] == "2"
            producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap_servers})
            producer.produce("orders", b"one", partition=0)
            assert producer.flush(30) == 0
            assert kafka_cluster.end_offset("orders", 0) == 1
            kafka_cluster.stop_broker(2)
            kafka_cluster.inject_errors(0, 6, count=5)

        @pytest.mark.kafka_topics("orders", partitions=2)
        def test_same_cluster_fresh_topic_no_faults(kafka_cluster):
            assert kafka_cluster is SEEN[0]
            assert [b.running for b in kafka_cluster.brokers] == [True, True, True]
            assert kafka_cluster.hooks() == []
            assert kafka_cluster.end_offset("orders", 0) == 0
            assert kafka_cluster.topics() == ["orders"]
            assert kafka_cluster.partition_info("orders", 1).partition == 1

        def test_factory_makes_private_clusters(kafka_cluster_factory):
            small = kafka_cluster_factory(brokers=1, config={"log.retention.bytes": "1000"})
            other = kafka_cluster_factory()
            assert small.bootstrap_servers != other.bootstrap_servers
            assert len(small.brokers) == 1
            small.create_topic("t")
            assert small.topic_config("t")["retention.bytes"] == "1000"
            assert other.topics() == []
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_marker_topics_on_factory_clusters(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kafka_topics("a", "b", partitions=3)
        @pytest.mark.kafka_topics("c", config={"cleanup.policy": "compact"})
        def test_each_cluster_gets_them(kafka_cluster_factory):
            first = kafka_cluster_factory(brokers=2)
            second = kafka_cluster_factory(brokers=1, process=True)
            for cluster in (first, second):
                assert cluster.topics() == ["a", "b", "c"]
                assert cluster.partition_info("b", 2).partition == 2
                assert cluster.topic_config("c")["cleanup.policy"] == "compact"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_bad_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kafka_topics(partitions=3)
        def test_no_name(kafka_cluster):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*use @pytest.mark.kafka_topics('name', ...*"])


def test_cluster_logs_are_attached_to_a_failing_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kafka_topics("orders")
        def test_fails_after_breaking_a_broker(kafka_cluster_factory):
            cluster = kafka_cluster_factory(brokers=2)
            cluster.stop_broker(1)
            assert cluster.leader("orders", 0) == 1, "the application expected broker 1"

        def test_passes_quietly(kafka_cluster_factory):
            kafka_cluster_factory(brokers=1).stop_broker(0)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rN")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- kprod cluster -*",
            "*INFO kprod.cluster: embedded cluster started: 127.0.0.1:*",
            "*INFO kprod.cluster: broker 1 stopped",
        ]
    )
    assert result.stdout.str().count("- kprod cluster -") == 1  # the passing test has none
