"""How a session sends a batch: in one socket write, then awaiting the broker's receipts."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

import stomp.utils

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchAbortedError, BatchResult

from .frames import MESSAGE_ID_HEADER, encode_frame
from .link import OWN_RECEIPT_PREFIX, Link

if TYPE_CHECKING:
    from .ledger import SessionLedger

__all__ = ["StompSender"]

log = logging.getLogger("resilientmq.stomp")


class StompSender:
    """Sends batches on one connection's links (the main one first), in one of two ways to be sure.

    * ``chained``: a transaction per batch whose COMMIT carries the receipt (ActiveMQ: one disk sync per
      batch, and a broken connection rolls it back). Commits are chained: a batch's COMMIT is written only
      once the previous batch is confirmed, and withdrawn (ABORT) if it was not, so a rejected batch is
      never overtaken by a later one. The SENDs themselves are written at once, so the broker stays busy.
      Batches take turns on the links.
    * else a receipt on every SEND (RabbitMQ, whose SEND receipts wait for publisher confirms while a
      COMMIT receipt does not; also the safe choice for a broker we do not know).

    With a ``ledger`` (ActiveMQ), every batch is a transaction that also carries its ledger entry, and
    batches take turns on the sending-only links (whose client-ids fence a reconnect: see
    :mod:`.ledger`). A lone message keeps a receipt of its own, so a refusal names it exactly; its entry
    and COMMIT follow once that SEND is accepted (see :meth:`_lone`).

    ``tell_listeners(method, frame)`` answers the receipts users put on their messages.
    """

    def __init__(
        self,
        links: Sequence[Link],
        epoch: int,
        *,
        chained: bool,
        tell_listeners: Callable[..., None],
        ledger: SessionLedger | None = None,
    ) -> None:
        self._links = tuple(links)
        self._epoch = epoch
        self._chained = chained
        self._tell_listeners = tell_listeners
        self._ledger = ledger
        self._ids = itertools.count(1)
        self._chain_lock = threading.Lock()
        self._previous: Future[BatchResult] | None = None  # the last batch's future
        self._highest = 0  # highest seq handed over so far

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        links = self._links
        if any(link.dead for link in links):
            raise ConnectionLostError("the connection this batch was meant for is gone")
        n = next(self._ids)
        ledger = self._ledger if self._ledger is not None and self._ledger.active else None
        if ledger is not None:
            ledger.release()  # entries of batches that left the outbox since
            link = links[1 + n % (len(links) - 1)]
            future = (
                self._lone(n, batch, link, ledger) if len(batch) == 1 else self._tx(n, batch, link, ledger)
            )
            future.add_done_callback(ledger.settled)
        elif len(batch) == 1 or not self._chained:
            future = self._receipted(n, batch, links[0])
        else:
            future = self._tx(n, batch, links[n % len(links)], None)
        if any("receipt" in e.headers for e in batch):
            future.add_done_callback(lambda f: self._answer_user_receipts(batch, f))
        return future

    def _receipted(self, n: int, batch: Sequence[Envelope], link: Link) -> Future[BatchResult]:
        """A receipt per message: a rejection then names its message exactly. Chained, the SENDs wait for
        the previous batch like a COMMIT would."""
        seq_of: dict[str, int | None] = {
            f"{OWN_RECEIPT_PREFIX}{self._epoch}-{n}-{i}": e.seq for i, e in enumerate(batch)
        }
        future = link.expect(seq_of)
        frames = [_send_frame(e, {"receipt": r}) for r, e in zip(seq_of, batch, strict=True)]
        previous = self._chain(future, batch) if self._chained else None
        if previous is None:
            link.write(frames)
        else:
            previous.add_done_callback(lambda p: self._after(p, link, seq_of, future, frames, None))
        return future

    def _tx(
        self, n: int, batch: Sequence[Envelope], link: Link, ledger: SessionLedger | None
    ) -> Future[BatchResult]:
        """The batch as one transaction: BEGIN and the SENDs (and the ledger entry, with a receipt so that
        a refused entry does not take the batch down with it) at once, the COMMIT once the previous batch is
        confirmed. The COMMIT's receipt is listed first: an ERROR naming no frame is blamed on the oldest."""
        tx, receipt = f"{OWN_RECEIPT_PREFIX}tx-{self._epoch}-{n}", f"{OWN_RECEIPT_PREFIX}{self._epoch}-{n}"
        head = [
            encode_frame("BEGIN", {"transaction": tx}),
            *(_send_frame(e, {"transaction": tx}) for e in batch),
        ]
        seq_of: dict[str, int | None] = {receipt: None}
        if ledger is not None:
            aside = f"{receipt}-ledger"
            seq_of[aside] = None
            head.append(ledger.entry(tx, batch, aside))
            future = link.expect(seq_of, aside, ledger.refused)
        else:
            future = link.expect(seq_of)
        commit = [encode_frame("COMMIT", {"transaction": tx, "receipt": receipt})]
        abort = encode_frame("ABORT", {"transaction": tx})
        link.write(head)
        previous = self._chain(future, batch)
        if previous is None:
            link.write(commit)
        else:
            previous.add_done_callback(lambda p: self._after(p, link, seq_of, future, commit, abort))
        return future

    def _lone(
        self, n: int, batch: Sequence[Envelope], link: Link, ledger: SessionLedger
    ) -> Future[BatchResult]:
        """A lone message with a ledger: BEGIN and its SEND with a receipt now; its entry and the COMMIT only
        once that SEND is accepted and the previous batch confirmed (:meth:`_commit_lone`). ActiveMQ keeps a
        transaction whole when a SEND with a receipt is refused, so an entry written beside it could claim
        a message the broker refused."""
        tx, receipt = f"{OWN_RECEIPT_PREFIX}tx-{self._epoch}-{n}", f"{OWN_RECEIPT_PREFIX}{self._epoch}-{n}"
        own = f"{receipt}-0"
        sent = link.expect({own: batch[0].seq})
        outcome: Future[BatchResult] = Future()
        link.write(
            [
                encode_frame("BEGIN", {"transaction": tx}),
                _send_frame(batch[0], {"transaction": tx, "receipt": own}),
            ]
        )
        previous = self._chain(outcome, batch)
        step = functools.partial(self._commit_lone, link, tx, receipt, batch, ledger, sent, previous, outcome)
        if previous is None:
            sent.add_done_callback(lambda _s: step())
        else:
            sent.add_done_callback(lambda _s: previous.add_done_callback(lambda _p: step()))
        return outcome

    def _commit_lone(
        self,
        link: Link,
        tx: str,
        receipt: str,
        batch: Sequence[Envelope],
        ledger: SessionLedger,
        sent: Future[BatchResult],
        previous: Future[BatchResult] | None,
        outcome: Future[BatchResult],
    ) -> None:
        """The lone SEND and the previous batch are answered: commit the message with its entry, or abort."""
        error = sent.exception()
        result = sent.result() if error is None else None
        clean = result is not None and not result.failed and not result.retry
        if clean and previous is not None and (previous.exception() is not None or previous.result().retry):
            error = BatchAbortedError("withdrawn: an earlier batch was not confirmed")
        if error is not None or not clean:
            with contextlib.suppress(ConnectionLostError):  # a dead connection rolls it back anyway
                link.write([encode_frame("ABORT", {"transaction": tx})])
            _settle(outcome, result, error)  # refused exactly, or not attempted
            return
        aside = f"{receipt}-ledger"
        try:
            committed = link.expect({receipt: None, aside: None}, aside, ledger.refused)
        except ConnectionLostError as exc:
            _settle(outcome, None, exc)
            return
        committed.add_done_callback(
            lambda f: _settle(outcome, None if f.exception() else f.result(), f.exception())
        )
        commit = encode_frame("COMMIT", {"transaction": tx, "receipt": receipt})
        with contextlib.suppress(ConnectionLostError):  # the link ends: ``committed`` is settled then
            link.write([ledger.entry(tx, batch, aside), commit])

    def _chain(self, future: Future[BatchResult], batch: Sequence[Envelope]) -> Future[BatchResult] | None:
        """Make ``future`` the last of the chain; the batch before it, whose answer its COMMIT awaits."""
        with self._chain_lock:
            previous, highest = self._previous, self._highest
            if previous is not None and previous.done() and batch[0].seq <= highest:
                previous = None  # the outbox rewound and sends again: the failed chain is behind us
            self._previous, self._highest = future, max(highest, batch[-1].seq)
        return previous

    def _after(
        self,
        previous: Future[BatchResult],
        link: Link,
        seq_of: Mapping[str, int | None],
        future: Future[BatchResult],
        commit: list[bytes],
        abort: bytes | None,
    ) -> None:
        """Runs when the previous batch is answered: commit this one, or withdraw it to keep the order."""
        exc = previous.exception()
        if exc is None and not previous.result().retry:
            try:
                link.write(commit)
            except ConnectionLostError as error:
                log.debug("commit not written, the connection is gone: %s", error)  # the link will end
            return
        if abort is not None:
            with contextlib.suppress(ConnectionLostError):  # a dead connection rolls it back anyway
                link.write([abort])
        link.forget(seq_of)
        if not future.done():
            future.set_exception(BatchAbortedError("withdrawn: an earlier batch was not confirmed"))

    def _answer_user_receipts(self, batch: Sequence[Envelope], future: Future[BatchResult]) -> None:
        """A ``receipt`` header the user put on ``send()`` is answered once that message is confirmed."""
        if future.exception() is not None:
            return  # sent again later; answered then
        result = future.result()
        for e in batch:
            receipt = e.headers.get("receipt")
            if receipt is None or e.seq in result.retry:
                continue
            error = result.failed.get(e.seq)
            if error is None:
                self._tell_listeners("on_receipt", _frame("RECEIPT", {"receipt-id": receipt}))
            else:
                frame = _frame("ERROR", {"receipt-id": receipt, "message": str(error)}, str(error))
                self._tell_listeners("on_error", frame)


def _settle(future: Future[BatchResult], result: BatchResult | None, error: BaseException | None) -> None:
    """Resolve ``future`` with ``error`` if any, else ``result`` (once: a late second answer is dropped)."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)


def _send_frame(envelope: Envelope, extra: Mapping[str, str]) -> bytes:
    # The user's own receipt is answered by us once the message is confirmed (see _answer_user_receipts).
    headers: dict[str, object] = {k: v for k, v in envelope.headers.items() if k != "receipt"}
    headers["destination"] = envelope.destination
    headers[MESSAGE_ID_HEADER] = envelope.id
    headers.update(extra)
    return encode_frame("SEND", headers, envelope.body)


def _frame(command: str, headers: dict[str, str], body: str = "") -> Any:
    return stomp.utils.Frame(command, headers, body)
