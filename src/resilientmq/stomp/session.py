"""One STOMP connection's life (:class:`StompSession`) and the connector the supervisor opens it with.

A session gets fresh stomp.py transports, one per link, so nothing of a dead connection (receive buffer,
receipts, heart-beat loop) carries over; each link has its own heart-beat listener bound to it, so a dying
connection's monitor can never act on its successor. It is handed what it needs: the options, the
client-side registry (CONNECT arguments, listeners, TLS settings, subscriptions) and the delivery record.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import stomp.protocol
import stomp.transport
import stomp.utils

from resilientmq.core.buffer import Envelope
from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchRejectedError, BatchResult, LossReporter

from .errors import ClientIdInUseError, stomp_errors
from .ledger import LedgerBook, SessionLedger
from .link import LINK_LISTENER_NAME, OWN_RECEIPT_PREFIX, Deliveries, Link
from .registry import ClientRegistry, ConnectArgs, Subscription
from .sender import StompSender
from .validate import HostAndPort

__all__ = ["StompConnector", "StompOptions", "StompSession"]

log = logging.getLogger("resilientmq.stomp")

T = TypeVar("T")


@dataclass(frozen=True)
class StompOptions:
    """How connections are made and used; fixed when the client is built."""

    transport_args: Mapping[str, Any]
    """stomp.py ``Transport`` arguments: timeout, keepalive, vhost, auto_decode, encoding, bind_host_port."""
    heartbeats: tuple[int, ...]
    heartbeat_scale: float
    auto_content_length: bool
    connect_timeout: float
    """The TCP connect and each wait for an answer while a connection is set up."""
    send_timeout: float
    """A socket write that cannot progress this long means a broker that stopped reading."""
    confirm_mode: str = "auto"
    send_connections: int = 2

    def __post_init__(self) -> None:
        if self.confirm_mode not in ("auto", "transaction", "receipt"):
            raise ValueError(
                f"confirm_mode must be 'auto', 'transaction' or 'receipt', got {self.confirm_mode!r}"
            )
        if not isinstance(self.send_connections, int) or self.send_connections < 1:
            raise ValueError(f"send_connections must be an int >= 1, got {self.send_connections!r}")

    def uses_transactions(self, server: str) -> bool:
        """Whether batches are transactions on a broker whose CONNECTED frame says ``server``."""
        if self.confirm_mode == "auto":
            return server.startswith("ActiveMQ/")
        return self.confirm_mode == "transaction"


class _Frames(stomp.protocol.Protocol11):  # type: ignore[misc]
    """stomp.py's own frame writer bound to one transport (and, as in stomp.py, its heart-beat listener)."""

    def set_receipt(self, receipt_id: str, value: Any) -> None:
        self.transport.set_receipt(receipt_id, value)


class StompConnector:
    """Opens one :class:`StompSession` per call (``Connector`` for the supervisor)."""

    def __init__(self, options: StompOptions, registry: ClientRegistry, deliveries: Deliveries) -> None:
        self._options = options
        self._registry = registry
        self._deliveries = deliveries
        self._ledger: LedgerBook | None = None
        self._lock = threading.Lock()
        self._opening: StompSession | None = None
        self._current: StompSession | None = None

    @property
    def current(self) -> StompSession | None:
        """The newest session, live or still being set up (it replays new subscriptions itself until its
        ``subscriptions_ready``)."""
        return self._current

    def keep_ledger(self, book: LedgerBook) -> None:
        """Record every transaction on ``book``'s ledger where the broker allows (ActiveMQ); before the
        first ``open()``."""
        self._ledger = book

    def open(self, endpoint: HostAndPort, epoch: int, lost: LossReporter) -> StompSession:
        args = self._registry.connect_args
        if args is None:
            raise ConnectionLostError("connect() was not called")
        session = StompSession(
            endpoint, epoch, lost, self._options, self._registry, self._deliveries, self._ledger
        )
        with self._lock:
            self._opening = self._current = session
        try:
            session.open(args)
        finally:
            with self._lock:
                if self._opening is session:
                    self._opening = None
        return session

    def cancel(self) -> None:
        with self._lock:
            session = self._opening
        if session is not None:
            session.close()  # its open() then fails in its own thread


