"""Both buffers against a plain model: random appends, batches, peeks, removes, fails, drops, reopens
and closes (hypothesis' RuleBasedStateMachine). Nothing is lost, order is kept, the counts are right."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from resilientmq import BufferFullError, ClientClosedError
from resilientmq.core.buffer import BoundedBuffer, Envelope, LmdbBuffer, MemoryBuffer, NewMessage

DROP_REASON = "overflow policy is drop_oldest"

bodies = st.binary(max_size=24)
headers = st.dictionaries(st.text(max_size=3), st.integers(-(2**40), 2**40) | st.text(max_size=4), max_size=2)
destinations = st.sampled_from(["/queue/a", "/topic/b", "orders"])
messages = st.builds(NewMessage, destinations, bodies, headers)
reasons = st.sampled_from(["refused", "too big", ""]) | st.builds(ValueError, st.sampled_from(["bad", ""]))


@dataclass
class Model:
    pending: list[Envelope] = field(default_factory=list)
    failed: list[tuple[Envelope, str, str]] = field(default_factory=list)
    dropped: int = 0
    high: int = 0  # the highest seq handed out by this buffer (file)

    @property
    def nbytes(self) -> int:
        return sum(len(e.body) for e in self.pending)


def same(e: Envelope) -> tuple[Any, ...]:
    return e.seq, e.id, e.destination, e.body, dict(e.headers)


class BufferMachine(RuleBasedStateMachine):
    durable = False

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="rmq-model-"))
        self.model = Model()
        self.buf: BoundedBuffer | None = None
        self.kwargs: dict[str, Any] = {}

    @initialize(
        max_messages=st.integers(1, 6),
        max_bytes=st.none() | st.integers(1, 60),
        overflow=st.sampled_from(["raise", "block", "drop_oldest"]),
        fsync=st.booleans(),
    )
    def open(self, max_messages: int, max_bytes: int | None, overflow: str, fsync: bool) -> None:
        self.kwargs = {"max_messages": max_messages, "max_bytes": max_bytes, "overflow": overflow}
        if self.durable:
            self.kwargs["fsync"] = fsync
        self.buf = self._make()

    def _make(self) -> BoundedBuffer:
        # block_timeout=0: a full buffer under "block" fails at once, as under "raise"
        if self.durable:
            return LmdbBuffer(self.dir / "model.db", block_timeout=0, **self.kwargs)
        return MemoryBuffer(block_timeout=0, **self.kwargs)

    def teardown(self) -> None:
        if self.buf is not None:
            self.buf.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- what the model expects of an append ----------------------------------------------------------
    def _fits(self, n: int, size: int) -> bool:
        m, cap = self.model, self.kwargs["max_bytes"]
        return len(m.pending) + n <= self.kwargs["max_messages"] and (cap is None or m.nbytes + size <= cap)

    def _append(self, batch: list[NewMessage]) -> None:
        assert self.buf is not None
        m, size = self.model, sum(len(x.body) for x in batch)
        cap = self.kwargs["max_bytes"]
        never = len(batch) > self.kwargs["max_messages"] or (cap is not None and size > cap)
        if batch and (
            never or (not self._fits(len(batch), size) and self.kwargs["overflow"] != "drop_oldest")
        ):
            with pytest.raises(BufferFullError, match="can never fit" if never else "buffer full"):
                self.buf.extend(batch)
            return
        while batch and not self._fits(len(batch), size):
            victim = m.pending.pop(0)
            m.failed.append((victim, DROP_REASON, "BufferFullError"))
            m.dropped += 1
        got = self.buf.extend(batch)
        assert [(e.id, e.destination, e.body, dict(e.headers)) for e in got] == [
            (x.id, x.destination, x.body, dict(x.headers)) for x in batch
        ]
        for e in got:
            assert e.seq > m.high  # strictly increasing, never reused
            m.high = e.seq
        m.pending.extend(got)

    # -- rules ------------------------------------------------------------------------------------------
    @precondition(lambda self: self.buf is not None)
    @rule(message=messages)
    def append(self, message: NewMessage) -> None:
        self._append([message])

    @precondition(lambda self: self.buf is not None)
    @rule(batch=st.lists(messages, max_size=4))
    def extend(self, batch: list[NewMessage]) -> None:
        self._append(batch)

    @precondition(lambda self: self.buf is not None)
    @rule(start=st.integers(-1, 8), limit=st.integers(1, 8))
    def peek(self, start: int, limit: int) -> None:
        assert self.buf is not None
        pending = self.model.pending
        after = 0 if start < 0 or not pending else pending[min(start, len(pending) - 1)].seq
        expected = [e for e in pending if e.seq > after][:limit]
        assert [same(e) for e in self.buf.peek(after, limit)] == [same(e) for e in expected]

    @precondition(lambda self: self.buf is not None)
    @rule(picks=st.lists(st.integers(0, 8), max_size=5), unknown=st.booleans())
    def remove(self, picks: list[int], unknown: bool) -> None:
        assert self.buf is not None
        m = self.model
        chosen = {m.pending[i].seq for i in picks if i < len(m.pending)}
        seqs = list(chosen) + ([m.high + 7] if unknown else [])
        assert self.buf.remove(seqs) == len(chosen)
        m.pending = [e for e in m.pending if e.seq not in chosen]

    @precondition(lambda self: self.buf is not None)
    @rule(picks=st.lists(st.tuples(st.integers(0, 8), reasons), max_size=3))
    def fail(self, picks: list[tuple[int, BaseException | str]]) -> None:
        assert self.buf is not None
        m = self.model
        wanted = {m.pending[i].seq: why for i, why in picks if i < len(m.pending)}
        records = self.buf.fail([*wanted.items(), (m.high + 9, "unknown")])
        expected = []
        for e in m.pending:
            if e.seq in wanted:
                why = wanted[e.seq]
                reason = why if isinstance(why, str) else (str(why) or type(why).__name__)
                expected.append((e, reason, "str" if isinstance(why, str) else type(why).__name__))
        assert [(same(r.envelope), r.reason, r.error_type) for r in records] == [
            (same(e), reason, kind) for e, reason, kind in expected
        ]
        m.failed.extend(expected)
        m.pending = [e for e in m.pending if e.seq not in wanted]

    @precondition(lambda self: self.buf is not None)
    @rule()
    def clear_failed(self) -> None:
        assert self.buf is not None
        assert self.buf.clear_failed() == len(self.model.failed)
        self.model.failed = []

    @precondition(lambda self: self.buf is not None)
    @rule()
    def reopen(self) -> None:
        """A restart: the durable buffer keeps everything but the drop count; memory keeps nothing."""
        assert self.buf is not None
        self.buf.close()
        self.buf = self._make()
        self.model.dropped = 0
        if not self.durable:
            self.model = Model()

    @precondition(lambda self: self.buf is not None)
    @rule(message=messages)
    def close(self, message: NewMessage) -> None:
        assert self.buf is not None
        self.buf.close()
        self.buf.close()  # idempotent
        with pytest.raises(ClientClosedError):
            self.buf.append(message)
        with pytest.raises(ClientClosedError):
            self.buf.fail([(1, "x")])
        assert self.buf.peek() == [] and self.buf.remove([1, 2]) == 0
        self._check_failed()  # still readable after close
        self.buf = self._make()
        self.model.dropped = 0
        if not self.durable:
            self.model = Model()

    # -- invariants -------------------------------------------------------------------------------------
    @invariant()
    def counts(self) -> None:
        if self.buf is not None:
            m = self.model
            assert (len(self.buf), self.buf.pending_bytes, self.buf.dropped_count) == (
                len(m.pending),
                m.nbytes,
                m.dropped,
            )
            self._check_failed()

    def _check_failed(self) -> None:
        assert self.buf is not None
        got = [(same(f.envelope), f.reason if DROP_REASON not in f.reason else DROP_REASON, f.error_type)
               for f in self.buf.failed()]  # fmt: skip
        assert got == [(same(e), reason, kind) for e, reason, kind in self.model.failed]


class DurableBufferMachine(BufferMachine):
    durable = True


MODEL_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMemoryBufferAgainstTheModel = BufferMachine.TestCase
TestMemoryBufferAgainstTheModel.settings = MODEL_SETTINGS
TestDurableBufferAgainstTheModel = DurableBufferMachine.TestCase
TestDurableBufferAgainstTheModel.settings = MODEL_SETTINGS
