"""Windowed statistics on a manual clock: Kafka's sampling rules, value by value."""

from __future__ import annotations

import json
import math

import pytest

from kprod.metrics import MetricConfig, MetricName, Metrics, snapshot_json
from kprod.metrics.stats import Avg, CumulativeCount, CumulativeSum, Max, Rate


def test_rate_counts_over_all_windows_but_never_less_than_all_but_one() -> None:
    config = MetricConfig(window_ms=1000, samples=2)
    rate = Rate(config)
    rate.record(10, now=0)
    # Young metric: elapsed 0 ms is taken as one full window (samples - 1), so 10 / 1 s.
    assert rate.measure(0) == pytest.approx(10.0)
    rate.record(30, now=500)
    assert rate.measure(500) == pytest.approx(40 / 1.5)
    # A second window starts at 1000; elapsed from the oldest sample is 1500 ms.
    rate.record(20, now=1000)
    assert rate.measure(1500) == pytest.approx(60 / 1.5)


def test_rate_forgets_samples_older_than_all_windows() -> None:
    config = MetricConfig(window_ms=1000, samples=2)
    rate = Rate(config)
    rate.record(100, now=0)
    rate.record(50, now=1200)
    # At 2000 the first sample (started 0) is 2000 ms old = samples * window: reset. The
    # oldest left started at 1200: 800 ms elapsed, raised by one window to 1800 ms.
    assert rate.measure(2000) == pytest.approx(50 / 1.8)
    # Nothing recorded for long: both samples reset, the rate is 0.
    assert rate.measure(10_000) == 0.0


def test_samples_are_reused_round_robin() -> None:
    config = MetricConfig(window_ms=100, samples=3)
    total = Rate(config)
    for now in range(0, 1000, 100):
        total.record(1, now=now)
    # Only the last three windows remain (700, 800, 900): 3 events over 300 ms... at 950:
    # the oldest kept window started at 700, so 250 ms elapsed, raised to 2 full windows.
    assert total.measure(950) == pytest.approx(3 / 0.25)


def test_avg_weights_counts_and_is_nan_when_empty() -> None:
    config = MetricConfig(window_ms=1000, samples=2)
    avg = Avg(config)
    assert math.isnan(avg.measure(0))
    avg.record(300, now=0, count=3)  # three records of 100 bytes, recorded per batch
    avg.record(50, now=10)
    assert avg.measure(20) == pytest.approx(350 / 4)
    assert math.isnan(avg.measure(5000))


def test_max_over_windows() -> None:
    config = MetricConfig(window_ms=1000, samples=2)
    biggest = Max(config)
    assert math.isnan(biggest.measure(0))
    biggest.record(5, now=0)
    biggest.record(9, now=1500)
    biggest.record(7, now=1600)  # same window as 9
    assert biggest.measure(1700) == 9
    biggest.record(3, now=2600)  # a new window reuses the oldest sample (the 5)
    assert biggest.measure(3400) == 9
    assert biggest.measure(3600) == 3  # the window of 9 (started 1500) is 2100 ms old: gone
    assert math.isnan(biggest.measure(10_000))


def test_cumulative_stats_never_forget() -> None:
    total, count = CumulativeSum(), CumulativeCount()
    for value in (1, 2, 3):
        total.record(value, now=value * 10**9)
        count.record(value, now=value * 10**9, count=2)
    assert total.measure(0) == 6
    assert count.measure(0) == 6


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="metrics.sample.window.ms"):
        MetricConfig(window_ms=0)
    with pytest.raises(ValueError, match="metrics.num.samples"):
        MetricConfig(samples=0)


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def init(self, metrics: list) -> None:  # type: ignore[type-arg]
        self.events += [("init", str(m.name)) for m in metrics]

    def metric_change(self, metric) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("change", str(metric.name)))

    def metric_removal(self, metric) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("remove", str(metric.name)))

    def close(self) -> None:
        self.events.append(("close", ""))


def test_registry_sensors_gauges_reporters_and_snapshot() -> None:
    now = [0.0]
    registry = Metrics(MetricConfig(1000, 2), lambda: now[0])
    early = _Recorder()
    registry.add_reporter(early)
    sensor = registry.sensor("s")
    rate_name = MetricName("x-rate", "g", (("client-id", "c"),))
    registry.add_stat(sensor, rate_name, Rate(registry.config))
    topic_name = MetricName("y-total", "t", (("client-id", "c"), ("topic", "orders")))
    registry.add_stat(sensor, topic_name, CumulativeSum())
    registry.add_gauge(MetricName("z", "g", (("client-id", "c"),)), lambda: 42)
    registry.add_gauge(MetricName("broken", "g", (("client-id", "c"),)), lambda: 1 / 0)
    with registry.lock:
        sensor.record(4.0, now[0])
    now[0] = 1000.0
    values = registry.values()
    assert values[rate_name] == pytest.approx(4.0)
    assert values[topic_name] == 4.0
    snap = registry.snapshot()
    assert snap["g"]["z"] == 42
    assert snap["g"]["broken"] is None
    assert snap["t"]["orders"]["y-total"] == 4.0
    assert json.loads(snapshot_json(snap))["t"]["orders"]["y-total"] == 4.0
    late = _Recorder()
    registry.add_reporter(late)
    assert sorted(e for _, e in late.events) == sorted(str(n) for n in registry.metrics())
    assert [kind for kind, _ in early.events] == ["change"] * 4
    registry.remove(rate_name)
    assert ("remove", str(rate_name)) in early.events
    with pytest.raises(ValueError, match="already registered"):
        registry.add_gauge(MetricName("z", "g", (("client-id", "c"),)), lambda: 1)
    registry.close()
    assert early.events[-1] == ("close", "")


def test_a_reporter_without_the_methods_is_refused() -> None:
    registry = Metrics(MetricConfig(), lambda: 0.0)
    with pytest.raises(TypeError, match="metric_change"):
        registry.add_reporter(object())  # type: ignore[arg-type]


def test_docs_metrics_table_is_generated_from_the_code() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_metrics_docs.py"
    assert subprocess.run([sys.executable, str(script), "--check"]).returncode == 0, (
        "docs/metrics.md is stale: run python scripts/gen_metrics_docs.py")
