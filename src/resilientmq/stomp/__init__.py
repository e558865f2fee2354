"""``ResilientActiveMQConnection``: a drop-in ``stomp.Connection`` that loses nothing through outages.

How it works, in one paragraph: ``send()`` puts the message in the outbox (memory, or a file with
``buffer_path``) and returns; the outbox's sender thread hands batches to the live
:class:`~resilientmq.stomp.session.StompSession` — on ActiveMQ each batch one STOMP transaction whose
COMMIT carries a receipt, several batches in flight at once — and forgets a message only when its receipt
arrives. The supervisor opens a session per connection (fresh stomp.py transports), reconnecting by the
policy and failing over across ``host_and_ports``; a session replays the CONNECT (same credentials and
headers) and every recorded subscription before the sender re-sends what was not confirmed — on ActiveMQ
only what its ledger does not show committed. Heart-beats are on by default so a silent partition is
noticed. Code written for ``stomp.Connection`` keeps working.

The package: this facade (the drop-in API only), ``session`` (one connection's life), ``registry`` (what the
user set up, replayed on every connection), ``link`` (one transport's receipts), ``sender`` (batches),
``ledger`` (what a reconnect learns from ActiveMQ), ``errors`` (the one error table), ``listeners``,
``frames``, ``validate``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import stomp

from resilientmq.core.buffer import NewMessage
from resilientmq.core.client import ClientCore, ResilientClientMixin
from resilientmq.core.errors import (
    AuthenticationError,
    BufferFullError,
    ConnectionLostError,
    InvalidMessageError,
    MessageTooLargeError,
    ReconnectFailedError,
    TransactionRolledBackError,
)
from resilientmq.core.options import ResilienceOptions
from resilientmq.core.supervisor import ConnectionState, Endpoints, tcp_probe

from .errors import StompAuthenticationError, StompConnectFailedError
from .frames import MESSAGE_ID_HEADER
from .ledger import LedgerBook
from .link import Deliveries
from .listeners import DeduplicatingListener, TellUserListeners
from .registry import ClientRegistry, ConnectArgs, Subscription
from .session import StompConnector, StompOptions, StompSession
from .validate import DEFAULT_DESTINATION_PREFIXES, HostAndPort, body_bytes, check_destination, ordered_hosts

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from resilientmq.core.options import ResilienceKwargs

__all__ = [
    "DEFAULT_DESTINATION_PREFIXES",
    "MESSAGE_ID_HEADER",
    "DeduplicatingListener",
    "ResilientActiveMQConnection",
    "StompAuthenticationError",
    "StompConnectFailedError",
]

log = logging.getLogger("resilientmq.stomp")

DEFAULT_HEARTBEATS = (10_000, 10_000)

T = TypeVar("T")


class ResilientActiveMQConnection(ResilientClientMixin, stomp.Connection):  # type: ignore[misc]
    """A ``stomp.Connection`` (STOMP 1.1) that reconnects, buffers, restores subscriptions and never drops.

    Every ``stomp.Connection`` argument keeps its meaning, except that stomp.py's own reconnect loop is
    replaced by the reconnect policy (so attempts and waits do not multiply): ``reconnect_sleep_*`` and
    ``reconnect_attempts_max`` are accepted and ignored. ``heartbeats`` defaults to 10 s each way so that a
    silent partition is detected; pass ``(0, 0)`` to turn them off.

    The resilience arguments (``reconnect_tries``, ``buffer_path``, ``drain_timeout``, ...) are those of
    :class:`~resilientmq.core.options.ResilienceKwargs`. STOMP's own: ``randomize_hosts``/``prefer_primary``
    (and ``primary_probe_interval``) for failover; ``connect_timeout`` (TCP connect and the wait for
    CONNECTED); ``receipt_timeout`` (an unanswered batch declares the connection dead); ``persistent`` (adds
    ``persistent:true`` unless a message says otherwise); ``destination_prefixes`` (None disables the
    check); ``max_frame_bytes`` (refuse larger bodies at ``send()``); ``confirm_mode`` ('auto': transactions
    on ActiveMQ, a receipt per message elsewhere; or 'transaction' / 'receipt'); ``send_connections`` (2:
    with transactions, batches take turns on this many connections to the same broker, so it stores one
    batch while committing another; commits stay chained, so order is kept; extra connections only send
    and never carry your client-id); ``ledger`` (True: on ActiveMQ every transaction also records its
    batch on this client's ledger queue, so after a reconnect what the broker had committed is not sent
    again; with it, batches go on ``send_connections`` sending-only links beside the main one, each with a
    client-id of its own; False turns it off); ``max_batch``, ``max_in_flight``; ``name`` (of threads and
    log lines).
    """

    def __init__(
        self,
        host_and_ports: Sequence[HostAndPort] | None = None,
        prefer_localhost: bool = True,
        try_loopback_connect: bool = True,
        reconnect_sleep_initial: float = 0.1,
        reconnect_sleep_increase: float = 0.5,
        reconnect_sleep_jitter: float = 0.1,
        reconnect_sleep_max: float = 60.0,
        reconnect_attempts_max: int = 3,
        timeout: float | None = None,
        heartbeats: tuple[int, int] = DEFAULT_HEARTBEATS,
        keepalive: Any = None,
        vhost: str | None = None,
        auto_decode: bool = True,
        encoding: str = "utf-8",
        auto_content_length: bool = True,
        heart_beat_receive_scale: float = 1.5,
        bind_host_port: Any = None,
        *,
        randomize_hosts: bool = False,
        prefer_primary: bool = False,
        primary_probe_interval: float = 30.0,
        connect_timeout: float = 10.0,
        receipt_timeout: float = 30.0,
        persistent: bool = True,
        destination_prefixes: Sequence[str] | None = DEFAULT_DESTINATION_PREFIXES,
        max_frame_bytes: int | None = None,
        confirm_mode: str = "auto",
        send_connections: int = 2,
        ledger: bool = True,
        max_batch: int = 1000,
        max_in_flight: int = 4,
        name: str = "stomp",
        **resilience: Unpack[ResilienceKwargs],
    ) -> None:
        settings = StompOptions(
            transport_args={
                "timeout": connect_timeout if timeout is None else timeout,
                "keepalive": keepalive,
                "vhost": vhost,
                "auto_decode": auto_decode,
                "encoding": encoding,
                "bind_host_port": bind_host_port,
            },
            heartbeats=tuple(heartbeats),
            heartbeat_scale=heart_beat_receive_scale,
            auto_content_length=auto_content_length,
            connect_timeout=connect_timeout,
            # A write that cannot progress this long means a broker that stopped reading: a dead connection.
            send_timeout=min(receipt_timeout, 30.0),
            confirm_mode=confirm_mode,
            send_connections=send_connections,
        )
        hosts = ordered_hosts(host_and_ports, prefer_localhost, try_loopback_connect)
        options = ResilienceOptions.from_kwargs(resilience, owner=type(self).__name__)
        self._rmq_registry = ClientRegistry(name)  # before stomp.py's __init__ sets ``self.transport``
        super().__init__(
            host_and_ports=hosts,
            prefer_localhost=False,
            try_loopback_connect=False,
            timeout=timeout,
            heartbeats=heartbeats,
            keepalive=keepalive,
            vhost=vhost,
            auto_decode=auto_decode,
            encoding=encoding,
            auto_content_length=auto_content_length,
            heart_beat_receive_scale=heart_beat_receive_scale,
            bind_host_port=bind_host_port,
        )
        self._rmq_connect_timeout = connect_timeout
        self._rmq_persistent = persistent
        self._rmq_prefixes = None if destination_prefixes is None else tuple(destination_prefixes)
        self._rmq_max_frame_bytes = max_frame_bytes
        self._rmq_transactions: dict[str, int] = {}  # user transaction -> the epoch it began on
        self._rmq_deliveries = Deliveries()
        self._rmq_connector = StompConnector(settings, self._rmq_registry, self._rmq_deliveries)
        self._rmq: ClientCore[HostAndPort, StompSession] = ClientCore(
            name,
            options,
            self._rmq_connector,
            Endpoints(hosts, randomize=randomize_hosts, prefer_primary=prefer_primary),
            probe=lambda hp: tcp_probe(hp[0], hp[1], timeout=connect_timeout),
            primary_probe_interval=primary_probe_interval,
            max_batch=max_batch,
            max_in_flight=max_in_flight,
            confirm_timeout=receipt_timeout,
        )
        self._rmq.supervisor.add_listener(TellUserListeners(self._rmq_registry.call_listeners))
        self._rmq_ledger = LedgerBook(self._rmq.buffer, name) if ledger else None
        if self._rmq_ledger is not None:
            self._rmq_connector.keep_ledger(self._rmq_ledger)

    # stomp.py reads and writes ``self.transport``: its placeholder until the first connection is up, then
    # the live (or last live) connection's transport, a new one on every reconnection.
    @property
    def transport(self) -> Any:
        return self._rmq_registry.transport

    @transport.setter
    def transport(self, transport: Any) -> None:
        self._rmq_registry.transport = transport

    # -- connecting -----------------------------------------------------------------------------------
    def connect(
        self,
        username: str | None = None,
        passcode: str | None = None,
        wait: bool = False,
        headers: Mapping[str, Any] | None = None,
        with_connect_command: bool = False,
        **keyword_headers: Any,
    ) -> None:
        """Connect (retrying by the policy); the same CONNECT is replayed on every reconnection.

        ``wait=True`` blocks until connected and raises :class:`StompAuthenticationError` at once on
        refused credentials, or :class:`StompConnectFailedError` when the initial-connect attempts are
        spent. ``wait=False`` connects in the background; sends are buffered meanwhile.
        """
        self._rmq_registry.connect_args = ConnectArgs(
            username, passcode, dict(headers or {}), with_connect_command, dict(keyword_headers)
        )
        supervisor = self._rmq.supervisor
        # On one of our own threads (a listener reconnecting from on_disconnected, the classic stomp.py
        # pattern), waiting would wait on ourselves: the reconnection is under way anyway.
        wait = wait and not (supervisor.in_own_thread() or self._rmq_on_io_thread())
        try:
            supervisor.connect(wait=wait)
            if wait and supervisor.state is ConnectionState.RECONNECTING:
                supervisor.wait_connected()
        except AuthenticationError as exc:
            raise StompAuthenticationError(str(exc)) from exc
        except ReconnectFailedError as exc:
            raise StompConnectFailedError(str(exc)) from exc.__cause__

    def disconnect(
        self, receipt: str | None = None, headers: Mapping[str, Any] | None = None, **keyword_headers: Any
    ) -> None:
        """Wait (up to ``drain_timeout``) for every buffered message to be confirmed, then disconnect as
        stomp.py does: a DISCONNECT asking for ``receipt`` (stomp.py's made-up id if None); listeners get
        ``on_disconnected``, then ``on_receipt``.

        What is still unconfirmed stays in the buffer: a durable one delivers it on the next run, and
        ``connect()`` on this object resumes delivery.
        """
        core = self._rmq
        # During an outage the drain also waits (bounded) for the connection to come back.
        if len(core.outbox) and not core.outbox.flush(core.options.drain_timeout):
            log.warning("%s: disconnecting with %d unconfirmed message(s)", core.name, len(core.outbox))
        session = core.supervisor.session()
        if session is not None:
            # On stomp.py's io thread the receipt could only be read after we return: do not wait for it.
            wait = not self._rmq_on_io_thread()
            if wait:  # receipts we answered for confirmed messages come before on_disconnected
                self._rmq_registry.deliver_told(self._rmq_connect_timeout)
            session.disconnect(receipt, {**(headers or {}), **keyword_headers}, wait=wait)
        core.supervisor.disconnect()

    def close(self) -> None:
        """Disconnect (draining first) and release the buffer and threads; the object cannot reconnect."""
        if self._rmq.supervisor.closed:
            return
        self.disconnect()
        self._rmq.close(drain_timeout=0)
        self._rmq_registry.close()

    def __enter__(self) -> ResilientActiveMQConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def is_connected(self) -> bool:
        session = self._rmq.supervisor.session()
        return session is not None and session.alive()

    # -- sending ------------------------------------------------------------------------------------
    def send(
        self,
        destination: str,
        body: str | bytes,
        content_type: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> str:
        """Accept a message for delivery (at least once, in order) and return its stable id.

        With a ``transaction`` header the message belongs to a user transaction: it is sent on the
        current connection at once, not buffered (a transaction cannot outlive its connection).
        """
        merged = {**(headers or {}), **keyword_headers}
        if merged.get("transaction") is not None:
            self._rmq_send_in_transaction(destination, body, content_type, merged)
            return str(merged.get(MESSAGE_ID_HEADER, ""))
        message = self._rmq_message(destination, body, content_type, merged)
        self._rmq_put([message])
        return message.id

    def send_batch(
        self,
        destination: str,
        bodies: Iterable[str | bytes],
        content_type: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> list[str]:
        """Accept several messages at once (one buffer transaction); all are checked before any is taken."""
        merged = {**(headers or {}), **keyword_headers}
        if merged.get("transaction") is not None:
            raise InvalidMessageError("send_batch() does not take a transaction header; use send() for that")
        if MESSAGE_ID_HEADER in merged:
            raise InvalidMessageError(f"send_batch() gives each message its own {MESSAGE_ID_HEADER!r} header")
        messages = [self._rmq_message(destination, body, content_type, merged) for body in bodies]
        self._rmq_put(messages)
        return [m.id for m in messages]

    # -- subscriptions and acknowledgements ----------------------------------------------------------
    def subscribe(
        self,
        destination: str,
        id: str,
        ack: str = "auto",
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> None:
        """Subscribe now (if connected) and after every reconnection, with the same id, ack mode, headers.

        A ``receipt`` header is answered once: by the broker, to the SUBSCRIBE that puts the subscription
        in place (now, or on the next connection); replays after later reconnections carry the adapter's
        own receipt. The same subscription again while it is in place is not sent twice; its receipt is
        answered by the adapter.
        """
        check_destination(destination, None)
        if id is None:
            raise InvalidMessageError("subscribe() needs an id")
        if ack not in ("auto", "client", "client-individual"):
            raise InvalidMessageError(f"ack must be 'auto', 'client' or 'client-individual', got {ack!r}")
        merged = {**(headers or {}), **keyword_headers}
        receipt = merged.pop("receipt", None)
        sub = Subscription(destination, str(id), ack, tuple(sorted((k, str(v)) for k, v in merged.items())))
        owed = () if receipt is None else (str(receipt),)
        registry = self._rmq_registry
        with registry.lock:  # the lock a session holds while deciding that subscriptions are in place
            previous = registry.subscriptions.get(sub.id)
            # The newest session, even while it is set up: it replays the registry until it is ready.
            session = self._rmq_connector.current
            ready = session is not None and session.subscriptions_ready
            if previous == sub and ready:
                for r in owed:  # in place (the classic re-subscribe from on_connected): done
                    registry.answer_receipt(r)
                return
            sub = replace(sub, receipts=(previous.receipts if previous is not None else ()) + owed)
            registry.subscriptions[sub.id] = sub
            if ready and session is not None:
                session.subscribe(sub, replacing=previous is not None)

    def unsubscribe(self, id: str, headers: Mapping[str, Any] | None = None, **keyword_headers: Any) -> None:
        """Forget the subscription (it is not restored any more) and unsubscribe if connected; a
        ``receipt`` header is answered by the broker then, else by the adapter at once."""
        registry = self._rmq_registry
        receipt = {**(headers or {}), **keyword_headers}.get("receipt")
        with registry.lock:
            known = registry.subscriptions.pop(str(id), None) is not None
            session = self._rmq_connector.current
            written = (
                known
                and session is not None
                and session.subscriptions_ready
                and session.try_write("unsubscribe", lambda f: f.unsubscribe(id, headers, **keyword_headers))
            )
            if receipt is not None and not written:  # not restored any more: that is done
                registry.answer_receipt(str(receipt))

    def ack(
        self, id: str, subscription: str, transaction: str | None = None, receipt: str | None = None
    ) -> None:
        """Acknowledge on the connection that delivered the message; skipped (and counted) otherwise."""
        self._rmq_acknowledge("ack", id, lambda f: f.ack(id, subscription, transaction, receipt))

    def nack(
        self,
        id: str,
        subscription: str,
        transaction: str | None = None,
        receipt: str | None = None,
        **keyword_headers: Any,
    ) -> None:
        """Like :meth:`ack`: a nack for a message of an earlier connection is skipped (it is redelivered)."""
        self._rmq_acknowledge(
            "nack", id, lambda f: f.nack(id, subscription, transaction, receipt, **keyword_headers)
        )

    def ack_message(self, frame: Any) -> None:
        """Acknowledge a MESSAGE frame if its subscription uses client acks (a no-op for auto)."""
        sub = self._rmq_registry.subscriptions.get(str(frame.headers.get("subscription")))
        if sub is not None and sub.ack != "auto":
            self.ack(frame.headers["message-id"], sub.id)

    # -- user transactions ---------------------------------------------------------------------------
    def begin(
        self, transaction: str | None = None, headers: Mapping[str, Any] | None = None, **keyword_headers: Any
    ) -> str:
        """Begin a user transaction on the current connection (it cannot survive a reconnection)."""

        def begin(session: StompSession) -> tuple[str, int]:
            tx: str = session.write("begin", lambda f: f.begin(transaction, headers, **keyword_headers))
            return tx, session.epoch

        tx, epoch = self._rmq_run("begin a transaction", begin)
        self._rmq_transactions[tx] = epoch
        return tx

    def commit(
        self, transaction: str | None = None, headers: Mapping[str, Any] | None = None, **kw: Any
    ) -> None:
        """Commit; raises :class:`TransactionRolledBackError` if the connection broke since ``begin()``."""
        session = self._rmq_transaction_session(transaction)
        session.write("commit", lambda f: f.commit(transaction, headers, **kw))
        self._rmq_transactions.pop(str(transaction), None)

    def abort(self, transaction: str, headers: Mapping[str, Any] | None = None, **kw: Any) -> None:
        """Abort; a transaction of a dead connection was already rolled back by the broker."""
        epoch = self._rmq_transactions.pop(str(transaction), None)
        session = None if epoch is None else self._rmq.supervisor.session(epoch)
        if session is not None and session.alive():
            session.try_write("abort", lambda f: f.abort(transaction, headers, **kw))

    # -- listeners and TLS, recorded so every new transport gets them --------------------------------
    def set_listener(self, name: str, listener: Any) -> None:
        self._rmq_registry.set_listener(name, listener)

    def remove_listener(self, name: str) -> None:
        self._rmq_registry.remove_listener(name)

    def get_listener(self, name: str) -> Any:
        return self._rmq_registry.listeners.get(name)

    def set_ssl(self, *args: Any, **kwargs: Any) -> None:
        self._rmq_registry.add_ssl(args, kwargs)

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out.update(self._rmq_registry.counts())
        out["ledger_refused"] = self._rmq_ledger.refusals if self._rmq_ledger is not None else 0
        return out

    # -- internals ----------------------------------------------------------------------------------
    def _rmq_message(
        self, destination: str, body: str | bytes, content_type: str | None, headers: Mapping[str, Any]
    ) -> NewMessage:
        check_destination(destination, self._rmq_prefixes)
        data = body_bytes(body)
        if self._rmq_max_frame_bytes is not None and len(data) > self._rmq_max_frame_bytes:
            raise MessageTooLargeError(
                f"message body of {len(data)} bytes exceeds max_frame_bytes={self._rmq_max_frame_bytes}"
            )
        clean = {str(k): str(v) for k, v in headers.items() if v is not None and k != "content-length"}
        if content_type:
            clean["content-type"] = content_type
        if self._rmq_persistent:
            clean.setdefault("persistent", "true")
        message_id = clean.pop(MESSAGE_ID_HEADER, None)
        if message_id is None:
            return NewMessage(destination, data, clean)
        return NewMessage(destination, data, clean, id=message_id)

    def _rmq_send_in_transaction(
        self, destination: str, body: str | bytes, content_type: str | None, headers: dict[str, Any]
    ) -> None:
        session = self._rmq_transaction_session(headers["transaction"])
        check_destination(destination, self._rmq_prefixes)
        data = body_bytes(body)
        if self._rmq_persistent:
            headers.setdefault("persistent", "true")
        session.write("send in a transaction", lambda f: f.send(destination, data, content_type, headers))

    def _rmq_transaction_session(self, transaction: str | None) -> StompSession:
        """The live session ``transaction`` began on; else it was rolled back with its connection."""
        epoch = self._rmq_transactions.get(str(transaction))
        if epoch is None:
            raise InvalidMessageError(f"unknown transaction {transaction!r}: begin() it on this connection")
        session = self._rmq.supervisor.session(epoch)
        if session is None or not session.alive():
            self._rmq_transactions.pop(str(transaction), None)
            raise TransactionRolledBackError(
                f"the connection broke inside transaction {transaction!r}; the broker rolled it back"
            )
        return session

    def _rmq_run(self, what: str, fn: Callable[[StompSession], T]) -> T:
        """Run ``fn`` on the live session, once. Right after ``connect(wait=False)`` stomp.py would already
        send: give the connection its set-up time (not on stomp.py's io thread, which that set-up needs)."""

        def on_live(session: StompSession) -> T:
            if not session.alive():
                raise ConnectionLostError(f"cannot {what}: the connection is gone")
            return fn(session)

        supervisor = self._rmq.supervisor
        timeout = 0.0 if self._rmq_on_io_thread() else self._rmq_connect_timeout
        try:
            return supervisor.run(
                what, on_live, timeout=timeout, retry=False, disconnected=self._rmq_unready(what)
            )
        except ReconnectFailedError as exc:  # FAILED: not connected, as for any other state
            raise self._rmq_unready(what)() from exc

    def _rmq_unready(self, what: str) -> Callable[[], ConnectionLostError]:
        supervisor = self._rmq.supervisor
        return lambda: ConnectionLostError(f"cannot {what}: not connected (state {supervisor.state.value})")

    def _rmq_acknowledge(self, what: str, message_id: str, action: Callable[[Any], object]) -> None:
        """Send an ack/nack on the connection that delivered the message; a message of an earlier
        connection is redelivered by the broker, so its ack is skipped (and counted), never sent late."""
        delivered_on = self._rmq_deliveries.epoch_of(message_id)
        session = self._rmq.supervisor.session(delivered_on)
        if session is None:
            # Still being set up: restored subscriptions deliver before the supervisor calls it live, and
            # the ack of such a message belongs on that very connection.
            opening = self._rmq_connector.current
            if opening is not None and delivered_on is not None and opening.epoch == delivered_on:
                session = opening
        if session is None or not session.alive():
            self._rmq_registry.count(f"{what}s_skipped")
            log.debug("%s of %s skipped: its connection is gone, the broker redelivers it", what, message_id)
            return
        if not session.try_write(what, action):  # it died under the ack: the same as skipped
            self._rmq_registry.count(f"{what}s_skipped")
        self._rmq_deliveries.forget(message_id)

    def _rmq_put(self, messages: list[NewMessage]) -> None:
        # On stomp.py's io thread (sending from on_message), blocking on a full buffer would stop the very
        # receipts that make room: fail at once instead.
        timeout = 0.0 if self._rmq_on_io_thread() else None
        try:
            self._rmq.outbox.put(messages, timeout)
        except BufferFullError as exc:
            if timeout == 0.0 and self._rmq.buffer.overflow.value == "block":
                raise BufferFullError(f"{exc}; send() from a listener cannot wait for room") from exc
            raise

    def _rmq_on_io_thread(self) -> bool:
        return self._rmq_registry.on_io_thread()
