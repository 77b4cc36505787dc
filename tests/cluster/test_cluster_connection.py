"""Both network clients run the protocol layer's connection state machine, against the embedded cluster.

The cluster is made to advertise ApiVersions v0-v2 only, like a broker older
than kprod's ApiVersions v4: it answers kprod's first ApiVersions (v4) with
the KIP-511 v0 error body, so reaching READY at v2 takes the state machine's
retry, written to the socket by the client under test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from cluster_helpers import connect, wait_until
from kprod.cluster import EmbeddedCluster
from kprod.cluster.engine import ADVERTISED_VERSIONS
from kprod.net.client import NetworkClient
from kprod.protocol.messages import ApiKey
from kprod.protocol.requests import metadata_request
from kprod.protocol.responses import metadata_result


@pytest.fixture
def older_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ADVERTISED_VERSIONS, ApiKey.API_VERSIONS, (0, 2))


def test_blocking_connection_negotiates_through_the_kip_511_fallback(
    cluster: EmbeddedCluster, older_broker: None
) -> None:
    node_id = cluster.brokers[0].node_id
    with connect(cluster, node_id) as conn:
        assert conn.versions[ApiKey.API_VERSIONS] == 2
        assert conn.broker_versions[ApiKey.API_VERSIONS] == (0, 2)
        response = conn.send(metadata_request(conn.version(ApiKey.METADATA), None))
    assert sorted(b.node_id for b in metadata_result(response).brokers) == sorted(b.node_id for b in cluster.brokers)


def test_network_client_negotiates_through_the_kip_511_fallback(cluster: EmbeddedCluster, older_broker: None) -> None:
    def clock() -> float:
        return time.monotonic() * 1000

    broker = cluster.brokers[0]
    client = NetworkClient(client_id="kprod-test", clock=clock)
    try:
        client.set_node(broker.node_id, broker.host, broker.port)
        assert client.version(broker.node_id, ApiKey.METADATA) is None  # not connected yet

        def ready() -> bool:
            client.poll(10)
            return client.ready(broker.node_id, clock())

        wait_until(ready, what="the connection to become ready")
        assert client.version(broker.node_id, ApiKey.API_VERSIONS) == 2
        metadata_version = client.version(broker.node_id, ApiKey.METADATA)
        assert metadata_version == 12

        answers: list[tuple[Any, BaseException | None]] = []
        client.send(broker.node_id, metadata_request(metadata_version, None), lambda r, e: answers.append((r, e)))

        def answered() -> bool:
            client.poll(10)
            return bool(answers)

        wait_until(answered, what="the Metadata answer")
        [(response, error)] = answers
        assert error is None
        assert metadata_result(response).controller_id in {b.node_id for b in cluster.brokers}
        assert client.in_flight(broker.node_id) == 0
    finally:
        client.close()
    assert not client.is_ready(broker.node_id)
