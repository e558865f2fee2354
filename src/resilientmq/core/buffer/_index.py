"""Pending messages by sequence number, in order: what both buffers keep in memory."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Generic, TypeVar

__all__ = ["PendingIndex"]

V = TypeVar("V")


class PendingIndex(Generic[V]):
    """A dict keyed by sequence number plus the ordered list of those numbers.

    Appends, out-of-order removals and "the next ``limit`` after ``seq``" are all cheap: removed numbers
    stay in the list until they make up half of it, then the list is compacted.
    """

    __slots__ = ("_items", "_order", "_stale")

    def __init__(self) -> None:
        self._items: dict[int, V] = {}
        self._order: list[int] = []
        self._stale = 0  # removed seqs still listed in _order

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, seq: int) -> bool:
        return seq in self._items

    def get(self, seq: int) -> V | None:
        return self._items.get(seq)

    def add(self, seq: int, value: V) -> None:
        """Add ``seq``, which must be higher than every seq added before."""
        self._items[seq] = value
        self._order.append(seq)

    def replace(self, seq: int, value: V) -> None:
        """Change the value of a seq that is present."""
        self._items[seq] = value

    def pop(self, seq: int) -> V | None:
        value = self._items.pop(seq, None)
        if value is not None:
            self._stale += 1
            self._maybe_compact()
        return value

    def pop_many(self, seqs: Iterable[int]) -> list[tuple[int, V]]:
        """Remove the present ones among ``seqs``; returns them with their values."""
        pop = self._items.pop
        out = []
        for s in seqs:
            value = pop(s, None)
            if value is not None:
                out.append((s, value))
        self._stale += len(out)
        self._maybe_compact()
        return out

    def _maybe_compact(self) -> None:
        if self._stale > 1024 and self._stale * 2 > len(self._order):
            self._order = [s for s in self._order if s in self._items]
            self._stale = 0

    def values_after(self, after_seq: int, limit: int) -> list[V]:
        """Up to ``limit`` values with ``seq > after_seq``, in seq order."""
        order, get = self._order, self._items.get
        i = bisect.bisect_right(order, after_seq) if after_seq > 0 else 0
        out: list[V] = []
        while i < len(order) and len(out) < limit:
            window = order[i : i + limit - len(out)]
            i += len(window)
            out += [v for v in map(get, window) if v is not None]
        return out

    def seqs_after(self, after_seq: int, limit: int) -> list[int]:
        """Up to ``limit`` seqs greater than ``after_seq``, in order."""
        order, items = self._order, self._items
        i = bisect.bisect_right(order, after_seq) if after_seq > 0 else 0
        out: list[int] = []
        while i < len(order) and len(out) < limit:
            window = order[i : i + limit - len(out)]
            i += len(window)
            out += [s for s in window if s in items]
        return out

    def seqs_through(self, through: int) -> list[int]:
        """Every seq up to and including ``through``, in order."""
        order, items = self._order, self._items
        return [s for s in order[: bisect.bisect_right(order, through)] if s in items]
