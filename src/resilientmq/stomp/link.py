"""One STOMP connection as the adapter sees it: its set-up, the receipts it owes, and its end."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from resilientmq.core.errors import ConnectionLostError, ResilientMQError
from resilientmq.core.session import BatchRejectedError, BatchResult

from .errors import classify_error_frame, describe_frame, stomp_errors

__all__ = ["LINK_LISTENER_NAME", "OWN_RECEIPT_PREFIX", "Deliveries", "Link"]

log = logging.getLogger("resilientmq.stomp")

# Sorts before any user listener name, so the link sees each MESSAGE before the user can ack it.
LINK_LISTENER_NAME = " resilientmq-link"
OWN_RECEIPT_PREFIX = "rmq-"  # receipts the adapter asks for; user listeners are not shown them


class Deliveries:
    """Which connection delivered each message id, so an ack for a dead connection is never sent.

    Bounded: the oldest ids are forgotten first. An ack for an id it does not know (forgotten, or never
    delivered here) goes on the current connection, as stomp.py would send it: if that connection did not
    deliver it, the broker answers with an ERROR and redelivers, which costs a duplicate, never a loss.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._epochs: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def delivered(self, message_id: str, epoch: int) -> None:
        with self._lock:
            self._epochs[message_id] = epoch
            self._epochs.move_to_end(message_id)
            if len(self._epochs) > self._capacity:
                self._epochs.popitem(last=False)

    def epoch_of(self, message_id: str) -> int | None:
        with self._lock:
            return self._epochs.get(message_id)

    def forget(self, message_id: str) -> None:
        with self._lock:
            self._epochs.pop(message_id, None)


@dataclass
class _Pending:
    """What awaits receipts: a batch (one receipt per message, or one for a whole transaction), or a
    frame such as a SUBSCRIBE (``seq_of`` maps its receipt to None)."""

    future: Future[BatchResult]
    seq_of: dict[str, int | None]  # receipt -> the message it confirms; None: the whole frame or batch
    remaining: set[str]
    aside: str | None = None  # the receipt of a frame the adapter added beside the batch (see expect)
    on_aside: Callable[[ResilientMQError], None] | None = None
    failed: dict[int, BaseException] = field(default_factory=dict)
    retry: dict[int, BaseException] = field(default_factory=dict)
    confirmed_any: bool = False

    def outcome(self) -> BatchResult | None:
        """The result once every receipt answered, else None."""
        if self.remaining or self.future.done():
            return None
        return BatchResult(failed=dict(self.failed), retry=dict(self.retry))

    def whole_unanswered(self) -> bool:
        """A receipt for the whole batch (a COMMIT) is still owed: until it comes, nothing is confirmed."""
        return any(self.seq_of[r] is None for r in self.remaining)


# What to do once the lock is released: resolve a future (callbacks may re-enter the adapter).
_Action = tuple[Future[BatchResult], BatchResult | BaseException]


