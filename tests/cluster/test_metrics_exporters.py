"""Prometheus and OpenTelemetry: the same values through each exporter, and traced sends."""

from __future__ import annotations

from typing import Any

import pytest

from kprod import Producer
from kprod.cluster import EmbeddedCluster
from kprod.errors import TopicAuthorizationFailedError
from kprod.protocol.messages import ApiKey

prometheus_client = pytest.importorskip("prometheus_client")
otel_sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from kprod.metrics.otel import OpenTelemetryReporter, instrument_producer  # noqa: E402
from kprod.metrics.prometheus import PrometheusReporter  # noqa: E402


def producer_for(cluster: EmbeddedCluster, **overrides: Any) -> Producer:
    config: dict[str, Any] = {"bootstrap.servers": cluster.bootstrap_servers, "client.id": "exported",
                              "linger.ms": 0, "retry.backoff.ms": 10}
    config.update(overrides)
    return Producer(config)


def test_prometheus_scrape_reads_the_producer_metrics(cluster: EmbeddedCluster, topic: str) -> None:
    registry = prometheus_client.CollectorRegistry()
    reporter = PrometheusReporter(registry)
    with producer_for(cluster, **{"metric.reporters": [reporter]}) as producer:
        for i in range(7):
            producer.send(topic, b"%d" % i, partition=2).result(10)
        labels = {"client_id": "exported"}
        assert registry.get_sample_value("kafka_producer_metrics_record_send_total", labels) == 7
        assert registry.get_sample_value("kafka_producer_topic_metrics_record_send_total",
                                         {**labels, "topic": topic}) == 7
        assert registry.get_sample_value("kafka_producer_metrics_buffer_total_bytes", labels) == 33554432
        text = prometheus_client.generate_latest(registry).decode()
        assert 'kafka_producer_metrics_record_send_rate{client_id="exported"}' in text
    # Closing the producer unregisters the collector.
    assert registry.get_sample_value("kafka_producer_metrics_record_send_total", {"client_id": "exported"}) is None


def test_opentelemetry_metrics_observe_the_same_values(cluster: EmbeddedCluster, topic: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with producer_for(cluster, **{"metric.reporters": [OpenTelemetryReporter(provider)]}) as producer:
        for i in range(4):
            producer.send(topic, b"%d" % i, partition=0).result(10)
        data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    total = points["kafka.producer.record_send_total"]
    assert [(p.value, dict(p.attributes)) for p in total] == [(4.0, {"client-id": "exported"})]
    per_topic = points["kafka.producer.topic.record_send_total"]
    assert [(p.value, dict(p.attributes)) for p in per_topic] == [
        (4.0, {"client-id": "exported", "topic": topic})]


def test_traced_sends_make_producer_spans_and_carry_traceparent(cluster: EmbeddedCluster, topic: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with producer_for(cluster) as producer:
        instrument_producer(producer, provider)
        metadata = producer.send(topic, b"traced", key=b"k", partition=1, headers=[("app", b"1")]).result(10)
        cluster.inject_errors(ApiKey.PRODUCE, 29, count=1)  # TOPIC_AUTHORIZATION_FAILED
        failed = producer.send(topic, b"refused", partition=1)
        assert isinstance(failed.exception(10), TopicAuthorizationFailedError)
        producer.flush(10)
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [f"send {topic}", f"send {topic}"]
    ok, bad = spans
    assert ok.kind is SpanKind.PRODUCER
    assert ok.attributes["messaging.system"] == "kafka"
    assert ok.attributes["messaging.destination.name"] == topic
    assert ok.attributes["messaging.destination.partition.id"] == "1"
    assert ok.attributes["messaging.kafka.offset"] == metadata.offset
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.attributes["error.type"] == "TopicAuthorizationFailedError"
    stored = cluster.records(topic, 1)
    assert [r.value for r in stored] == [b"traced"]
    headers = dict(stored[0].headers)
    assert headers["app"] == b"1"
    context = ok.get_span_context()
    assert headers["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}".encode()
