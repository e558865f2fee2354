"""The in-memory outbox: survives broker outages, not process crashes."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ._base import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_MAX_MESSAGES,
    BoundedBuffer,
    Envelope,
    FailedMessage,
    NewMessage,
    OverflowPolicy,
)

__all__ = ["MemoryBuffer"]


class MemoryBuffer(BoundedBuffer):
    """A bounded outbox held in memory.

    Pending messages sit in a dict keyed by sequence number plus an ordered list of sequence numbers, so
    appends, out-of-order removals and ``peek(after_seq)`` are all cheap; the list is compacted lazily.
    """

    def __init__(
        self,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
    ) -> None:
        super().__init__(max_messages, overflow, block_timeout)
        self._items: dict[int, Envelope] = {}
        self._order: list[int] = []
        self._stale = 0  # removed seqs still listed in _order
        self._next_seq = 1
        self._failed: list[FailedMessage] = []

    def _store_insert(self, messages: Sequence[NewMessage], now: float) -> list[Envelope]:
        out = []
        for m in messages:
            e = Envelope(self._next_seq, m.id, m.destination, m.body, dict(m.headers), now)
            self._next_seq += 1
            self._items[e.seq] = e
            self._order.append(e.seq)
            out.append(e)
        return out

    def _store_peek(self, after_seq: int, limit: int) -> list[Envelope]:
        out: list[Envelope] = []
        order, items = self._order, self._items
        i = bisect.bisect_right(order, after_seq)
        while i < len(order) and len(out) < limit:
            e = items.get(order[i])
            if e is not None:
                out.append(e)
            i += 1
        return out

    def _store_delete(self, seqs: Sequence[int]) -> int:
        removed = 0
        for s in seqs:
            if self._items.pop(s, None) is not None:
                removed += 1
        self._stale += removed
        if self._stale > 1024 and self._stale * 2 > len(self._order):
            self._order = [s for s in self._order if s in self._items]
            self._stale = 0
        return removed

    def _store_get(self, seqs: Sequence[int]) -> list[Envelope]:
        return [self._items[s] for s in seqs if s in self._items]

    def _store_move_to_failed(self, records: Sequence[FailedMessage]) -> None:
        self._store_delete([r.envelope.seq for r in records])
        self._failed.extend(records)

    def _store_failed(self) -> list[FailedMessage]:
        return list(self._failed)

    def _store_clear_failed(self) -> int:
        n = len(self._failed)
        self._failed.clear()
        return n

    def _store_close(self) -> None:
        """Nothing to release; the failed list stays readable after close."""
