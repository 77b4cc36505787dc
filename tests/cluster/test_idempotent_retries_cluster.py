"""Regression: a retry queued behind a lost response must not look like a sequence gap.

A batch fails with NOT_LEADER_OR_FOLLOWER and waits to be retried; the next batch of
the same partition is then answered OUT_OF_ORDER_SEQUENCE_NUMBER because the broker is
waiting for the first. That is not a real gap: bumping the epoch there renumbered
batches the broker had already written, and about one run in ten stored duplicates.
"""

from __future__ import annotations

import pytest

from kprod import Producer
from kprod.cluster import EmbeddedCluster
from kprod.protocol.messages import ApiKey
from test_send_many_cluster import PARTITIONS, make_topic, read_back

REQUEST_TIMED_OUT = 7
NOT_LEADER_OR_FOLLOWER = 6
RECORDS = 30000


@pytest.mark.parametrize("attempt", range(3))
def test_lost_responses_and_leader_errors_leave_no_duplicates(cluster: EmbeddedCluster, attempt: int) -> None:
    topic = make_topic(cluster, f"retry-{attempt}")
    config = {"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "linger.ms": 1,
              "batch.size": 4096, "retry.backoff.ms": 10}
    with Producer(config) as producer:
        for partition in range(PARTITIONS):
            producer.send(topic, b"warm-up", partition=partition)
        producer.flush()
        cluster.inject_errors(ApiKey.PRODUCE, REQUEST_TIMED_OUT, count=3, after_append=True)
        cluster.inject_errors(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER, count=2)
        values = [b"r%05d" % i for i in range(RECORDS)]
        futures = [producer.send(topic, value, b"k%d" % (i % 50)) for i, value in enumerate(values)]
        assert [f.exception(timeout=60) for f in futures] == [None] * RECORDS
    stored = read_back(cluster, topic, RECORDS + PARTITIONS)
    got = [r.value for records in stored.values() for r in records if r.value != b"warm-up"]
    assert sorted(got) == values  # every record exactly once
    for records in stored.values():
        in_partition = [r.value for r in records if r.value != b"warm-up"]
        assert in_partition == sorted(in_partition)  # send order kept per partition
