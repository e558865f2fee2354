"""What every outbox shares: the records, the overflow policy and the bounded-append logic.

A storage backend (memory, SQLite) implements a handful of ``_store_*`` primitives; the locking,
the bound, blocking and the drop-oldest bookkeeping live here once.
"""

from __future__ import annotations

import enum
import itertools
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from resilientmq.core.errors import BufferFullError, ClientClosedError

__all__ = ["Buffer", "Envelope", "FailedMessage", "NewMessage", "OverflowPolicy"]

DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_BLOCK_TIMEOUT = 30.0


class OverflowPolicy(str, enum.Enum):
    """What ``append`` does when the buffer holds ``max_messages``."""

    BLOCK = "block"
    """Wait for room up to the block timeout, then raise ``BufferFullError`` (the default)."""
    RAISE = "raise"
    """Raise ``BufferFullError`` at once."""
    DROP_OLDEST = "drop_oldest"
    """Evict the oldest pending message into the failed list (counted as dropped) to make room."""

    @classmethod
    def coerce(cls, value: OverflowPolicy | str) -> OverflowPolicy:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in cls)
            raise ValueError(f"overflow policy must be one of {allowed}, got {value!r}") from None


class _MessageIds:
    """Unique message ids, cheaply: a random per-process prefix and a counter (uuid4 per message costs
    an ``os.urandom`` call, which showed in the send path's profile)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = uuid.uuid4().hex[:20]
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


new_message_id = _MessageIds()


@dataclass(frozen=True)
class NewMessage:
    """A message on its way into the buffer (no sequence number yet)."""

    destination: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_message_id)


@dataclass(frozen=True)
class Envelope:
    """A message held by the buffer until the broker confirms it.

    ``seq`` orders messages (strictly increasing, never reused within a buffer); ``id`` is stable across
    re-sends so consumers can drop duplicates; ``headers`` is adapter-specific and JSON-serialisable.
    """

    seq: int
    id: str
    destination: str
    body: bytes
    headers: Mapping[str, Any]
    created_at: float


@dataclass(frozen=True)
class FailedMessage:
    """A message that can never be delivered, and why."""

    envelope: Envelope
    reason: str
    error_type: str
    failed_at: float

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def destination(self) -> str:
        return self.envelope.destination

    @property
    def body(self) -> bytes:
        return self.envelope.body

    @property
    def headers(self) -> Mapping[str, Any]:
        return self.envelope.headers


@runtime_checkable
class Buffer(Protocol):
    """The outbox: messages accepted but not yet confirmed by the broker, oldest first."""

    @property
    def max_messages(self) -> int: ...

    @property
    def overflow(self) -> OverflowPolicy: ...

    @property
    def dropped_count(self) -> int: ...

    def __len__(self) -> int: ...

    def append(self, message: NewMessage, timeout: float | None = None) -> Envelope: ...

    def extend(self, messages: Sequence[NewMessage], timeout: float | None = None) -> list[Envelope]: ...

    def peek(self, after_seq: int = 0, limit: int = 1000) -> list[Envelope]: ...

    def remove(self, seqs: Iterable[int]) -> int: ...

    def fail(self, failures: Iterable[tuple[int, BaseException | str]]) -> list[FailedMessage]: ...

    def failed(self) -> list[FailedMessage]: ...

    def clear_failed(self) -> int: ...

    def wait_for_space(self, timeout: float | None) -> bool: ...

    def close(self) -> None: ...


def describe_error(error: BaseException | str) -> tuple[str, str]:
    """(reason, error type name) for a failure record."""
    if isinstance(error, str):
        return error, "str"
    return (str(error) or type(error).__name__), type(error).__name__


class BoundedBuffer:
    """Bound, overflow policy and locking for a storage backend.

    Subclasses implement the ``_store_*`` primitives; every primitive is called with ``self._lock`` held,
    so a backend never needs locking of its own.
    """

    def __init__(
        self,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
    ) -> None:
        if not isinstance(max_messages, int) or isinstance(max_messages, bool) or max_messages < 1:
            raise ValueError(f"buffer_max_messages must be a positive int, got {max_messages!r}")
        if block_timeout is not None and block_timeout < 0:
            raise ValueError(f"buffer block timeout must be >= 0 or None, got {block_timeout!r}")
        self._max = max_messages
        self._overflow = OverflowPolicy.coerce(overflow)
        self._block_timeout = block_timeout
        self._lock = threading.RLock()
        self._space = threading.Condition(self._lock)
        self._count = 0
        self._dropped = 0
        self._closed = False

    # -- the backend's part -------------------------------------------------------------------------
    def _store_insert(self, messages: Sequence[NewMessage], now: float) -> list[Envelope]:
        raise NotImplementedError

    def _store_peek(self, after_seq: int, limit: int) -> list[Envelope]:
        raise NotImplementedError

    def _store_delete(self, seqs: Sequence[int]) -> int:
        raise NotImplementedError

    def _store_get(self, seqs: Sequence[int]) -> list[Envelope]:
        raise NotImplementedError

    def _store_move_to_failed(self, records: Sequence[FailedMessage]) -> None:
        raise NotImplementedError

    def _store_failed(self) -> list[FailedMessage]:
        raise NotImplementedError

    def _store_clear_failed(self) -> int:
        raise NotImplementedError

    def _store_close(self) -> None:
        raise NotImplementedError

    # -- the shared part ----------------------------------------------------------------------------
    @property
    def max_messages(self) -> int:
        return self._max

    @property
    def overflow(self) -> OverflowPolicy:
        return self._overflow

    @property
    def dropped_count(self) -> int:
        return self._dropped

    def __len__(self) -> int:
        return self._count

    def append(self, message: NewMessage, timeout: float | None = None) -> Envelope:
        """Add one message; the overflow policy decides what happens when the buffer is full."""
        return self.extend([message], timeout)[0]

    def extend(self, messages: Sequence[NewMessage], timeout: float | None = None) -> list[Envelope]:
        """Add messages atomically and in order (one transaction on disk).

        ``timeout`` overrides the block timeout for this call.
        """
        n = len(messages)
        if n == 0:
            return []
        if n > self._max:
            raise BufferFullError(f"a batch of {n} messages can never fit a buffer of {self._max} messages")
        with self._lock:
            self._check_open()
            free = self._max - self._count
            if n > free:
                if self._overflow is OverflowPolicy.RAISE:
                    raise BufferFullError(self._full_message(n))
                if self._overflow is OverflowPolicy.DROP_OLDEST:
                    self._drop_oldest(n - free)
                else:
                    wait = self._block_timeout if timeout is None else timeout
                    if not self._space.wait_for(lambda: self._closed or self._max - self._count >= n, wait):
                        raise BufferFullError(self._full_message(n) + f" (waited {wait:g} s for room)")
                    self._check_open()
            envelopes = self._store_insert(messages, time.time())
            self._count += n
            return envelopes

    def peek(self, after_seq: int = 0, limit: int = 1000) -> list[Envelope]:
        """Up to ``limit`` pending messages with ``seq > after_seq``, oldest first; nothing is removed."""
        with self._lock:
            if self._closed:
                return []
            return self._store_peek(after_seq, limit)

    def remove(self, seqs: Iterable[int]) -> int:
        """Forget confirmed messages; unknown (already removed) seqs are ignored. Returns how many went."""
        wanted = list(seqs)
        if not wanted:
            return 0
        with self._lock:
            if self._closed:
                return 0
            removed = self._store_delete(wanted)
            self._release(removed)
            return removed

    def fail(self, failures: Iterable[tuple[int, BaseException | str]]) -> list[FailedMessage]:
        """Move messages that can never be delivered to the failed list, with their reasons."""
        reasons = dict(failures)
        if not reasons:
            return []
        with self._lock:
            self._check_open()
            now = time.time()
            records = []
            for envelope in self._store_get(sorted(reasons)):
                reason, error_type = describe_error(reasons[envelope.seq])
                records.append(FailedMessage(envelope, reason, error_type, now))
            self._store_move_to_failed(records)
            self._release(len(records))
            return records

    def failed(self) -> list[FailedMessage]:
        """Every message that failed permanently or was dropped, oldest failure first.

        Still readable after ``close()``.
        """
        with self._lock:
            return self._store_failed()

    def clear_failed(self) -> int:
        """Forget the failed list (after the caller has dealt with it). Returns how many were cleared."""
        with self._lock:
            self._check_open()
            return self._store_clear_failed()

    def wait_for_space(self, timeout: float | None) -> bool:
        """Block until at least one message fits (or the buffer closes); False on timeout."""
        with self._lock:
            return self._space.wait_for(lambda: self._closed or self._count < self._max, timeout)

    def close(self) -> None:
        """Release the storage; pending messages stay in a durable file. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._space.notify_all()
            self._store_close()

    def __enter__(self) -> BoundedBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the buffer is closed")

    def _release(self, n: int) -> None:
        if n:
            self._count -= n
            self._space.notify_all()

    def _drop_oldest(self, n: int) -> None:
        victims = self._store_peek(0, n)
        now = time.time()
        reason = f"dropped: buffer full ({self._max} messages) and overflow policy is drop_oldest"
        self._store_move_to_failed([FailedMessage(e, reason, "BufferFullError", now) for e in victims])
        self._count -= len(victims)
        self._dropped += len(victims)

    def _full_message(self, n: int) -> str:
        what = "a message" if n == 1 else f"{n} messages"
        return f"buffer full: {self._count} of {self._max} messages pending, no room for {what}"
