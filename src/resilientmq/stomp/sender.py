"""How a session sends a batch: in one socket write, then awaiting the broker's receipts."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import stomp.utils

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchAbortedError, BatchResult

from .errors import stomp_errors
from .frames import MESSAGE_ID_HEADER, encode_frame
from .link import OWN_RECEIPT_PREFIX, Link

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

    ``tell_listeners(method, frame)`` answers the receipts users put on their messages.
    """

    def __init__(
        self, links: Sequence[Link], epoch: int, *, chained: bool, tell_listeners: Callable[..., None]
    ) -> None:
        self._links = tuple(links)
        self._epoch = epoch
        self._chained = chained
        self._tell_listeners = tell_listeners
        self._ids = itertools.count(1)
        self._chain_lock = threading.Lock()
        self._previous: Future[BatchResult] | None = None  # the last batch's future
        self._highest = 0  # highest seq handed over so far

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        links, epoch, chained = self._links, self._epoch, self._chained
        if any(link.dead for link in links):
            raise ConnectionLostError("the connection this batch was meant for is gone")
        n = next(self._ids)
        link = links[n % len(links)] if chained and len(batch) > 1 else links[0]
        seq_of: dict[str, int | None]
        head: list[bytes] = []
        if len(batch) == 1 or not chained:
            # A receipt per message: a rejection then names its message exactly.
            seq_of = {f"{OWN_RECEIPT_PREFIX}{epoch}-{n}-{i}": e.seq for i, e in enumerate(batch)}
            commit = [_send_frame(e, {"receipt": r}) for r, e in zip(seq_of, batch, strict=True)]
            abort: bytes | None = None
        else:
            tx = f"{OWN_RECEIPT_PREFIX}tx-{epoch}-{n}"
            receipt = f"{OWN_RECEIPT_PREFIX}{epoch}-{n}"
            seq_of = {receipt: None}
            head = [encode_frame("BEGIN", {"transaction": tx})]
            head.extend(_send_frame(e, {"transaction": tx}) for e in batch)
            commit = [encode_frame("COMMIT", {"transaction": tx, "receipt": receipt})]
            abort = encode_frame("ABORT", {"transaction": tx})
        future = link.expect(seq_of)
        if any("receipt" in e.headers for e in batch):
            future.add_done_callback(lambda f: self._answer_user_receipts(batch, f))
        if not chained:
            self._write(link, commit)
            return future
        if head:
            self._write(link, head)
        with self._chain_lock:
            previous, highest = self._previous, self._highest
            if previous is not None and previous.done() and batch[0].seq <= highest:
                previous = None  # the outbox rewound and sends again: the failed chain is behind us
            self._previous, self._highest = future, max(highest, batch[-1].seq)
        if previous is None:
            self._write(link, commit)
        else:
            previous.add_done_callback(lambda p: self._after(p, link, seq_of, future, commit, abort))
        return future

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
                self._write(link, commit)
            except ConnectionLostError as error:
                log.debug("commit not written, the connection is gone: %s", error)  # the link will end
            return
        if abort is not None:
            with contextlib.suppress(ConnectionLostError):  # a dead connection rolls it back anyway
                self._write(link, [abort])
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

    def _write(self, link: Link, frames: list[bytes]) -> None:
        transport = link.transport
        with stomp_errors("sending"):
            if transport.blocking:
                transport.send(b"".join(frames))
            else:  # TLS: stomp.py's io thread owns the socket
                for frame in frames:
                    transport.send_queue.put(frame)


def _send_frame(envelope: Envelope, extra: Mapping[str, str]) -> bytes:
    # The user's own receipt is answered by us once the message is confirmed (see _answer_user_receipts).
    headers: dict[str, object] = {k: v for k, v in envelope.headers.items() if k != "receipt"}
    headers["destination"] = envelope.destination
    headers[MESSAGE_ID_HEADER] = envelope.id
    headers.update(extra)
    return encode_frame("SEND", headers, envelope.body)


def _frame(command: str, headers: dict[str, str], body: str = "") -> Any:
    return stomp.utils.Frame(command, headers, body)
