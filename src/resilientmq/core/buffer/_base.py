"""What every outbox shares: the records, the overflow policy and the bounded-append logic.

A storage backend (memory, LMDB) implements a handful of ``_store_*`` primitives; the locking, the two
bounds (messages and bytes), blocking and the drop-oldest bookkeeping live here once.
"""

from __future__ import annotations

import enum
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from resilientmq.core.errors import BufferFullError, ClientClosedError

__all__ = ["Buffer", "Envelope", "FailedMessage", "NewMessage", "OverflowPolicy"]

DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_BLOCK_TIMEOUT = 30.0

# Records are built on the send path and kept while a backlog lasts: they have slots (one object each
# for the garbage collector to visit, not two) and are filled through their slot descriptors, which costs
# half of what a frozen dataclass's generated __init__ does (one object.__setattr__ per field).
_new = object.__new__


class OverflowPolicy(str, enum.Enum):
    """What ``append`` does when the buffer holds ``max_messages`` (or ``max_bytes``)."""

    BLOCK = "block"
    """Wait for room up to the block timeout, then raise ``BufferFullError`` (the default)."""
    RAISE = "raise"
    """Raise ``BufferFullError`` at once."""
    DROP_OLDEST = "drop_oldest"
    """Evict the oldest pending messages into the failed list (counted as dropped) to make room."""

    @classmethod
    def coerce(cls, value: OverflowPolicy | str) -> OverflowPolicy:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in cls)
            raise ValueError(f"overflow policy must be one of {allowed}, got {value!r}") from None


def _message_ids() -> Callable[[], str]:
    """Unique message ids, cheaply: a random per-process prefix and a counter (uuid4 per message costs
    an ``os.urandom`` call, which showed in the send path's profile). A plain function (a callable
    instance costs a third more per call); a forked child starts a prefix of its own."""
    state: list[Any] = []

    def reset() -> None:
        state[:] = [uuid.uuid4().hex[:20], itertools.count()]

    def new_id() -> str:
        prefix, counter = state
        return f"{prefix}{next(counter):012x}"

    reset()
    os.register_at_fork(after_in_child=reset)
    return new_id


new_message_id = _message_ids()


@dataclass(frozen=True, slots=True)  # our own __init__ is kept: dataclass never overwrites one
class NewMessage:
    """A message on its way into the buffer (no sequence number yet).

    ``NewMessage(destination, body, headers={}, id=<unique>)``; ``headers`` is adapter-specific (and
    JSON-serialisable for a durable buffer), ``id`` is stable across re-sends.
    """

    destination: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_message_id)

    def __init__(
        self, destination: str, body: bytes, headers: Mapping[str, Any] | None = None, id: str | None = None
    ) -> None:
        _set_destination(self, destination)
        _set_body(self, body)
        _set_headers(self, {} if headers is None else headers)
        _set_message_id(self, new_message_id() if id is None else id)


