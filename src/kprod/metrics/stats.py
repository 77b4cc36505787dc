"""Measurable statistics with Kafka's sampling rules (windows of ``metrics.sample.window.ms``).

A sampled statistic keeps ``metrics.num.samples`` samples, each covering one
window; recording into a sample whose window has passed starts the next one
(reusing the oldest), and reading first resets samples older than all windows
together. This is how Kafka's Java metrics behave, so rates and averages read
the same as the Java producer's under the same configuration.

Recording is cheap and unlocked: the owner (:class:`kprod.metrics.Metrics`)
holds its lock around records and reads.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = [
    "MetricConfig",
    "Stat",
    "Avg",
    "Max",
    "Rate",
    "WindowedSum",
    "CumulativeSum",
    "CumulativeCount",
]

NAN = math.nan


class MetricConfig:
    """Sampling of every windowed statistic: ``samples`` windows of ``window_ms`` each."""

    __slots__ = ("window_ms", "samples")

    def __init__(self, window_ms: float = 30000.0, samples: int = 2) -> None:
        if window_ms <= 0:
            raise ValueError(f"metrics.sample.window.ms must be positive, not {window_ms!r}.")
        if samples < 1:
            raise ValueError(f"metrics.num.samples must be at least 1, not {samples!r}.")
        self.window_ms = float(window_ms)
        self.samples = int(samples)


class Stat(Protocol):
    """What a sensor feeds and a metric reads."""

    def record(self, value: float, now: float, count: int = 1) -> None: ...

    def measure(self, now: float) -> float: ...


class _Sample:
    __slots__ = ("start", "value", "count")

    def __init__(self, start: float, value: float) -> None:
        self.start = start
        self.value = value
        self.count = 0


class _Sampled:
    """Samples over consecutive windows; subclasses say how values combine."""

    __slots__ = ("_config", "_samples", "_current")

    initial = 0.0

    def __init__(self, config: MetricConfig) -> None:
        self._config = config
        self._samples: list[_Sample] = []
        self._current = 0

    def record(self, value: float, now: float, count: int = 1) -> None:
        samples = self._samples
        if not samples:
            samples.append(_Sample(now, self.initial))
        sample = samples[self._current]
        if now - sample.start >= self._config.window_ms:
            sample = self._advance(now)
        self._update(sample, value)
        sample.count += count

    def _advance(self, now: float) -> _Sample:
        samples = self._samples
        self._current = (self._current + 1) % self._config.samples
        if self._current >= len(samples):
            sample = _Sample(now, self.initial)
            samples.append(sample)
        else:
            sample = samples[self._current]
            sample.start, sample.value, sample.count = now, self.initial, 0
        return sample

    def _update(self, sample: _Sample, value: float) -> None:
        raise NotImplementedError

    def _purge(self, now: float) -> None:
        """Reset samples whose window ended more than all windows together ago."""
        expire_age = self._config.samples * self._config.window_ms
        for sample in self._samples:
            if now - sample.start >= expire_age:
                sample.start, sample.value, sample.count = now, self.initial, 0

    def measure(self, now: float) -> float:
        self._purge(now)
        return self._combine(now)

    def _combine(self, now: float) -> float:
        raise NotImplementedError


class WindowedSum(_Sampled):
    """The sum of the values recorded in the current windows."""

    __slots__ = ()

    def _update(self, sample: _Sample, value: float) -> None:
        sample.value += value

    def _combine(self, now: float) -> float:
        return sum(sample.value for sample in self._samples)

    def oldest_start(self, now: float) -> float:
        if not self._samples:
            self._samples.append(_Sample(now, self.initial))
        return min(sample.start for sample in self._samples)


class Avg(_Sampled):
    """The mean of the recorded values (``record(total, now, count)`` adds ``count`` values)."""

    __slots__ = ()

    def _update(self, sample: _Sample, value: float) -> None:
        sample.value += value

    def _combine(self, now: float) -> float:
        count = sum(sample.count for sample in self._samples)
        if not count:
            return NAN
        return sum(sample.value for sample in self._samples) / count


class Max(_Sampled):
    """The largest value recorded in the current windows (NaN when none)."""

    __slots__ = ()

    initial = -math.inf

    def _update(self, sample: _Sample, value: float) -> None:
        if value > sample.value:
            sample.value = value

    def _combine(self, now: float) -> float:
        best = -math.inf
        seen = False
        for sample in self._samples:
            if sample.count:
                seen = True
                if sample.value > best:
                    best = sample.value
        return best if seen else NAN


class Rate:
    """Per-second rate of a windowed sum (``unit_ms`` scales: 1e-6 turns ns into a ratio).

    The elapsed time is measured from the oldest sample's start, but never taken
    as less than all windows but one, so a young metric is not inflated (Java's rule).
    """

    __slots__ = ("_config", "_sum", "_per_ms")

    def __init__(self, config: MetricConfig, *, per_ms: float = 1000.0) -> None:
        self._config = config
        self._sum = WindowedSum(config)
        self._per_ms = per_ms

    def record(self, value: float, now: float, count: int = 1) -> None:
        self._sum.record(value, now, count)

    def measure(self, now: float) -> float:
        total = self._sum.measure(now)
        return total / self.window_size_ms(now) * self._per_ms

    def window_size_ms(self, now: float) -> float:
        config = self._config
        self._sum._purge(now)
        elapsed = now - self._sum.oldest_start(now)
        full_windows = int(elapsed // config.window_ms)
        min_full_windows = config.samples - 1
        if full_windows < min_full_windows:
            elapsed += (min_full_windows - full_windows) * config.window_ms
        return max(elapsed, 1.0)


class CumulativeSum:
    """The sum of every value ever recorded."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0.0

    def record(self, value: float, now: float, count: int = 1) -> None:
        self.total += value

    def measure(self, now: float) -> float:
        return self.total


class CumulativeCount:
    """How many values were ever recorded."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0

    def record(self, value: float, now: float, count: int = 1) -> None:
        self.total += count

    def measure(self, now: float) -> float:
        return float(self.total)
