"""The outbox: the buffer plus its one sender thread.

Data flows one way: ``put()`` appends to the buffer; the sender takes messages in order, hands them to
the live :class:`~resilientmq.core.session.Session` in batches (several batches may be in flight:
confirmations are pipelined), and removes a message only when its batch is confirmed. A new connection
(a new supervisor epoch) makes the sender start again from the oldest unconfirmed message, so every
message is delivered at least once and in order. The adapter decides what "confirmed" means (a STOMP
receipt, a Kafka acknowledgement, an MQ put or commit); the outbox decides what happens next.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .buffer import BoundedBuffer, Envelope, FailedMessage, NewMessage
from .errors import (
    BufferFullError,
    ClientClosedError,
    ConnectionLostError,
    PermanentDeliveryError,
    ReconnectFailedError,
    ResilientMQError,
)
from .policy import ReconnectPolicy
from .session import BatchAbortedError, BatchRejectedError, BatchResult, Session, already_delivered, carries
from .supervisor import ConnectionState, Supervisor
from .telemetry import ClientEvents

__all__ = ["Outbox"]

log = logging.getLogger("resilientmq.core.outbox")

# States in which nothing will be delivered until the user acts.
_STUCK = (ConnectionState.FAILED, ConnectionState.DISCONNECTED, ConnectionState.CLOSED)


@dataclass
class _Ticket:
    batch: Sequence[Envelope]
    epoch: int
    future: Future[BatchResult]
    sent_at: float


class Outbox:
    """Buffer + sender. Thread-safe: ``put`` from any number of threads."""

    def __init__(
        self,
        buffer: BoundedBuffer,
        supervisor: Supervisor[Any, Any],
        *,
        name: str = "resilientmq",
        max_batch: int = 500,
        max_in_flight: int = 4,
        retry_policy: ReconnectPolicy | None = None,
        settle_timeout: float = 60.0,
        confirm_timeout: float | None = 30.0,
        events: ClientEvents | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        self.buffer = buffer
        self._supervisor = supervisor
        self._name = name
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._retry_policy = retry_policy or supervisor.policy
        self._settle_timeout = settle_timeout
        self._confirm_timeout = confirm_timeout
        # Each decision below is also a structured log record (resilientmq.core.telemetry).
        self._events = events if events is not None else ClientEvents(name, "")
        self._last_confirmed: float | None = None
        self._dropped_told = 0
        self._wakeup = threading.Event()
        # The sender sets this before it looks for messages and finds none, so that put() need not take
        # the event's lock while the sender is busy (a put after that look sees it set, and wakes it).
        self._idle = False
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._accepting = True
        self._stop = threading.Event()
        self._failures_seen = 0  # failures already reported by a flush()
        self._counters = dict.fromkeys(("accepted", "sent", "resent", "confirmed", "failed", "recovered"), 0)
        # What an earlier process left in a durable outbox may have reached the broker already.
        left = buffer.pending_seqs(sys.maxsize)
        self._inherited = left[-1] if left else 0
        supervisor.add_listener(_WakeOnStateChange(self._wakeup))
        self._thread = threading.Thread(target=self._run, name=f"{name}-sender", daemon=True)
        self._thread.start()

    # -- the producer side --------------------------------------------------------------------------
    def put(self, messages: Sequence[NewMessage], timeout: float | None = None) -> list[Envelope]:
        """Accept messages for delivery (durably, for a durable buffer) and wake the sender."""
        self._check_accepting()
        try:
            envelopes = self.buffer.extend(messages, timeout)
        except BufferFullError as exc:
            self._events.emit(logging.WARNING, "buffer_full", "%s", exc, count=len(messages), reason=str(exc))
            raise
        self._accepted(len(envelopes))
        return envelopes

    def put_one(
        self,
        destination: str,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
        id: str | None = None,
        timeout: float | None = None,
    ) -> Envelope:
        """``put()`` of one message given by its fields: built once, without a :class:`NewMessage`."""
        self._check_accepting()
        try:
            envelope = self.buffer.append_one(destination, body, headers, id, timeout)
        except BufferFullError as exc:
            self._events.emit(logging.WARNING, "buffer_full", "%s", exc, count=1, reason=str(exc))
            raise
        self._accepted(1)
        return envelope

    def _check_accepting(self) -> None:
        if not self._accepting:
            raise ClientClosedError(f"{self._name}: the client is closed; no more messages are accepted")
        if self._supervisor.state is ConnectionState.FAILED:
            failure = self._supervisor.failure
            raise ReconnectFailedError(
                f"{self._name}: not accepting messages, the connection failed for good ({failure}); "
                "connect again to resume"
            ) from failure

    def _accepted(self, count: int) -> None:
        with self._lock:
            self._counters["accepted"] += count
            n = self.buffer.dropped_count - self._dropped_told  # drop_oldest made room
            self._dropped_told += n
        if n:
            self._events.emit(
                logging.WARNING,
                "dropped",
                "buffer full: dropped the %d oldest message(s) (overflow policy drop_oldest)",
                n,
                count=n,
                reason="buffer full, overflow policy drop_oldest",
            )
        if self._idle:  # set() takes a lock: only a sender that found nothing to send needs waking
            self._wakeup.set()

    # -- messages an adapter hands over itself (a write-through) ------------------------------------
    def fail_outside(
        self, failures: Sequence[tuple[NewMessage, BaseException]], seqs: Sequence[int] | None = None
    ) -> list[FailedMessage]:
        """Messages that an adapter handed over itself (room held outside) and that can never be delivered:
        kept in the failed list, counted and told like every failure."""
        records = self.buffer.fail_outside(failures, seqs)
        with self._lock:
            self._counters["failed"] += len(records)
            self._drained.notify_all()
        self._tell_failed(records)
        return records

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted message is confirmed or failed.

        True when the buffer drained in time and no message failed since the previous ``flush()``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wakeup.set()
        with self._lock:
            while len(self.buffer) > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if self._stop.is_set() or self._supervisor.state in _STUCK:
                    return False
                # Bounded waits: a closed buffer or a stopped sender must not hang the caller.
                self._drained.wait(0.5 if remaining is None else min(remaining, 0.5))
            failed = self._counters["failed"] + self.buffer.dropped_count
            clean = failed == self._failures_seen
            self._failures_seen = failed
            return clean

    def __len__(self) -> int:
        return len(self.buffer)

    def failed(self) -> list[FailedMessage]:
        return self.buffer.failed()

    @property
    def last_confirmed_at(self) -> float | None:
        """When (``time.monotonic()``) the broker last confirmed a message; None before the first."""
        return self._last_confirmed

    def stats(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counters)
        out["buffered"] = len(self.buffer)
        out["dropped"] = self.buffer.dropped_count
        out.update(self._supervisor.stats())
        return out

    def close(self, drain_timeout: float | None = 0.0) -> bool:
        """Stop accepting, wait up to ``drain_timeout`` for confirmations, stop the sender, close the buffer.

        Returns True when nothing was left unconfirmed. What is left stays in a durable buffer.
        """
        self._accepting = False
        drained = True
        if drain_timeout is None or drain_timeout > 0:
            drained = self.flush(drain_timeout)
        self._stop.set()
        self._wakeup.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        left = len(self.buffer)
        if left:
            where = "kept in the durable buffer" if hasattr(self.buffer, "path") else "lost with this process"
            self._events.emit(
                logging.WARNING,
                "closed_unconfirmed",
                "closed with %d unconfirmed message(s), %s",
                left,
                where,
                count=left,
                reason=where,
            )
        self.buffer.close()
        with self._lock:
            self._drained.notify_all()
        return drained and left == 0

    # -- the sender ---------------------------------------------------------------------------------
    def _run(self) -> None:
        state = _SenderState()
        while not self._stop.is_set():
            try:
                self._step(state)
            except ClientClosedError:
                return
            except Exception:
                log.exception("%s: sender step failed; going on", self._name)
                self._stop.wait(0.1)

    def _step(self, s: _SenderState) -> None:
        self._wakeup.clear()
        self._reap(s)
        session = self._supervisor.wait_session(timeout=0.25)
        if session is None:
            if self._supervisor.state in _STUCK:
                self._wakeup.wait(1.0)  # nothing moves until the state changes (which wakes us)
            return
        epoch = session.epoch
        if epoch != s.epoch:
            if s.inflight and _carried(session, s.inflight):
                # The client behind the new connection still holds these batches and retries them itself:
                # sent again, they would be delivered twice. They stay in flight, in order, and get a
                # confirm_timeout of their own on this connection.
                _restart_clocks(s)
                s.epoch = epoch
            else:
                # A new connection: the old one's tickets can no longer be trusted to fail or succeed in
                # order, so start again from the oldest unconfirmed message. Late successes still count.
                s.stale.extend(s.inflight)
                s.inflight.clear()
                if not self._recover(session, s):
                    return  # the connection broke while asking; the next one asks again
                s.epoch, s.cursor, s.rewind = epoch, 0, False
                self._starting_over(s, f"new connection #{epoch}")
        if self._unanswered_too_long(s):
            oldest = s.inflight[0]
            error = ConnectionLostError(
                f"no confirmation for {len(oldest.batch)} message(s) within {self._confirm_timeout:g} s"
            )
            self._events.emit(
                logging.WARNING,
                "unanswered",
                "%s; dropping the connection",
                error,
                count=len(oldest.batch),
                timeout=self._confirm_timeout,
                reason=str(error),
            )
            self._supervisor.report_lost(error, epoch)
            if _carried(session, s.inflight):
                _restart_clocks(s)  # the next connection decides: it carries them on, or they are sent again
                return
            s.stale.extend(s.inflight)
            s.inflight.clear()
            s.rewind = True
            return  # the next step waits for the new connection
        if s.rewind:
            if not self._settle_inflight(s):
                return
            s.cursor, s.rewind = 0, False
            self._starting_over(s, "retry")
            if s.retry_round:
                # Failures without a broken connection (a leader moving, say): back off by the policy.
                self._stop.wait(self._retry_policy.next_delay(s.retry_round))
        isolating = s.cursor < s.isolate_until
        # While isolating, one message at a time: a broker may answer out of order (RabbitMQ's receipts
        # wait for publisher confirms, its ERRORs do not), so only a lone message can be blamed for sure.
        if len(s.inflight) >= (1 if isolating else self._max_in_flight):
            self._wakeup.wait(0.25)
            return
        limit = 1 if isolating else self._max_batch
        self._idle = True
        batch = self.buffer.peek(s.cursor, limit)
        if not batch:
            self._wakeup.wait(0.25)
            self._idle = False
            return
        self._idle = False
        try:
            future = session.transmit(batch)
        except ResilientMQError as exc:
            if exc.retriable:
                self._supervisor.report_lost(exc, epoch)
                return
            raise
        future.add_done_callback(lambda _f: self._wakeup.set())
        s.inflight.append(_Ticket(batch, epoch, future, time.monotonic()))
        resent = sum(1 for e in batch if e.seq <= s.highest_sent)
        s.highest_sent = max(s.highest_sent, batch[-1].seq)
        s.cursor = batch[-1].seq
        with self._lock:
            self._counters["sent"] += len(batch)
            self._counters["resent"] += resent

    def _reap(self, s: _SenderState) -> None:
        """Settle finished tickets: in order for the live connection, in any order for dead ones."""
        while s.inflight and s.inflight[0].future.done():
            self._settle(s, s.inflight.popleft(), live=True)
        for ticket in [t for t in s.stale if t.future.done()]:
            s.stale.remove(ticket)
            self._settle(s, ticket, live=False)

    def _unanswered_too_long(self, s: _SenderState) -> bool:
        # A silent partition or a broker that never answers must not stall the window for ever.
        return (
            self._confirm_timeout is not None
            and bool(s.inflight)
            and time.monotonic() - s.inflight[0].sent_at > self._confirm_timeout
        )

    def _settle_inflight(self, s: _SenderState) -> bool:
        """Before a rewind: wait (bounded) for the live tickets to finish. True when none is left."""
        if not s.inflight:
            return True
        oldest = s.inflight[0]
        if time.monotonic() - oldest.sent_at > self._settle_timeout:
            self._events.emit(
                logging.WARNING,
                "unanswered",
                "%d batch(es) unanswered after %.0f s; sending again",
                len(s.inflight),
                self._settle_timeout,
                count=sum(len(t.batch) for t in s.inflight),
                timeout=self._settle_timeout,
                reason="unanswered before a rewind",
            )
            s.stale.extend(s.inflight)
            s.inflight.clear()
            return True
        self._wakeup.wait(0.25)
        return False

    def _settle(self, s: _SenderState, ticket: _Ticket, *, live: bool) -> None:
        exc = ticket.future.exception()
        if exc is not None:
            if not live:
                # Its messages are being sent again on the new connection. Should the broker refuse them
                # again, it will be one at a time, so the culprit is found rather than guessed once more.
                if isinstance(exc, BatchRejectedError):
                    self._isolate(s, ticket, exc, s.highest_sent)
                return
            if isinstance(exc, BatchRejectedError):
                self._rejected(s, ticket, exc)
            elif isinstance(exc, BatchAbortedError):
                s.rewind = True  # never attempted: send again at once, no back-off
            elif isinstance(exc, ConnectionLostError):
                self._supervisor.report_lost(exc, ticket.epoch)
                s.rewind = True
            else:
                self._events.emit(
                    logging.INFO,
                    "not_confirmed",
                    "batch of %d not confirmed (%s); sending again",
                    len(ticket.batch),
                    exc,
                    count=len(ticket.batch),
                    reason=str(exc),
                    error_type=type(exc).__name__,
                )
                s.rewind = True
                s.retry_round += 1
            return
        result = ticket.future.result()
        # A rejection is a fact whichever connection reported it; only confirmations are counted as such.
        failed = dict(result.failed)
        retry = set(result.retry)
        if retry and live:
            s.rewind = True
            s.retry_round += 1
        confirmed = [e.seq for e in ticket.batch if e.seq not in failed and e.seq not in retry]
        self._confirm(confirmed, failed)
        if confirmed and not retry:
            s.retry_round = 0

    def _rejected(self, s: _SenderState, ticket: _Ticket, exc: BatchRejectedError) -> None:
        if len(ticket.batch) == 1 and exc.exact:
            cause = exc.cause or PermanentDeliveryError(str(exc))
            self._confirm([], {ticket.batch[0].seq: cause})  # logged there, as every failure
        else:
            self._isolate(s, ticket, exc, s.cursor)
        s.rewind = True

    def _isolate(self, s: _SenderState, ticket: _Ticket, exc: BatchRejectedError, in_flight_to: int) -> None:
        """Send the range the culprit may be in one message at a time: the batch if the broker named it,
        else everything its connection still owed an answer for (up to ``in_flight_to``)."""
        last = ticket.batch[-1].seq if exc.exact else max(in_flight_to, ticket.batch[-1].seq)
        self._events.emit(
            logging.WARNING,
            "isolating",
            "broker refused a message among seq %d..%d (%s); sending them one by one to find it",
            ticket.batch[0].seq,
            last,
            exc,
            first_seq=ticket.batch[0].seq,
            last_seq=last,
            reason=str(exc),
        )
        s.isolate_until = max(s.isolate_until, last)

    def _confirm(self, confirmed: Sequence[int], failed: Mapping[int, BaseException]) -> None:
        removed = self.buffer.remove(confirmed) if confirmed else 0
        records = self.buffer.fail(failed.items()) if failed else []
        with self._lock:
            if removed:
                self._last_confirmed = time.monotonic()
            self._counters["confirmed"] += removed
            self._counters["failed"] += len(records)
            self._drained.notify_all()
        self._tell_failed(records)

    def _tell_failed(self, records: Sequence[FailedMessage]) -> None:
        for r in records:
            self._events.emit(
                logging.ERROR,
                "failed",
                "message %s to %s failed for good: %s",
                r.id,
                r.destination,
                r.reason,
                id=r.id,
                seq=r.envelope.seq,
                destination=r.destination,
                reason=r.reason,
                error_type=r.error_type,
            )

    def _recover(self, session: Session, s: _SenderState) -> bool:
        """Before sending again: confirm what the broker is known to hold of what may have been sent (by this
        process, or by the one that left a durable outbox). False when the connection broke meanwhile."""
        through = max(s.highest_sent, self._inherited)
        if not through:
            return True
        try:
            known = already_delivered(session, self.buffer.pending_seqs(through))
        except ConnectionLostError as exc:
            self._supervisor.report_lost(exc, session.epoch)
            return False
        if known:
            seqs = sorted(known)
            self._confirm(seqs, {})
            with self._lock:
                self._counters["recovered"] += len(seqs)
            self._events.emit(
                logging.INFO,
                "recovered",
                "%d message(s) up to seq %d were already with the broker; not sent again",
                len(seqs),
                seqs[-1],
                count=len(seqs),
                last_seq=seqs[-1],
            )
        return True

    def _starting_over(self, s: _SenderState, why: str) -> None:
        """Tell that the sender starts again from the oldest unconfirmed message, when that re-sends any."""
        oldest = self.buffer.peek(0, 1)
        if oldest and oldest[0].seq <= s.highest_sent:
            self._events.emit(
                logging.INFO,
                "resending",
                "sending unconfirmed messages seq %d..%d again (%s)",
                oldest[0].seq,
                s.highest_sent,
                why,
                first_seq=oldest[0].seq,
                last_seq=s.highest_sent,
                pending=len(self.buffer),
                reason=why,
            )


def _carried(session: Session, tickets: deque[_Ticket]) -> bool:
    return all(carries(session, t.epoch) for t in tickets)


def _restart_clocks(s: _SenderState) -> None:
    now = time.monotonic()
    for ticket in s.inflight:
        ticket.sent_at = now


@dataclass
class _SenderState:
    epoch: int = -1
    cursor: int = 0  # highest seq handed to the transport on this epoch
    highest_sent: int = 0  # highest seq ever handed over, to count re-sends
    isolate_until: int = 0  # up to this seq, send one message per batch
    rewind: bool = False
    retry_round: int = 0
    inflight: deque[_Ticket] = field(default_factory=deque)
    stale: list[_Ticket] = field(default_factory=list)


class _WakeOnStateChange:
    """Supervisor listener that wakes the sender when the connection state moves."""

    def __init__(self, wakeup: threading.Event) -> None:
        self._wakeup = wakeup

    def on_state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        self._wakeup.set()