_set_destination, _set_body, _set_headers, _set_message_id = (
    NewMessage.__dict__[name].__set__ for name in ("destination", "body", "headers", "id")
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message held by the buffer until the broker confirms it.

    ``seq`` orders messages (strictly increasing, never reused within a buffer file); ``id`` is stable
    across re-sends so consumers can drop duplicates; ``headers`` is adapter-specific and JSON-serialisable.
    """

    seq: int
    id: str
    destination: str
    body: bytes
    headers: Mapping[str, Any]
    created_at: float


def make_envelope(
    seq: int, id: str, destination: str, body: bytes, headers: Mapping[str, Any], created_at: float
) -> Envelope:
    """An :class:`Envelope`, built the fast way (equal in every respect to ``Envelope(...)``)."""
    e: Envelope = _new(Envelope)
    _set_seq(e, seq)
    _set_id(e, id)
    _set_envelope_destination(e, destination)
    _set_envelope_body(e, body)
    _set_envelope_headers(e, headers)
    _set_created_at(e, created_at)
    return e


_set_seq, _set_id, _set_envelope_destination, _set_envelope_body, _set_envelope_headers, _set_created_at = (
    Envelope.__dict__[name].__set__ for name in ("seq", "id", "destination", "body", "headers", "created_at")
)


@dataclass(frozen=True, slots=True)
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

    def append_one(
        self,
        destination: str,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
        id: str | None = None,
        timeout: float | None = None,
    ) -> Envelope: ...

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


def body_bytes(messages: Sequence[NewMessage] | Sequence[Envelope]) -> int:
    """What ``max_bytes`` counts: the bodies' lengths (headers and destinations are not counted)."""
    return sum([len(m.body) for m in messages])


class BoundedBuffer:
    """Bounds, overflow policy and locking for a storage backend.

    ``max_messages`` bounds how many messages are pending; ``max_bytes`` (None: no bound) how many bytes
    their bodies hold together, as RabbitMQ's ``max-length-bytes`` does. Both are enforced the same way,
    by the overflow policy.

    Subclasses implement the ``_store_*`` primitives; every primitive is called with ``self._lock`` held,
    so a backend needs no locking of its own. The count and byte total of a batch are reserved before
    ``_store_insert`` runs (and given back if it raises), so a backend may release the lock inside
    ``_store_insert`` (to share an fsync with other appenders) without the bounds being overrun.
    """

    def __init__(
        self,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
        *,
        max_bytes: int | None = None,
    ) -> None:
        if not isinstance(max_messages, int) or isinstance(max_messages, bool) or max_messages < 1:
            raise ValueError(f"buffer_max_messages must be a positive int, got {max_messages!r}")
        if max_bytes is not None and (
            not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1
        ):
            raise ValueError(f"buffer_max_bytes must be a positive int or None, got {max_bytes!r}")
        if block_timeout is not None and block_timeout < 0:
            raise ValueError(f"buffer block timeout must be >= 0 or None, got {block_timeout!r}")
        self._max = max_messages
        self._max_bytes = max_bytes
        self._overflow = OverflowPolicy.coerce(overflow)
        self._block_timeout = block_timeout
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._count = 0
        self._bytes = 0
        self._outside = 0  # room held for messages a client library holds instead of us (see hold_outside)
        self._dropped = 0
        self._closed = False
        self._identity = uuid.uuid4().hex

    # -- the backend's part -------------------------------------------------------------------------
    def _store_insert(self, messages: Sequence[NewMessage], now: float) -> list[Envelope]:
        raise NotImplementedError

    def _store_insert_one(
        self, destination: str, body: bytes, headers: Mapping[str, Any] | None, id: str, now: float
    ) -> Envelope:
        """Insert one message given by its fields (``append_one``); a backend may do it without the
        :class:`NewMessage` and the lists."""
        return self._store_insert([NewMessage(destination, body, headers, id)], now)[0]

    def _store_peek(self, after_seq: int, limit: int) -> list[Envelope]:
        raise NotImplementedError

    def _store_delete(self, seqs: Sequence[int]) -> tuple[int, int]:
        """Delete the pending messages among ``seqs``; (how many, their body bytes)."""
        raise NotImplementedError

    def _store_seqs(self, through: int) -> list[int]:
        raise NotImplementedError

    def _store_get(self, seqs: Sequence[int]) -> list[Envelope]:
        raise NotImplementedError

    def _store_move_to_failed(self, records: Sequence[FailedMessage]) -> None:
        raise NotImplementedError

    def _store_failed(self) -> list[FailedMessage]:
        raise NotImplementedError

    def _store_clear_failed(self) -> int:
        raise NotImplementedError

    def _store_requeue(self, records: Sequence[FailedMessage]) -> list[Envelope]:
        """Move ``records`` (failed ones, each known by its message's first seq) back to the end of the
        pending messages under new seqs; their envelopes."""
        raise NotImplementedError

    def _store_discard_failed(self, records: Sequence[FailedMessage]) -> int:
        """Delete ``records`` from the failed list; how many went."""
        raise NotImplementedError

    def _store_close(self) -> None:
        raise NotImplementedError

    def _store_take_seqs(self, n: int) -> int:
        """Take ``n`` sequence numbers for messages that are not inserted (straight into the failed list);
        the first of them."""
        raise NotImplementedError

    def _store_settle(self) -> None:
        """Called before a change other than an insert or a removal: finish what a backend is still
        committing with the lock released, so that the change sees every accepted message."""

    def _store_flush(self) -> None:
        """Called after a removal: a backend that groups commits makes the removal durable here (it may
        release the lock meanwhile; the counts are already updated)."""

    # -- the shared part ----------------------------------------------------------------------------
    @property
    def max_messages(self) -> int:
        return self._max

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    @property
    def overflow(self) -> OverflowPolicy:
        return self._overflow

    @property
    def dropped_count(self) -> int:
        return self._dropped

    @property
    def identity(self) -> str:
        """A stable id of this outbox: random for a memory buffer, kept in the file of a durable one, so
        the next process opened on the same path has it too (e.g. to find what it sent before a crash)."""
        return self._identity

    @property
    def pending_bytes(self) -> int:
        """The body bytes of the pending messages (what ``max_bytes`` bounds)."""
        return self._bytes

    def __len__(self) -> int:
        return self._count

    def append(self, message: NewMessage, timeout: float | None = None) -> Envelope:
        """Add one message; the overflow policy decides what happens when the buffer is full."""
        return self.extend((message,), timeout)[0]

    def append_one(
        self,
        destination: str,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
        id: str | None = None,
        timeout: float | None = None,
    ) -> Envelope:
        """``append(NewMessage(destination, body, headers, id), timeout)``, built once (the send path's
        case): no :class:`NewMessage`, no lists."""
        size = len(body)
        max_bytes = self._max_bytes
        if max_bytes is not None and size > max_bytes:
            self._check_open()
            raise BufferFullError(self._never_fits(1, size))
        with self._lock:
            if self._closed:
                raise ClientClosedError("the buffer is closed")
            if self._count + self._outside >= self._max or (
                max_bytes is not None and self._bytes + size > max_bytes
            ):
                self._make_room(1, size, timeout)
            self._count += 1
            self._bytes += size
            try:
                return self._store_insert_one(
                    destination, body, headers, new_message_id() if id is None else id, time.time()
                )
            except BaseException:
                self._count -= 1
                self._bytes -= size
                self._space.notify_all()
                raise

    def extend(self, messages: Sequence[NewMessage], timeout: float | None = None) -> list[Envelope]:
        """Add messages atomically and in order (one transaction on disk).

        ``timeout`` overrides the block timeout for this call.
        """
        n = len(messages)
        if n == 1:
            size = len(messages[0].body)
        elif n:
            size = body_bytes(messages)
        else:
            return []
        max_bytes = self._max_bytes
        if n > self._max or (max_bytes is not None and size > max_bytes):
            self._check_open()  # a closed buffer says so first
            raise BufferFullError(self._never_fits(n, size))
        with self._lock:
            if self._closed:
                raise ClientClosedError("the buffer is closed")
            if self._count + self._outside + n > self._max or (
                max_bytes is not None and self._bytes + size > max_bytes
            ):
                self._make_room(n, size, timeout)
            self._count += n
            self._bytes += size
            try:
                return self._store_insert(messages, time.time())
            except BaseException:
                self._count -= n
                self._bytes -= size
                self._space.notify_all()
                raise

    def peek(self, after_seq: int = 0, limit: int = 1000) -> list[Envelope]:
        """Up to ``limit`` pending messages with ``seq > after_seq``, oldest first; nothing is removed."""
        with self._lock:
            if self._closed:
                return []
            return self._store_peek(after_seq, limit)

    def pending_seqs(self, through: int) -> list[int]:
        """The seqs of the pending messages up to and including ``through``, oldest first (no bodies)."""
        with self._lock:
            if self._closed:
                return []
            return self._store_seqs(through)

    def remove(self, seqs: Iterable[int]) -> int:
        """Forget confirmed messages; unknown (already removed) seqs are ignored. Returns how many went."""
        wanted = seqs if isinstance(seqs, list) else list(seqs)
        if not wanted:
            return 0
        with self._lock:
            if self._closed:
                return 0
            removed, freed = self._store_delete(wanted)
            self._release(removed, freed)
            self._store_flush()
            return removed

    def fail(self, failures: Iterable[tuple[int, BaseException | str]]) -> list[FailedMessage]:
        """Move messages that can never be delivered to the failed list, with their reasons."""
        reasons = dict(failures)
        if not reasons:
            return []
        with self._lock:
            self._check_open()
            self._store_settle()
            self._check_open()  # (settling may have let a close in)
            now = time.time()
            records = []
            for envelope in self._store_get(sorted(reasons)):
                reason, error_type = describe_error(reasons[envelope.seq])
                records.append(FailedMessage(envelope, reason, error_type, now))
            if records:
                self._store_move_to_failed(records)
                self._release(len(records), body_bytes([r.envelope for r in records]))
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
            self._store_settle()
            self._check_open()
            return self._store_clear_failed()

    def requeue_failed(self, select: Callable[[FailedMessage], bool] | None = None) -> list[Envelope]:
        """Move failed messages (all, or those ``select`` picks) back into the outbox, to be sent again:
        for an operator who fixed the cause (``resilientmq buffer replay``).

        They go to the end, in the order they failed, under new seqs, keeping their ids (a consumer that
        drops duplicates by id still can), headers and creation times. The bounds do not apply: nothing
        the buffer holds is refused or dropped for it. Returns the new envelopes.
        """
        with self._lock:
            self._check_open()
            self._store_settle()
            self._check_open()
            chosen = [r for r in self._store_failed() if select is None or select(r)]
            if not chosen:
                return []
            envelopes = self._store_requeue(chosen)
            self._count += len(envelopes)
            self._bytes += body_bytes(envelopes)
            return envelopes

    def discard_failed(self, select: Callable[[FailedMessage], bool] | None = None) -> int:
        """Delete failed messages (all, or those ``select`` picks) for good; how many went."""
        with self._lock:
            self._check_open()
            self._store_settle()
            self._check_open()
            chosen = [r for r in self._store_failed() if select is None or select(r)]
            return self._store_discard_failed(chosen) if chosen else 0

    def wait_for_space(self, timeout: float | None) -> bool:
        """Block until there is room for one more message (a free slot and, with ``max_bytes``, a free
        byte) or the buffer closes; False on timeout."""
        with self._lock:
            return self._space.wait_for(lambda: self._closed or self._fits(1, 1), timeout)

    # -- messages a client library holds instead of the buffer ---------------------------------------
    @property
    def outside(self) -> int:
        """Room held by :meth:`hold_outside` and not yet given back."""
        return self._outside

    def hold_outside(self, n: int) -> int:
        """Hold room for up to ``n`` messages that a client library will keep instead of this buffer (an
        adapter's write-through: handed straight to the broker's client while nothing is stored here, so
        that none can overtake a stored one). Held room counts against ``max_messages`` like stored
        messages, until :meth:`release_outside` gives it back (or :meth:`fail_outside` takes it).

        Returns how much was held: 0 while any message is stored, when the buffer is full or closed, and
        with ``max_bytes`` (the bytes a client library holds are not counted)."""
        with self._lock:
            if self._closed or self._count or self._max_bytes is not None:
                return 0
            held = min(n, self._max - self._outside)
            if held <= 0:
                return 0
            self._outside += held
            return held

    def release_outside(self, n: int) -> None:
        """Give back room held by :meth:`hold_outside` (its messages were delivered, or never sent)."""
        with self._lock:
            self._outside = max(0, self._outside - n)
            self._space.notify_all()

    def fail_outside(
        self, failures: Sequence[tuple[NewMessage, BaseException | str]], seqs: Sequence[int] | None = None
    ) -> list[FailedMessage]:
        """Put messages that were held outside (see :meth:`hold_outside`) straight into the failed list, with
        their reasons; the room they held is given back. ``seqs``: those of their recovery copies (a durable
        buffer's ``keep_outside``), which move into the failed list; else they get new ones."""
        if not failures:
            return []
        with self._lock:
            self._check_open()
            self._store_settle()
            self._check_open()
            now = time.time()
            if seqs is None:
                first = self._store_take_seqs(len(failures))
                seqs = range(first, first + len(failures))
            records = []
            for seq, (m, error) in zip(seqs, failures, strict=True):
                reason, error_type = describe_error(error)
                e = make_envelope(seq, m.id, m.destination, m.body, dict(m.headers), now)
                records.append(FailedMessage(e, reason, error_type, now))
            self._store_move_to_failed(records)
            self._outside = max(0, self._outside - len(records))
            self._space.notify_all()
            return records

    def close(self) -> None:
        """Release the storage; pending messages stay in a durable file. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._space.notify_all()
            self._store_settle()
            self._store_close()

    def __enter__(self) -> BoundedBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the buffer is closed")

    def _fits(self, n: int, size: int) -> bool:
        if self._count + self._outside + n > self._max:
            return False
        return self._max_bytes is None or self._bytes + size <= self._max_bytes

    def _release(self, n: int, size: int) -> None:
        if n:
            self._count -= n
            self._bytes -= size
            self._space.notify_all()

    def _make_room(self, n: int, size: int, timeout: float | None) -> None:
        """The overflow policy, for a batch of ``n`` messages and ``size`` bytes that does not fit."""
        if self._overflow is OverflowPolicy.RAISE:
            raise BufferFullError(self._full_message(n, size))
        if self._overflow is OverflowPolicy.DROP_OLDEST:
            self._store_settle()
            self._check_open()
            self._drop_oldest(n, size)
            return
        wait = self._block_timeout if timeout is None else timeout
        if not self._space.wait_for(lambda: self._closed or self._fits(n, size), wait):
            raise BufferFullError(self._full_message(n, size) + f" (waited {wait:g} s for room)")
        self._check_open()

    def _drop_oldest(self, n: int, size: int) -> None:
        excess_n = self._count + self._outside + n - self._max
        excess_b = 0 if self._max_bytes is None else self._bytes + size - self._max_bytes
        victims: list[Envelope] = []
        freed = 0
        after = 0
        while excess_n > 0 or excess_b > 0:
            chunk = self._store_peek(after, max(excess_n, 64))
            if not chunk:
                break
            for e in chunk:
                victims.append(e)
                freed += len(e.body)
                excess_n -= 1
                excess_b -= len(e.body)
                if excess_n <= 0 and excess_b <= 0:
                    break
            after = chunk[-1].seq
        if not victims:
            return
        bound = f"{self._max} messages" + ("" if self._max_bytes is None else f", {self._max_bytes} bytes")
        reason = f"dropped: buffer full ({bound}) and overflow policy is drop_oldest"
        now = time.time()
        self._store_move_to_failed([FailedMessage(e, reason, "BufferFullError", now) for e in victims])
        self._count -= len(victims)
        self._bytes -= freed
        self._dropped += len(victims)

    def _never_fits(self, n: int, size: int) -> str:
        if n > self._max:
            return f"a batch of {n} messages can never fit a buffer of {self._max} messages"
        what = "a message" if n == 1 else f"a batch of {n} messages"
        return f"{what} of {size} bytes can never fit a buffer of {self._max_bytes} bytes (buffer_max_bytes)"

    def _full_message(self, n: int, size: int) -> str:
        if self._count + self._outside + n > self._max:
            what = "a message" if n == 1 else f"{n} messages"
            pending = self._count + self._outside
            return f"buffer full: {pending} of {self._max} messages pending, no room for {what}"
        what = "a message" if n == 1 else f"{n} messages"
        return (
            f"buffer full: {self._bytes} of {self._max_bytes} bytes pending (buffer_max_bytes), "
            f"no room for {what} of {size} bytes"
        )
