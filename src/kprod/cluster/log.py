"""The in-memory log of one partition: stamped record batches kept as bytes.

Batches are stored exactly as a Fetch serves them (base offset and leader
epoch already stamped), so reading never re-encodes anything: a fetch is a
bisect and a list slice. The log is bounded by ``retention_bytes``: once it
holds more, the oldest batches are dropped and the log start offset moves up,
as Kafka's size-based retention does (at batch rather than segment
granularity), so a long performance run cannot exhaust memory. With
``retention_ms`` set, batches whose newest record is older than that go too
(checked on each append). DeleteRecords moves the log start offset up
(``delete_before``); ``compact`` keeps the last record of each key, as
Kafka's log cleaner does for ``cleanup.policy=compact``.

All replicas of a partition share one log object: replication is synchronous
and in memory, so an in-sync replica always holds exactly the leader's
batches. What differs per replica (a stopped or lagging replica's end offset)
is tracked by :mod:`kprod.cluster.state`.
"""

from __future__ import annotations

import time
from bisect import bisect_right

from kprod.protocol.records import parse_batch_header, retain_records

__all__ = ["PartitionLog"]

# Compact the lists once this many dropped slots have piled up at the front.
_COMPACT_AFTER = 1024


class PartitionLog:
    """Stamped batches of one partition with their base offsets, oldest first."""

    __slots__ = (
        "_batches",
        "_bases",
        "_head",
        "log_start_offset",
        "end_offset",
        "size_bytes",
        "retention_bytes",
        "retention_ms",
    )

    def __init__(self, retention_bytes: int, retention_ms: int = -1) -> None:
        self._batches: list[bytes] = []
        self._bases: list[int] = []
        self._head = 0  # index of the oldest batch still retained
        self.log_start_offset = 0
        self.end_offset = 0  # the offset the next record gets (Kafka's log end offset)
        self.size_bytes = 0
        self.retention_bytes = retention_bytes  # -1: unbounded
        self.retention_ms = retention_ms  # -1: unbounded

    def __len__(self) -> int:
        return len(self._batches) - self._head

    def append(self, batch: bytes, record_count: int) -> None:
        """Add a batch already stamped with base offset ``end_offset``; apply retention."""
        self._batches.append(batch)
        self._bases.append(self.end_offset)
        self.end_offset += record_count
        self.size_bytes += len(batch)
        limit = self.retention_bytes
        if limit >= 0 and self.size_bytes > limit:
            self._enforce_retention(limit)
        if self.retention_ms >= 0:
            self.expire(int(time.time() * 1000))

    def _enforce_retention(self, limit: int) -> None:
        batches = self._batches
        head = self._head
        last = len(batches) - 1  # the newest batch always stays, like Kafka's active segment
        while self.size_bytes > limit and head < last:
            self.size_bytes -= len(batches[head])
            batches[head] = b""
            head += 1
        self._drop_to(head)

    def expire(self, now_ms: int) -> None:
        """Drop the oldest batches whose newest record is older than ``retention_ms`` (not the newest batch)."""
        if self.retention_ms < 0:
            return
        oldest_kept = now_ms - self.retention_ms
        batches = self._batches
        head = self._head
        last = len(batches) - 1
        while head < last and parse_batch_header(batches[head]).max_timestamp < oldest_kept:
            self.size_bytes -= len(batches[head])
            batches[head] = b""
            head += 1
        self._drop_to(head)

    def delete_before(self, offset: int) -> None:
        """DeleteRecords: make ``offset`` (<= end offset) the log start; batches wholly below it go."""
        if offset <= self.log_start_offset:
            return
        batches = self._batches
        bases = self._bases
        head = self._head
        while head < len(batches) and (head + 1 < len(batches) and bases[head + 1] <= offset or offset >= self.end_offset):
            self.size_bytes -= len(batches[head])
            batches[head] = b""
            head += 1
        self._drop_to(head, offset)

    def _drop_to(self, head: int, start: int | None = None) -> None:
        """Batches before index ``head`` are gone; the log starts at ``start`` (default: the head batch)."""
        batches = self._batches
        self._head = head
        floor = self._bases[head] if head < len(batches) else self.end_offset
        self.log_start_offset = max(self.log_start_offset, floor if start is None else start)
        if head >= _COMPACT_AFTER and head * 2 >= len(batches):
            del batches[:head]
            del self._bases[:head]
            self._head = 0

    def read(self, offset: int, max_bytes: int, min_one: bool = True) -> tuple[list[bytes], int]:
        """Batches from the one holding ``offset`` on, up to ``max_bytes``: (batches, total bytes).

        With ``min_one`` the first batch is returned whole even when it alone
        exceeds ``max_bytes`` (KIP-74: the first partition of a fetch always
        makes progress). Requires ``log_start_offset <= offset``; an offset
        at or past the end yields nothing.
        """
        if offset >= self.end_offset or (max_bytes <= 0 and not min_one):
            return [], 0
        index = max(bisect_right(self._bases, offset, self._head) - 1, self._head)
        batches = self._batches
        out: list[bytes] = []
        total = 0
        for i in range(index, len(batches)):
            batch = batches[i]
            size = len(batch)
            if total + size > max_bytes and (out or not min_one):
                break
            out.append(batch)
            total += size
            if total >= max_bytes:
                break
        return out, total

    def batches(self) -> list[bytes]:
        """Every retained batch, oldest first (a new list; the bytes are shared)."""
        return self._batches[self._head :]

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with a timestamp >= ``timestamp``, or None.

        Only the batch that holds the answer is decoded; the others are
        skipped on their header's max timestamp.
        """
        for batch in self.batches():
            header = parse_batch_header(batch)
            if header.max_timestamp < timestamp:
                continue
            for record in header.records():
                if record.timestamp >= timestamp:
                    return record.offset, record.timestamp
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the record with the largest timestamp (the first such), or None."""
        best: tuple[int, int] | None = None
        best_batch = None
        for batch in self.batches():
            header = parse_batch_header(batch)
            if best is None or header.max_timestamp > best[1]:
                best = (header.base_offset, header.max_timestamp)
                best_batch = header
        if best_batch is None:
            return None
        for record in best_batch.records():
            if record.timestamp == best_batch.max_timestamp:
                return record.offset, record.timestamp
        return best_batch.last_offset, best_batch.max_timestamp

    def compact(self) -> int:
        """Keep only the last record of each key (records without a key stay); returns records removed.

        Kafka's cleaner does this for ``cleanup.policy=compact``; here it runs
        when asked, over the whole log, newest batch included. Offsets keep
        their gaps; batches left empty go.
        """
        last_of_key: dict[bytes, int] = {}
        for batch in self.batches():
            for record in parse_batch_header(batch).records():
                if record.key is not None and record.offset >= self.log_start_offset:
                    last_of_key[record.key] = record.offset
        keep = set(last_of_key.values())
        removed = 0
        kept_batches: list[bytes] = []
        kept_bases: list[int] = []
        for base, batch in zip(self._bases[self._head :], self.batches()):
            live = [r for r in parse_batch_header(batch).records() if r.offset >= self.log_start_offset]
            wanted = {r.offset for r in live if r.key is None or r.offset in keep}
            removed += len(live) - len(wanted)
            compacted = retain_records(batch, wanted) if wanted else None
            if compacted is not None:
                kept_batches.append(compacted)
                kept_bases.append(base)
        self._batches = kept_batches
        self._bases = kept_bases
        self._head = 0
        self.size_bytes = sum(len(b) for b in kept_batches)
        return removed
