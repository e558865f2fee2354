"""The ledger (ActiveMQ): after a reconnect, learn which batches the broker committed instead of guessing.

Every transaction carries one more SEND: an entry on a queue of this client's own
(``/queue/resilientmq.ledger.<outbox identity>``, persistent) naming the seqs of its batch, so the entry is
committed with the batch or not at all. After a reconnect, :meth:`SessionLedger.delivered` browses that
queue (a ``browser:true`` subscription: ActiveMQ sends the queue's messages, leaves them there, and ends
with a MESSAGE whose ``browser`` header is ``end``) and names the unconfirmed messages an entry covers:
the outbox confirms them without sending them again. The identity of a durable outbox is kept in its
file, so the process that follows a ``kill -9`` reads the same ledger.

The ledger stays small: a consumer on it (client-individual acks) holds each entry until every message
it covers has left the outbox (confirmed, failed or dropped), then acks it. An entry whose COMMIT went
unanswered is held, not acked, so it goes back to the queue with its connection and the next one finds it;
entries an earlier process left are acked by the next one the same way. Each client reads only its own
queue, so no selector is needed.

Browsing is only sure once the broker has finished with the old connection: a COMMIT it was still working
on could otherwise land after the browse. The links that commit therefore carry client-ids derived from
the identity: ActiveMQ refuses a second connection with a client-id until it has finished the first
(the command it was running, then a rollback of its open transactions), so a new link that got in knows
the old one's outcome is settled (:meth:`LedgerBook.client_id`).
"""

from __future__ import annotations

import bisect
import concurrent.futures
import itertools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchRejectedError, BatchResult

from .frames import encode_frame
from .link import OWN_RECEIPT_PREFIX, Link

__all__ = ["LEDGER_PREFIX", "LedgerBook", "OutboxView", "SessionLedger"]

log = logging.getLogger("resilientmq.stomp")

LEDGER_PREFIX = "/queue/resilientmq.ledger."
"""Ledger queues are this prefix plus the outbox identity (grant it where the broker authorizes)."""

# Header names are Java identifiers, so an operator can select on them.
_FIRST, _LAST, _SESSION = "rmq_first", "rmq_last", "rmq_session"
_CONSUMER_ID = f"{OWN_RECEIPT_PREFIX}ledger"
_PREFETCH = 500  # entries held at once; more wait on the broker until some are acked


class OutboxView(Protocol):
    """What the ledger needs of the outbox: its identity and its pending messages (a BoundedBuffer)."""

    @property
    def identity(self) -> str: ...

    def peek(self, after_seq: int = 0, limit: int = 1000) -> list[Envelope]: ...

    def __len__(self) -> int: ...


class LedgerBook:
    """One client's ledger across its connections: where it is, the outbox it speaks for, whether the
    broker refused it for good."""

    def __init__(self, outbox: OutboxView, name: str) -> None:
        self._outbox = outbox
        self._name = name
        self.identity = outbox.identity
        self.destination = LEDGER_PREFIX + self.identity
        self._lock = threading.Lock()
        self._refused: BaseException | None = None
        self._told = False
        self._fallbacks: dict[int, int] = {}
        self.refusals = 0

    @property
    def usable(self) -> bool:
        """False once the broker refused the ledger for a reason retrying cannot fix."""
        return self._refused is None

    def client_id(self, index: int) -> str:
        """The client-id of sending link ``index``: the same on every connection, so the broker lets a new
        link in only once it has finished with the old one (see the module's docstring)."""
        fallback = self._fallbacks.get(index, 0)
        base = f"resilientmq-{self.identity}-{index}"
        return base if not fallback else f"{base}.{fallback}"

    def abandon_client_id(self, index: int) -> None:
        """The broker kept holding the old link's client-id (a partition it has not noticed, heart-beats off):
        move on under a new one. What that old link was committing may then arrive twice."""
        with self._lock:
            self._fallbacks[index] = self._fallbacks.get(index, 0) + 1
        log.warning(
            "%s: the broker still holds an earlier connection of this client; going on without waiting "
            "for it (a batch it was committing may be delivered twice)",
            self._name,
        )

    def refused(self, error: BaseException) -> None:
        """The broker refused the ledger queue: a permanent refusal turns it off for this client's life, a
        transient one for the rest of the connection only."""
        with self._lock:
            self.refusals += 1
            permanent = not getattr(error, "retriable", False)
            if permanent:
                self._refused = error
            told, self._told = self._told, self._told or permanent
        if not told:
            log.warning(
                "%s: the broker refused the ledger queue %s (%s); after a reconnect, messages whose receipt "
                "was lost are sent again (possible duplicates)%s",
                self._name,
                self.destination,
                error,
                "" if permanent else " until the next connection",
            )

    def floor(self) -> int | None:
        """Every seq below this has left the outbox (confirmed, failed or dropped); None when the outbox
        cannot tell (it is closed)."""
        oldest = self._outbox.peek(0, 1)
        if oldest:
            return oldest[0].seq
        return sys.maxsize if len(self._outbox) == 0 else None

    def envelopes(self, seqs: Sequence[int]) -> list[Envelope]:
        """The pending messages among ``seqs`` (sorted), read from the outbox."""
        wanted, out = set(seqs), list[Envelope]()
        cursor = seqs[0] - 1 if seqs else 0
        while seqs and cursor < seqs[-1]:
            chunk = self._outbox.peek(cursor, 1000)
            if not chunk:
                break
            out.extend(e for e in chunk if e.seq in wanted)
            cursor = chunk[-1].seq
        return out