class Link:
    """A stomp.py listener bound to one transport (one connection, one supervisor epoch).

    It tells ``open()`` whether CONNECTED or an ERROR came back, resolves futures from RECEIPT/ERROR
    frames, and settles every outstanding one when the connection ends. Futures are resolved outside
    the link's lock: their callbacks may call back into the connection.
    """

    def __init__(
        self,
        epoch: int,
        endpoint: Any,
        on_lost: Callable[[Link, BaseException], None],
        deliveries: Deliveries,
    ) -> None:
        self.epoch = epoch
        self.endpoint = endpoint
        self.transport: Any = None  # the stomp.py transport this link listens to
        self._on_lost = on_lost
        self._deliveries = deliveries
        self._lock = threading.Lock()
        self._by_receipt: OrderedDict[str, _Pending] = OrderedDict()
        self._settled = threading.Event()  # CONNECTED, ERROR or the end arrived during set-up
        self.connected = False
        self.server = ""  # the CONNECTED frame's server header, e.g. "ActiveMQ/5.17.2"
        self.connect_error: ResilientMQError | None = None
        self.dead = False
        self.closing = False  # we are closing it: not news for the supervisor
        self.subscriptions_ready = False  # restored subscriptions are in place; new ones go out at once
        # MESSAGE frames go here instead when set (a sending-only link that reads the ledger).
        self.messages: Callable[[Any], None] | None = None
        self._unattributed: ResilientMQError | None = None  # an ERROR without receipt-id
        self._suspect: str | None = None  # the receipt that ERROR most likely belongs to
        self._suspect_alone = False  # nothing else was awaited then: the blame is certain
        # receipt -> an ERROR without receipt-id that came while it was the only one awaited. Kept
        # after the receipt arrives: RabbitMQ answers a refused SUBSCRIBE with ERROR, then RECEIPT, then
        # closes the connection.
        self._errors_before: dict[str, ResilientMQError] = {}

    # -- used by the adapter ------------------------------------------------------------------------
    def wait_connected(self, timeout: float) -> bool:
        self._settled.wait(timeout)
        return self.connected and not self.dead

    def expect(
        self,
        seq_of: dict[str, int | None],
        aside: str | None = None,
        on_aside: Callable[[ResilientMQError], None] | None = None,
    ) -> Future[BatchResult]:
        """A future resolved once every receipt in ``seq_of`` answered (or settled when the link ends).

        ``aside`` (one of the receipts, mapped to None) names a frame the adapter added beside the batch (a
        ledger entry): an ERROR for it goes to ``on_aside`` and counts as its answer, since ActiveMQ keeps a
        transaction whole when a SEND with a receipt is refused; the batch's own receipts still decide.
        """
        pending = _Pending(Future(), dict(seq_of), set(seq_of), aside, on_aside)
        with self._lock:
            if self.dead:
                raise ConnectionLostError(f"the connection to {self.endpoint} is closed")
            for receipt in seq_of:
                self._by_receipt[receipt] = pending
        return pending.future

    def write(self, frames: list[bytes]) -> None:
        """Write encoded frames in one go (stomp.py's send is thread-safe); ConnectionLostError if the
        connection is gone."""
        transport = self.transport
        with stomp_errors("sending"):
            if transport.blocking:
                transport.send(b"".join(frames))
            else:  # TLS: stomp.py's io thread owns the socket
                for frame in frames:
                    transport.send_queue.put(frame)

    def error_before(self, receipt: str) -> ResilientMQError | None:
        """The unattributed ERROR that arrived while ``receipt`` was the only one awaited, if any."""
        with self._lock:
            return self._errors_before.get(receipt)

    def forget(self, seq_of: dict[str, int | None] | Any) -> None:
        """Stop waiting for these receipts (their frame was withdrawn and will never be answered)."""
        with self._lock:
            for receipt in seq_of:
                self._by_receipt.pop(receipt, None)

    # -- stomp.py callbacks (io thread) -------------------------------------------------------------
    def on_connected(self, frame: Any) -> None:
        self.server = str(frame.headers.get("server", ""))
        self.connected = True
        self._settled.set()

    def on_message(self, frame: Any) -> None:
        handler = self.messages
        if handler is not None:
            handler(frame)
            return
        message_id = frame.headers.get("message-id")
        if message_id is not None:
            self._deliveries.delivered(message_id, self.epoch)

    def on_receipt(self, frame: Any) -> None:
        receipt = frame.headers.get("receipt-id")
        actions: list[_Action] = []
        with self._lock:
            if receipt == self._suspect:
                self._suspect, self._unattributed = None, None
            pending = self._by_receipt.pop(receipt, None)
            if pending is not None:
                pending.remaining.discard(receipt)
                pending.confirmed_any = True
                outcome = pending.outcome()
                if outcome is not None:
                    actions.append((pending.future, outcome))
        _run(actions)

    def on_error(self, frame: Any) -> None:
        if not self.connected:
            self.connect_error = classify_error_frame(frame, connecting=True)
            self._settled.set()
            return
        error = classify_error_frame(frame, connecting=False)
        receipt = frame.headers.get("receipt-id")
        actions: list[_Action] = []
        aside: Callable[[ResilientMQError], None] | None = None
        with self._lock:
            if receipt is None:
                # Frames are answered in order, so an ERROR without receipt-id most likely concerns the
                # oldest outstanding receipt. It is blamed only if the broker then closes the connection
                # (a RECEIPT for it clears the suspicion), and never for a transient error. The first
                # ERROR names the cause; later ones are fallout.
                if self._unattributed is None and not error.retriable:
                    self._unattributed = error
                    self._suspect = next(iter(self._by_receipt), None)
                    self._suspect_alone = len({id(p) for p in self._by_receipt.values()}) == 1
                    if self._suspect is not None and self._suspect_alone:
                        self._errors_before[self._suspect] = error
            else:
                if self._unattributed is not None and receipt == self._suspect:
                    error, self._unattributed, self._suspect = self._unattributed, None, None
                pending = self._by_receipt.pop(receipt, None)
                if pending is not None and receipt == pending.aside:
                    pending.remaining.discard(receipt)
                    aside = pending.on_aside
                    outcome = pending.outcome()
                    if outcome is not None:
                        actions.append((pending.future, outcome))
                elif pending is not None:
                    actions.extend(self._refused(pending, receipt, frame, error))
        if aside is not None:
            aside(error)
        _run(actions)
        if receipt is None:
            log.warning("STOMP ERROR from %s: %s", self.endpoint, describe_frame(frame))

    def _refused(self, pending: _Pending, receipt: str, frame: Any, error: ResilientMQError) -> list[_Action]:
        pending.remaining.discard(receipt)
        seq = pending.seq_of.get(receipt)
        if seq is None:  # a refused COMMIT (the broker rolled the batch back) or SUBSCRIBE
            for other in pending.seq_of:
                self._by_receipt.pop(other, None)
            return [(pending.future, BatchRejectedError(describe_frame(frame), error))]
        (pending.retry if error.retriable else pending.failed)[seq] = error
        outcome = pending.outcome()
        return [] if outcome is None else [(pending.future, outcome)]

    def on_disconnected(self) -> None:
        self._end(ConnectionLostError(f"the connection to {self.endpoint} closed"))

    def on_heartbeat_timeout(self) -> None:
        self._end(ConnectionLostError(f"no heart-beat from {self.endpoint}: the connection is dead"))

    def _end(self, reason: ConnectionLostError) -> None:
        with self._lock:
            if self.dead:
                return
            self.dead = True
            by_receipt, self._by_receipt = self._by_receipt, OrderedDict()
            suspect, unattributed, alone = self._suspect, self._unattributed, self._suspect_alone
        self._settled.set()
        if not self.closing:
            # Before settling: the sender must find the connection already declared lost.
            self._on_lost(self, reason)
        blamed = by_receipt.get(suspect) if suspect is not None and unattributed is not None else None
        actions: list[_Action] = []
        for pending in {id(p): p for p in by_receipt.values()}.values():
            if pending.future.done():
                continue
            if pending is blamed:
                assert unattributed is not None
                rejected = BatchRejectedError(str(unattributed), unattributed, exact=alone)
                actions.append((pending.future, rejected))
            elif pending.whole_unanswered():
                actions.append((pending.future, reason))  # a COMMIT whose fate nobody told us
            elif pending.confirmed_any or pending.failed or pending.retry:
                # Keep what was answered; only the unanswered messages go again.
                retry = dict(pending.retry)
                unanswered = (
                    s for r, s in pending.seq_of.items() if r in pending.remaining and s is not None
                )
                retry.update((s, reason) for s in unanswered)
                actions.append((pending.future, BatchResult(failed=dict(pending.failed), retry=retry)))
            else:
                actions.append((pending.future, reason))
        _run(actions)


def _run(actions: list[_Action]) -> None:
    for future, outcome in actions:
        try:
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        except InvalidStateError:
            pass  # another thread settled it first (the end of the link racing a last receipt)