class StompSession:
    """One connection: the main link (subscriptions, acks, the user's own frames) and, with transactions,
    the sending-only links of ``send_connections``; each on a stomp.py transport of its own.

    With a ledger (ActiveMQ), batches go on ``send_connections`` sending-only links of their own, each with
    a client-id from the outbox identity, and the first of them also reads the ledger; the main link is
    then exactly the user's connection."""

    def __init__(
        self,
        endpoint: HostAndPort,
        epoch: int,
        lost: LossReporter,
        options: StompOptions,
        registry: ClientRegistry,
        deliveries: Deliveries,
        book: LedgerBook | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._epoch = epoch
        self._lost = lost
        self._options = options
        self._registry = registry
        self._deliveries = deliveries
        self._book = book
        self._ledger: SessionLedger | None = None
        self._lock = threading.Lock()
        self._links: list[Link] = []  # the main one first
        self._closed = False
        self._closing = threading.Event()  # wakes a wait for the broker to free a client-id
        self._receipts = itertools.count(1)
        self._sender: StompSender | None = None
        self.frames: Any = None  # stomp.py's writer on the main transport (a Protocol11)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def subscriptions_ready(self) -> bool:
        """Restored subscriptions are in place on a connection not known dead: new ones go out at once."""
        link = self._main()
        return link is not None and not link.dead and link.subscriptions_ready

    def alive(self) -> bool:
        """Not closed, and the main connection is up as far as stomp.py knows."""
        link = self._main()
        return not self._closed and link is not None and not link.dead and bool(link.transport.is_connected())

    def _main(self) -> Link | None:
        return self._links[0] if self._links else None

    # -- opening ------------------------------------------------------------------------------------
    def open(self, args: ConnectArgs) -> None:
        """Connect the main link, restore the subscriptions, then connect the sending-only links."""
        options = self._options
        try:
            link, self.frames = self._new_link()
            self._registry.show_listeners(link.transport)
            with stomp_errors(f"connecting to {_name(self.endpoint)}"):
                self._start(link.transport)
                self.frames.connect(
                    args.username,
                    args.passcode,
                    False,
                    dict(args.headers),
                    args.with_connect_command,
                    **args.keyword_headers,
                )
            self._wait_connected(link, f"within {options.connect_timeout:g} s")
            self._restore_subscriptions(link)
            chained = options.uses_transactions(link.server)
            book = self._book if chained and link.server.startswith("ActiveMQ/") else None
            if book is not None and book.usable:
                for index in range(options.send_connections):
                    self._open_fenced_link(args, book, index)
                ledger = SessionLedger(book, self._links[1], options.connect_timeout)
                self._ledger = ledger if ledger.start() else None
            elif chained:
                for _ in range(options.send_connections - 1):
                    self._open_sender_link(args)
            self._sender = StompSender(
                self._links,
                self._epoch,
                chained=chained,
                tell_listeners=self._registry.tell_listeners,
                ledger=self._ledger,
            )
            self._registry.connected(link.transport)
        except BaseException:
            self.close()
            raise

    def _new_link(self) -> tuple[Link, Any]:
        options = self._options
        transport = stomp.transport.Transport(
            [self.endpoint],
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_sleep_initial=0.0,
            reconnect_attempts_max=1,  # the supervisor owns retrying
            **options.transport_args,
        )
        self._registry.prepare(transport)
        link = Link(self._epoch, self.endpoint, self._link_lost, self._deliveries)
        link.transport = transport
        transport.set_listener(LINK_LISTENER_NAME, link)
        frames = _Frames(transport, options.heartbeats, options.auto_content_length, options.heartbeat_scale)
        with self._lock:
            closed = self._closed
            if not closed:
                self._links.append(link)
        if closed:  # cancelled while being opened
            self._close_link(link)
            raise ConnectionLostError(f"the connection to {_name(self.endpoint)} was dropped while opening")
        return link, frames

    def _start(self, transport: Any) -> None:
        transport.start()
        self._registry.started(transport)
        _bound_send_time(transport, self._options.send_timeout)

    def _wait_connected(self, link: Link, detail: str) -> None:
        if not link.wait_connected(self._options.connect_timeout):
            raise link.connect_error or ConnectionLostError(
                f"no CONNECTED frame from {_name(self.endpoint)} {detail}"
            )

    def _open_sender_link(self, args: ConnectArgs, client_id: str | None = None) -> None:
        """One more connection that only sends (see ``send_connections``): the broker then works on one
        batch's SENDs while committing another, on two of its threads. It carries no subscriptions and not
        the user's client-id (a client-id may be used by one connection only); ``client_id``, if given."""
        link, frames = self._new_link()
        headers = {**args.headers, **args.keyword_headers}
        headers.pop("client-id", None)
        if client_id is not None:
            headers["client-id"] = client_id
        try:
            with stomp_errors(f"connecting a sending connection to {_name(self.endpoint)}"):
                self._start(link.transport)
                frames.connect(args.username, args.passcode, False, headers, args.with_connect_command)
            self._wait_connected(link, "for a sending connection")
        except ClientIdInUseError:
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
            self._close_link(link)
            raise

    def _open_fenced_link(self, args: ConnectArgs, book: LedgerBook, index: int) -> None:
        """A sending link under its client-id from ``book``. While the broker still holds the previous
        connection's (it is finishing what that one was doing), wait, bounded by ``connect_timeout``; past
        that, go on under a new client-id."""
        deadline = time.monotonic() + self._options.connect_timeout
        pause = 0.01
        while True:
            try:
                self._open_sender_link(args, book.client_id(index))
                return
            except ClientIdInUseError:
                if time.monotonic() + pause > deadline:
                    book.abandon_client_id(index)
                    self._open_sender_link(args, book.client_id(index))
                    return
            if self._closing.wait(pause):
                raise ConnectionLostError(
                    f"the connection to {_name(self.endpoint)} was dropped while opening"
                )
            pause = min(pause * 2, 0.2)

    def _restore_subscriptions(self, link: Link) -> None:
        """Replay subscriptions one at a time, each with a receipt, so one the broker refuses is known
        for sure (it is dropped, not replayed for ever); loop until the registry and the connection agree,
        then let new subscriptions go out directly."""
        registry = self._registry
        restored: dict[str, Subscription] = {}
        while True:
            with registry.lock:
                todo = [s for s in registry.subscriptions.values() if restored.get(s.id) != s]
                gone = [sid for sid in restored if sid not in registry.subscriptions]
                if not todo and not gone:
                    registry.settle_receipts(restored)
                    link.subscriptions_ready = True
                    return
            for sid in gone:
                self._unsubscribe_now(sid)
                restored.pop(sid)
            for sub in todo:
                if sub.id in restored:
                    self._unsubscribe_now(sub.id)
                if self._subscribe_and_wait(link, sub):
                    restored[sub.id] = sub

    def _unsubscribe_now(self, sid: str) -> None:
        self.write("restoring subscriptions", lambda f: f.unsubscribe(sid))

    def _subscribe_and_wait(self, link: Link, sub: Subscription) -> bool:
        timeout = self._options.connect_timeout
        receipt = sub.own_or_users_receipt(f"{OWN_RECEIPT_PREFIX}sub-{link.epoch}-{sub.id}")
        answered = link.expect({receipt: None})
        self.write("restoring subscriptions", lambda f: _subscribe(f, sub, receipt))
        try:
            answered.result(timeout=timeout)
            refusal = link.error_before(receipt)
            if refusal is None:
                self._registry.subscribed(sub)
                return True
            raise BatchRejectedError(str(refusal), refusal)
        except BatchRejectedError as exc:
            cause = exc.cause or exc
            # A guessed blame is not a refusal: the connection is lost and the next one tries again.
            if getattr(cause, "retriable", False) or not exc.exact:
                raise ConnectionLostError(
                    f"subscription {sub.id!r} to {sub.destination} failed: {cause}"
                ) from exc
            self._registry.refused(sub, cause)
            return False
        except concurrent.futures.TimeoutError:
            raise ConnectionLostError(
                f"no receipt for the SUBSCRIBE to {sub.destination} within {timeout:g} s"
            ) from None

    # -- used by the outbox and the facade ----------------------------------------------------------
    def delivered(self, seqs: Sequence[int]) -> Collection[int]:
        """Of these unconfirmed messages, those the ledger shows committed (``RecoveringSession``): the
        outbox confirms them without sending them again; their users' receipts are answered here."""
        ledger = self._ledger
        if ledger is None or not ledger.active or self._closed:
            return ()
        known = ledger.delivered(seqs)
        for envelope in ledger.book.envelopes(known):
            receipt = envelope.headers.get("receipt")
            if receipt is not None:
                self._registry.answer_receipt(str(receipt))
        return known

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        sender = self._sender
        if sender is None or self._closed:
            raise ConnectionLostError("the connection this batch was meant for is gone")
        return sender.transmit(batch)

    def write(self, what: str, action: Callable[[Any], T]) -> T:
        """Run ``action(frames)`` (stomp.py's Protocol11 on the main transport), errors translated."""
        with stomp_errors(what):
            return action(self.frames)

    def try_write(self, what: str, action: Callable[[Any], object]) -> bool:
        """:meth:`write`, best effort: False when the connection is gone. Such a frame is restored
        (subscriptions) or redelivered (acks) with the next connection."""
        try:
            self.write(what, action)
            return True
        except ConnectionLostError as exc:
            log.debug("%s not sent, the connection is gone (%s)", what, exc)
            return False

    def subscribe(self, sub: Subscription, *, replacing: bool) -> None:
        """Subscribe on this live connection with a receipt; a refusal drops it from what is replayed.

        ``replacing``: the id is in use with other terms, and a STOMP id must be unsubscribed before reuse.
        """
        if replacing:
            self.try_write("unsubscribe", lambda f: f.unsubscribe(sub.id))
        link = self._links[0]
        receipt = sub.own_or_users_receipt(
            f"{OWN_RECEIPT_PREFIX}sub-{link.epoch}-{sub.id}-{next(self._receipts)}"
        )
        try:
            answered = link.expect({receipt: None})
        except ConnectionLostError:
            return  # the connection died meanwhile: the next one replays it
        answered.add_done_callback(lambda f: self._subscription_answered(link, receipt, sub, f))
        self.try_write("subscribe", lambda f: _subscribe(f, sub, receipt))

    def _subscription_answered(
        self, link: Link, receipt: str, sub: Subscription, answered: Future[BatchResult]
    ) -> None:
        exc = answered.exception()
        cause: BaseException | None
        if exc is None:
            cause = link.error_before(receipt)
        elif isinstance(exc, BatchRejectedError) and exc.exact:
            cause = exc.cause
        else:  # the connection died or the blame was a guess: the next connection replays it alone
            cause = None
        if exc is None and cause is None:
            self._registry.subscribed(sub)
        elif cause is not None and not getattr(cause, "retriable", True):
            self._registry.refused(sub, cause)

    def disconnect(self, receipt: str | None, headers: Mapping[str, Any], *, wait: bool) -> None:
        """Send DISCONNECT and, if ``wait``, await its receipt (bounded). Never raises."""
        link = self._main()
        if link is None or link.dead:
            return
        ledger = self._ledger
        if ledger is not None and wait:
            ledger.drain(self._options.connect_timeout)  # a clean exit leaves an empty ledger
        link.closing = True  # the broker closes after the receipt: that is not an outage
        rid = receipt or stomp.utils.get_uuid()  # stomp.py's own choice, shown to listeners as stomp.py does
        try:
            done = link.expect({rid: None})
            self.write("disconnect", lambda f: f.disconnect(rid, dict(headers)))
            if wait:
                done.exception(timeout=self._options.connect_timeout)
        except Exception as exc:  # the connection is being dropped anyway
            log.debug("DISCONNECT receipt not received: %s", exc)

    # -- the end ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Drop every link. Safe to repeat: a link started while the first call ran is dropped too."""
        with self._lock:
            self._closed = True
            links = list(self._links)
        self._closing.set()
        for link in links:
            self._close_link(link)

    def _close_link(self, link: Link) -> None:
        link.closing = True
        transport = link.transport
        self._registry.dropped(transport)
        _end_connection(transport)
        link.on_disconnected()  # settle what it still owed, even if stomp.py stays silent

    def _link_lost(self, link: Link, reason: BaseException) -> None:
        # A session we closed is not news (nor an earlier attempt's socket dying late).
        if not self._closed:
            self._lost(reason)


def _subscribe(frames: Any, sub: Subscription, receipt: str | None) -> None:
    frames.subscribe(sub.destination, sub.id, sub.ack, sub.frame_headers(receipt))


def _name(endpoint: HostAndPort) -> str:
    host, port = endpoint
    return f"{host}:{port}"


def _end_connection(transport: Any) -> None:
    """End a connection the way a broker closing it would: stomp.py's io thread then sees the end and tells
    the listeners (``on_disconnected``, once) from its own thread, as for any other lost connection. Not
    ``disconnect_socket()``: that tells them from the calling thread (ours), and again after stomp.py's
    io thread has reset its flag."""
    transport.running = False
    transport.set_connected(False)  # is_connected() is False from now on, as after disconnect_socket()
    sock = transport.socket
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
    thread = getattr(transport, "io_thread", None)
    if thread is None or not getattr(thread, "is_alive", lambda: True)():
        with contextlib.suppress(OSError):  # no io thread left to close it
            sock.close()


def _bound_send_time(transport: Any, seconds: float) -> None:
    """Give socket writes a deadline: stomp.py writes with a blocking ``sendall`` and no timeout, so a
    broker that stops reading would otherwise stall the sender (and stomp.py's heart-beats) for ever."""
    sock = getattr(transport, "socket", None)
    if sock is None or not transport.blocking or seconds <= 0:
        return
    whole = int(seconds)
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1e6))
    )