class _Browse:
    """One ``browser:true`` subscription: the entries it showed, and whether the end came."""

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.spans: list[tuple[int, int]] = []
        self.ended = threading.Event()


class SessionLedger:
    """The ledger on one connection: the entry each transaction carries, the consumer that removes entries
    and the browses that read them. It lives on ``link`` (a sending-only one, which no user listener
    sees); its frames are answered to the link, never to the user's listeners."""

    def __init__(self, book: LedgerBook, link: Link, timeout: float) -> None:
        self.book = book
        self._link = link
        self._timeout = timeout
        self._token = uuid.uuid4().hex[:12]
        self._lock = threading.Condition()
        self._held: dict[str, tuple[int, int]] = {}  # message-id -> (first, last) of an entry we hold
        self._browse: _Browse | None = None
        self._browses = itertools.count(1)
        self._receipts = itertools.count(1)
        self._committed = 0  # this connection's ledger batches confirmed ...
        self._arrived = 0  # ... and their entries that reached the consumer
        self.active = True
        link.messages = self._on_message

    # -- set-up ------------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Subscribe the consumer that removes entries (and so learn whether the broker lets us read the
        ledger). False when it refused: the connection goes on without a ledger."""
        receipt = f"{OWN_RECEIPT_PREFIX}ledger-sub-{self._link.epoch}"
        answered = self._link.expect({receipt: None})
        headers = {
            "destination": self.book.destination,
            "id": _CONSUMER_ID,
            "ack": "client-individual",
            "activemq.prefetchSize": _PREFETCH,
            "receipt": receipt,
        }
        self._write([encode_frame("SUBSCRIBE", headers)])
        try:
            answered.result(timeout=self._timeout)
        except BatchRejectedError as exc:
            self.refused(exc.cause or exc)
            return False
        except concurrent.futures.TimeoutError:
            raise ConnectionLostError(
                f"no receipt for the SUBSCRIBE to the ledger within {self._timeout:g} s"
            ) from None
        return True

    # -- what the sender asks ------------------------------------------------------------------------------
    def entry(self, transaction: str, batch: Sequence[Envelope], receipt: str) -> bytes:
        """The ledger SEND for ``batch`` inside ``transaction`` (committed with it or not at all)."""
        headers = {
            "destination": self.book.destination,
            "transaction": transaction,
            "receipt": receipt,
            "persistent": "true",
            _FIRST: batch[0].seq,
            _LAST: batch[-1].seq,
            _SESSION: self._token,
        }
        return encode_frame("SEND", headers)

    def settled(self, future: Future[BatchResult]) -> None:
        """A ledger batch was answered: count a commit, whose entry :meth:`drain` then waits for."""
        if not self.active:
            return  # its entry may have been refused: drain() must not wait for it
        if future.exception() is None and not future.result().failed and not future.result().retry:
            with self._lock:
                self._committed += 1

    def refused(self, error: BaseException) -> None:
        """The broker refused an entry (ActiveMQ then commits the batch without it): no ledger from now on."""
        self.active = False
        self.book.refused(error)

    def release(self, receipt: str | None = None) -> bool:
        """Ack the entries whose messages have all left the outbox. True when an ack went out (``receipt``
        then rides on the last one)."""
        floor = self.book.floor()
        if floor is None:
            return False
        with self._lock:
            done = [mid for mid, (_first, last) in self._held.items() if last < floor]
            for mid in done:
                del self._held[mid]
        if not done:
            return False
        frames = [encode_frame("ACK", {"message-id": mid, "subscription": _CONSUMER_ID}) for mid in done[:-1]]
        frames.append(
            encode_frame("ACK", {"message-id": done[-1], "subscription": _CONSUMER_ID, "receipt": receipt})
        )
        try:
            self._write(frames)
        except ConnectionLostError as exc:  # unacked entries go back to the queue; the next link acks them
            log.debug("ledger acks not sent: %s", exc)
            return False
        return True

    # -- after a reconnect ------------------------------------------------------------------------------
    def delivered(self, seqs: Sequence[int]) -> list[int]:
        """Of ``seqs`` (sorted), those an entry shows committed. Raises ConnectionLostError if the link
        dies meanwhile; a browse that does not end in time counts what it saw (each entry it showed is a
        fact; what it did not show is sent again)."""
        if not seqs:
            return []
        spans = self._read()
        with self._lock:
            spans.extend(self._held.values())
        spans.sort()
        starts = [first for first, _last in spans]
        reach = list(itertools.accumulate((last for _first, last in spans), max))
        known = []
        for seq in seqs:
            i = bisect.bisect_right(starts, seq) - 1
            if i >= 0 and reach[i] >= seq:  # some entry starting at or before seq reaches it
                known.append(seq)
        return known

    def _read(self) -> list[tuple[int, int]]:
        browse = _Browse(f"{OWN_RECEIPT_PREFIX}ledger-browse-{next(self._browses)}")
        with self._lock:
            self._browse = browse
        subscribe = {"destination": self.book.destination, "id": browse.sid, "ack": "auto", "browser": "true"}
        self._write([encode_frame("SUBSCRIBE", subscribe)])
        deadline = time.monotonic() + self._timeout
        while not browse.ended.wait(0.05):
            if self._link.dead:
                raise ConnectionLostError("the connection died while reading the ledger")
            if time.monotonic() > deadline:
                log.warning(
                    "%s: reading the ledger did not end within %g s; counting the %d entries seen",
                    self.book.destination,
                    self._timeout,
                    len(browse.spans),
                )
                break
        with self._lock:
            self._browse = None
            spans = list(browse.spans)
        self._write([encode_frame("UNSUBSCRIBE", {"id": browse.sid})])
        return spans

    # -- a clean end -----------------------------------------------------------------------------------
    def drain(self, timeout: float) -> None:
        """Before DISCONNECT: wait (bounded) for the entries of this connection's commits, then ack every
        entry whose messages left the outbox, so a clean exit leaves an empty ledger."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._lock.wait_for(
                lambda: self._arrived >= self._committed or self._link.dead or not self.active,
                max(0.0, timeout),
            )
        receipt = f"{OWN_RECEIPT_PREFIX}ledger-ack-{self._link.epoch}-{next(self._receipts)}"
        try:
            answered = self._link.expect({receipt: None})
        except ConnectionLostError:
            return
        if self.release(receipt):
            try:
                answered.exception(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                log.debug("no receipt for the ledger acks")
        else:
            self._link.forget({receipt: None})

    # -- frames from the broker (the link's io thread) ------------------------------------------------
    def _on_message(self, frame: Any) -> None:
        headers = frame.headers
        sid = headers.get("subscription")
        with self._lock:
            if sid == _CONSUMER_ID:
                self._held[str(headers.get("message-id"))] = _span(headers)
                if headers.get(_SESSION) == self._token:
                    self._arrived += 1
                    self._lock.notify_all()
                return
            browse = self._browse
            if browse is None or sid != browse.sid:
                return  # a browse we gave up on
            if headers.get("browser") == "end":
                browse.ended.set()
            else:
                browse.spans.append(_span(headers))

    def _write(self, frames: list[bytes]) -> None:
        self._link.write(frames)


def _span(headers: Any) -> tuple[int, int]:
    """(first, last) seq of an entry; one we cannot read covers nothing (and is removed)."""
    try:
        return int(headers[_FIRST]), int(headers[_LAST])
    except (KeyError, TypeError, ValueError):
        return 1, 0
