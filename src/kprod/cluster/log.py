"""The in-memory log of one partition: stamped record batches kept as bytes.

Batches are stored exactly as a Fetch serves them (base offset and leader
epoch already stamped), so reading never re-encodes anything: a fetch is a
bisect and a list slice. The log is bounded by ``retention_bytes``: once it
holds more, the oldest batches are dropped and the log start offset moves up,
as Kafka's size-based retention does (at batch rather than segment
granularity), so a long performance run cannot exhaust memory.

All replicas of a partition share one log object: replication is synchronous
and in memory, so an in-sync replica always holds exactly the leader's
batches. What differs per replica (a stopped or lagging replica's end offset)
is tracked by :mod:`kprod.cluster.state`.
"""

from __future__ import annotations

from bisect import bisect_right

from kprod.protocol.records import parse_batch_header

__all__ = ["PartitionLog"]

# Compact the lists once this many dropped slots have piled up at the front.
_COMPACT_AFTER = 1024


class PartitionLog:
    """Stamped batches of one partition with their base offsets, oldest first."""

    __slots__ = ("_batches", "_bases", "_head", "log_start_offset", "end_offset", "size_bytes", "retention_bytes")

    def __init__(self, retention_bytes: int) -> None:
        self._batches: list[bytes] = []
        self._bases: list[int] = []
        self._head = 0  # index of the oldest batch still retained
        self.log_start_offset = 0
        self.end_offset = 0  # the offset the next record gets (Kafka's log end offset)
        self.size_bytes = 0
        self.retention_bytes = retention_bytes  # -1: unbounded

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

    def _enforce_retention(self, limit: int) -> None:
        batches = self._batches
        head = self._head
        last = len(batches) - 1  # the newest batch always stays, like Kafka's active segment
        while self.size_bytes > limit and head < last:
            self.size_bytes -= len(batches[head])
            batches[head] = b""
            head += 1
        self._head = head
        self.log_start_offset = self._bases[head]
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
