"""Uniform sticky partitioning for records without a key (KIP-794).

Records with no key stay on one partition until about ``batch.size`` bytes
went to it, then move to another, so batches fill up instead of spreading
thin. With adaptive partitioning the next partition is drawn with weights
that favour partitions whose queues are short, and partitions whose leader
has not been ready for ``partitioner.availability.timeout.ms`` are skipped.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from itertools import accumulate

__all__ = ["StickyPartitioner"]


class StickyPartitioner:
    """Per-topic sticky partition choice; called under the accumulator lock."""

    __slots__ = ("batch_size", "adaptive", "_current", "_produced", "_weights", "_random")

    def __init__(self, batch_size: int, *, adaptive: bool = True) -> None:
        self.batch_size = batch_size
        self.adaptive = adaptive
        self._current: dict[str, int] = {}
        self._produced: dict[str, int] = {}
        # topic -> (partitions, cumulative weights) from the last queue-size report
        self._weights: dict[str, tuple[tuple[int, ...], list[int]]] = {}
        self._random = random.Random()

    def partition(self, topic: str, num_partitions: int, available: tuple[int, ...] | None) -> int:
        """The current sticky partition of ``topic``."""
        current = self._current.get(topic)
        if current is None or current >= num_partitions:
            current = self._next(topic, num_partitions, available, -1)
        return current

    def on_append(self, topic: str, partition: int, size: int, num_partitions: int, available: tuple[int, ...] | None) -> None:
        """Count bytes sent to the sticky partition; move on after ``batch.size``.

        ``kprod._speedups.SendPath`` makes the same count in C (keep the two in step).
        """
        if self._current.get(topic) != partition:
            return
        produced = self._produced.get(topic, 0) + size
        if produced >= self.batch_size:
            self._next(topic, num_partitions, available, partition)
        else:
            self._produced[topic] = produced

    def remaining(self, topic: str) -> int:
        """Bytes the current sticky partition of ``topic`` takes before :meth:`on_append` moves on."""
        return self.batch_size - self._produced.get(topic, 0)

    def report_queue_sizes(self, topic: str, sizes: dict[int, int], unavailable: set[int]) -> None:
        """Adaptive mode: queue sizes (batches) per partition, from the I/O thread."""
        if not self.adaptive:
            return
        partitions = tuple(p for p in sorted(sizes) if p not in unavailable)
        if not partitions:
            self._weights.pop(topic, None)
            return
        largest = max(sizes[p] for p in partitions)
        if largest == min(sizes[p] for p in partitions):
            # All queues equal: uniform choice among the available ones.
            self._weights[topic] = (partitions, list(range(1, len(partitions) + 1)))
            return
        self._weights[topic] = (partitions, list(accumulate(largest + 1 - sizes[p] for p in partitions)))

    def _next(self, topic: str, num_partitions: int, available: tuple[int, ...] | None, previous: int) -> int:
        choice = self._choose(topic, num_partitions, available, previous)
        self._current[topic] = choice
        self._produced[topic] = 0
        return choice

    def _choose(self, topic: str, num_partitions: int, available: tuple[int, ...] | None, previous: int) -> int:
        rand = self._random
        weighted = self._weights.get(topic)
        if weighted is not None and all(p < num_partitions for p in weighted[0]):
            # As Java's BuiltInPartitioner: a plain weighted draw, which may keep the previous
            # partition; steering away from it would override the weights (with two
            # partitions it would alternate whatever the queues).
            partitions, cumulative = weighted
            return partitions[bisect_right(cumulative, rand.randrange(cumulative[-1]))]
        candidates: tuple[int, ...] | range = available if available else range(num_partitions)
        if len(candidates) == 1:
            return candidates[0]
        pick = candidates[rand.randrange(len(candidates))]
        if pick == previous:
            pick = candidates[(candidates.index(pick) + 1 + rand.randrange(len(candidates) - 1)) % len(candidates)]
        return pick
