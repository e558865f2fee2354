"""The in-memory outbox: survives broker outages, not process crashes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ._base import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_MAX_MESSAGES,
    BoundedBuffer,
    Envelope,
    FailedMessage,
    NewMessage,
    OverflowPolicy,
    make_envelope,
)
from ._index import PendingIndex

__all__ = ["MemoryBuffer"]

_NO_HEADERS: Mapping[str, Any] = MappingProxyType({})


class MemoryBuffer(BoundedBuffer):
    """A bounded outbox held in memory: a :class:`PendingIndex` of envelopes.

    Memory is bounded by ``max_messages`` and, when given, ``max_bytes`` of bodies.
    """

    def __init__(
        self,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
        *,
        max_bytes: int | None = None,
    ) -> None:
        super().__init__(max_messages, overflow, block_timeout, max_bytes=max_bytes)
        self._pending: PendingIndex[Envelope] = PendingIndex()
        self._next_seq = 1
        self._failed: list[FailedMessage] = []

    def _store_insert(self, messages: Sequence[NewMessage], now: float) -> list[Envelope]:
        seq = self._next_seq
        add = self._pending.add
        out = []
        for m in messages:
            e = make_envelope(seq, m.id, m.destination, m.body, dict(m.headers), now)
            add(seq, e)
            out.append(e)
            seq += 1
        self._next_seq = seq
        return out

    def _store_insert_one(
        self, destination: str, body: bytes, headers: Mapping[str, Any] | None, id: str, now: float
    ) -> Envelope:
        seq = self._next_seq
        # An empty mapping is shared, read-only: most messages have no headers, and a dict each costs.
        e = make_envelope(seq, id, destination, body, dict(headers) if headers else _NO_HEADERS, now)
        self._pending.add(seq, e)
        self._next_seq = seq + 1
        return e

    def _store_peek(self, after_seq: int, limit: int) -> list[Envelope]:
        return self._pending.values_after(after_seq, limit)

    def _store_delete(self, seqs: Sequence[int]) -> tuple[int, int]:
        gone = self._pending.pop_many(seqs)
        return len(gone), sum([len(e.body) for _s, e in gone])

    def _store_seqs(self, through: int) -> list[int]:
        return self._pending.seqs_through(through)

    def _store_get(self, seqs: Sequence[int]) -> list[Envelope]:
        get = self._pending.get
        return [e for e in map(get, seqs) if e is not None]

    def _store_move_to_failed(self, records: Sequence[FailedMessage]) -> None:
        self._pending.pop_many([r.envelope.seq for r in records])
        self._failed.extend(records)

    def _store_failed(self) -> list[FailedMessage]:
        return list(self._failed)

    def _store_clear_failed(self) -> int:
        n = len(self._failed)
        self._failed.clear()
        return n

    def _store_requeue(self, records: Sequence[FailedMessage]) -> list[Envelope]:
        chosen = {id(r) for r in records}
        self._failed = [r for r in self._failed if id(r) not in chosen]
        out = []
        for r in records:
            e = r.envelope
            moved = make_envelope(self._next_seq, e.id, e.destination, e.body, e.headers, e.created_at)
            self._pending.add(moved.seq, moved)
            out.append(moved)
            self._next_seq += 1
        return out

    def _store_discard_failed(self, records: Sequence[FailedMessage]) -> int:
        chosen = {id(r) for r in records}
        before = len(self._failed)
        self._failed = [r for r in self._failed if id(r) not in chosen]
        return before - len(self._failed)

    def _store_take_seqs(self, n: int) -> int:
        seq = self._next_seq
        self._next_seq += n
        return seq

    def _store_close(self) -> None:
        """Nothing to release; the failed list stays readable after close."""
