"""``ResilientActiveMQConnection``: a drop-in ``stomp.Connection`` that loses nothing through outages.

How it works, in one paragraph: ``send()`` puts the message in the outbox (memory, or a SQLite file with
``buffer_path``) and returns; the outbox's sender thread writes messages in batches — each batch one STOMP
transaction whose COMMIT carries a receipt, several batches in flight at once — and forgets a message only
when its receipt arrives. Every connection gets a fresh stomp.py transport; the supervisor reconnects by the
policy, failing over across ``host_and_ports``; ``open()`` replays CONNECT (same credentials and headers)
and every recorded subscription before the sender re-sends what was not confirmed. Heart-beats are on by
default so a silent partition is noticed. Code written for ``stomp.Connection`` keeps working.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import stomp
import stomp.exception
import stomp.protocol
import stomp.transport
import stomp.utils

from resilientmq.core.client import ClientCore, ResilientClientMixin
from resilientmq.core.options import ResilienceOptions
from resilientmq._stomp.connector import StompConnector
from resilientmq._stomp.errors import stomp_errors
from resilientmq._stomp.link import OWN_RECEIPT_PREFIX, Deliveries, Link
from resilientmq._stomp.listeners import DeduplicatingListener, TellUserListeners
from resilientmq._stomp.sender import MESSAGE_ID_HEADER, StompSender
from resilientmq._stomp.validate import body_bytes, check_destination, ordered_hosts
from resilientmq.core.buffer import DEFAULT_BLOCK_TIMEOUT, DEFAULT_MAX_MESSAGES, NewMessage
from resilientmq.core.errors import (
    AuthenticationError,
    BufferFullError,
    ConnectionLostError,
    InvalidMessageError,
    MessageTooLargeError,
    ReconnectFailedError,
    TransactionRolledBackError,
)
from resilientmq.core.session import BatchRejectedError
from resilientmq.core.policy import ReconnectPolicy
from resilientmq.core.supervisor import ConnectionState, Endpoints, EventDispatcher, tcp_probe

__all__ = [
    "DEFAULT_DESTINATION_PREFIXES",
    "MESSAGE_ID_HEADER",
    "DeduplicatingListener",
    "ResilientActiveMQConnection",
    "StompAuthenticationError",
    "StompConnectFailedError",
]

log = logging.getLogger("resilientmq.stomp")

DEFAULT_DESTINATION_PREFIXES: tuple[str, ...] = (
    "/queue/",
    "/topic/",
    "/temp-queue/",
    "/temp-topic/",
    "/remote-temp-queue/",
    "/remote-temp-topic/",
    "/exchange/",
    "/amq/queue/",
    "/reply-queue/",
)
"""Prefixes ActiveMQ and RabbitMQ understand; a destination starting with ``/`` must use one."""

DEFAULT_HEARTBEATS = (10_000, 10_000)
HostAndPort = tuple[str, int]


class StompConnectFailedError(ReconnectFailedError, stomp.exception.ConnectFailedException):  # type: ignore[misc]
    """``connect()`` gave up: a :class:`ReconnectFailedError` that stomp.py callers catch as before."""


class StompAuthenticationError(AuthenticationError, stomp.exception.ConnectFailedException):  # type: ignore[misc]
    """The broker refused the credentials: an :class:`AuthenticationError` and a ConnectFailedException."""


@dataclass(frozen=True)
class _Subscription:
    destination: str
    id: str
    ack: str
    headers: tuple[tuple[str, str], ...]


class ResilientActiveMQConnection(ResilientClientMixin, stomp.Connection):  # type: ignore[misc]
    """A ``stomp.Connection`` (STOMP 1.1) that reconnects, buffers, restores subscriptions and never drops.

    Every ``stomp.Connection`` argument keeps its meaning, except that stomp.py's own reconnect loop is
    replaced by ``reconnect_policy`` (so attempts and waits do not multiply): ``reconnect_sleep_*`` and
    ``reconnect_attempts_max`` are accepted and ignored. ``heartbeats`` defaults to 10 s each way so that a
    silent partition is detected; pass ``(0, 0)`` to turn them off.

    Resilience arguments: ``reconnect_tries`` (10; -1 forever) and ``reconnect_interval_seconds`` (60; the
    longest wait between attempts), or a full ``reconnect_policy``; ``buffer_max_messages`` (10,000),
    ``buffer_path`` (durable buffer file), ``buffer_overflow`` ('block', 'raise', 'drop_oldest'),
    ``buffer_block_timeout``, ``buffer_fsync``; ``drain_timeout`` (how long ``disconnect()`` waits for
    confirmations); ``randomize_hosts``/``prefer_primary`` for failover; ``connect_timeout`` (TCP connect and
    the wait for CONNECTED); ``receipt_timeout`` (an unanswered batch declares the connection dead);
    ``persistent`` (adds ``persistent:true`` unless a message says otherwise); ``destination_prefixes``
    (None disables the check); ``max_frame_bytes`` (refuse larger bodies at ``send()``); ``confirm_mode``
    ('auto': transactions on ActiveMQ, a receipt per message elsewhere; or 'transaction' / 'receipt');
    ``send_connections`` (2: with transactions, batches take turns on this many connections to the same
    broker, so it stores one batch while committing another; commits stay chained, so order is kept;
    extra connections only send and carry no client-id).
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
        reconnect_tries: int | None = None,
        reconnect_interval_seconds: float | ReconnectPolicy | None = None,
        reconnect_policy: ReconnectPolicy | None = None,
        buffer_max_messages: int = DEFAULT_MAX_MESSAGES,
        buffer_path: str | None = None,
        buffer_overflow: str = "block",
        buffer_block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
        buffer_fsync: bool = False,
        drain_timeout: float | None = 30.0,
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
        max_batch: int = 1000,
        max_in_flight: int = 4,
        name: str = "stomp",
    ) -> None:
        if confirm_mode not in ("auto", "transaction", "receipt"):
            raise ValueError(f"confirm_mode must be 'auto', 'transaction' or 'receipt', got {confirm_mode!r}")
        if not isinstance(send_connections, int) or send_connections < 1:
            raise ValueError(f"send_connections must be an int >= 1, got {send_connections!r}")
        hosts = ordered_hosts(host_and_ports, prefer_localhost, try_loopback_connect)
        options = ResilienceOptions.from_kwargs(
            reconnect_tries=reconnect_tries,
            reconnect_interval_seconds=reconnect_interval_seconds,
            reconnect_policy=reconnect_policy,
            buffer_max_messages=buffer_max_messages,
            buffer_path=buffer_path,
            buffer_overflow=buffer_overflow,
            buffer_block_timeout=buffer_block_timeout,
            buffer_fsync=buffer_fsync,
            drain_timeout=drain_timeout,
        )
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
        self._rmq_transport_args: dict[str, Any] = {
            "timeout": connect_timeout if timeout is None else timeout,
            "keepalive": keepalive,
            "vhost": vhost,
            "auto_decode": auto_decode,
            "encoding": encoding,
            "bind_host_port": bind_host_port,
        }
        self._rmq_encoding = encoding
        self._rmq_heartbeats = tuple(heartbeats)
        self._rmq_heartbeat_scale = heart_beat_receive_scale
        self._rmq_connect_timeout = connect_timeout
        # A write that cannot progress this long means a broker that stopped reading: a dead connection.
        self._rmq_send_timeout = min(receipt_timeout, 30.0)
        self._rmq_persistent = persistent
        self._rmq_prefixes = None if destination_prefixes is None else tuple(destination_prefixes)
        self._rmq_max_frame_bytes = max_frame_bytes
        self._rmq_lock = threading.RLock()
        self._rmq_listeners: dict[str, Any] = {}
        self._rmq_ssl: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._rmq_subscriptions: dict[str, _Subscription] = {}
        self._rmq_transactions: dict[str, int] = {}
        self._rmq_connect_args: dict[str, Any] | None = None
        self._rmq_link: Link | None = None  # the main connection: subscriptions, acks, user frames
        self._rmq_links: list[Link] = []  # the main one first, then any sending-only connections
        self._rmq_send_connections = send_connections
        self._rmq_deliveries = Deliveries()
        self._rmq_receipts = itertools.count(1)
        self._rmq_counts = {"acks_skipped": 0, "nacks_skipped": 0, "subscriptions_refused": 0}
        # Callbacks the adapter makes up (answers to the user's receipts) run here, never on stomp.py's io
        # thread, which must stay free to read the receipts everything else waits for.
        self._rmq_events = EventDispatcher(f"{name}-listeners")
        self._rmq_sender = StompSender(self, confirm_mode)
        self._rmq = ClientCore(
            name,
            options,
            StompConnector(self),
            Endpoints(hosts, randomize=randomize_hosts, prefer_primary=prefer_primary),
            self._rmq_sender,
            probe=lambda hp: tcp_probe(hp[0], hp[1], timeout=connect_timeout),
            primary_probe_interval=primary_probe_interval,
            max_batch=max_batch,
            max_in_flight=max_in_flight,
            confirm_timeout=receipt_timeout,
        )
        self._rmq.supervisor.add_listener(TellUserListeners(self))

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
        self._rmq_connect_args = {
            "username": username,
            "passcode": passcode,
            "headers": dict(headers or {}),
            "with_connect_command": with_connect_command,
            "keyword_headers": dict(keyword_headers),
        }
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
        """Wait (up to ``drain_timeout``) for every buffered message to be confirmed, then disconnect.

        What is still unconfirmed stays in the buffer: a durable one delivers it on the next run, and
        ``connect()`` on this object resumes delivery.
        """
        core = self._rmq
        # During an outage the drain also waits (bounded) for the connection to come back.
        if len(core.outbox) and not core.outbox.flush(core.options.drain_timeout):
            log.warning("%s: disconnecting with %d unconfirmed message(s)", core.name, len(core.outbox))
        if core.supervisor.state is ConnectionState.CONNECTED:
            self._rmq_send_disconnect(receipt, {**(headers or {}), **keyword_headers})
        core.supervisor.disconnect()

    def close(self) -> None:
        """Disconnect (draining first) and release the buffer and threads; the object cannot reconnect."""
        if self._rmq.supervisor.closed:
            return
        self.disconnect()
        self._rmq.close(drain_timeout=0)
        self._rmq_events.close()

    def __enter__(self) -> ResilientActiveMQConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def is_connected(self) -> bool:
        link = self._rmq_link
        return (
            self._rmq.supervisor.state is ConnectionState.CONNECTED
            and link is not None
            and not link.dead
            and bool(self.transport.is_connected())
        )

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
        """Subscribe now (if connected) and after every reconnection, with the same id, ack mode, headers."""
        check_destination(destination, None)
        if id is None:
            raise InvalidMessageError("subscribe() needs an id")
        if ack not in ("auto", "client", "client-individual"):
            raise InvalidMessageError(f"ack must be 'auto', 'client' or 'client-individual', got {ack!r}")
        merged = {**(headers or {}), **keyword_headers}
        sub = _Subscription(destination, str(id), ack, tuple(sorted((k, str(v)) for k, v in merged.items())))
        with self._rmq_lock:  # the lock open() holds while deciding that subscriptions are in place
            previous = self._rmq_subscriptions.get(sub.id)
            self._rmq_subscriptions[sub.id] = sub
            link = self._rmq_link
            if previous == sub or link is None or link.dead or not link.subscriptions_ready:
                return  # already in place, or replayed by the connection being set up
            if previous is not None:  # same id, new terms: a STOMP id must be unsubscribed before reuse
                self._rmq_best_effort(
                    "unsubscribe", lambda: stomp.protocol.Protocol11.unsubscribe(self, sub.id)
                )
            self._rmq_subscribe_watched(link, sub)

    def unsubscribe(self, id: str, headers: Mapping[str, Any] | None = None, **keyword_headers: Any) -> None:
        """Forget the subscription (it is not restored any more) and unsubscribe if connected."""
        with self._rmq_lock:
            known = self._rmq_subscriptions.pop(str(id), None) is not None
            link = self._rmq_link
            if known and link is not None and not link.dead and link.subscriptions_ready:
                self._rmq_best_effort(
                    "unsubscribe",
                    lambda: stomp.protocol.Protocol11.unsubscribe(self, id, headers, **keyword_headers),
                )

    def ack(
        self, id: str, subscription: str, transaction: str | None = None, receipt: str | None = None
    ) -> None:
        """Acknowledge on the connection that delivered the message; skipped (and counted) otherwise."""
        if self._rmq_ack_is_live(id, "ack"):
            sent = self._rmq_best_effort(
                "ack", lambda: stomp.protocol.Protocol11.ack(self, id, subscription, transaction, receipt)
            )
            self._rmq_count_unsent(sent, "ack")
            self._rmq_deliveries.forget(id)

    def nack(
        self,
        id: str,
        subscription: str,
        transaction: str | None = None,
        receipt: str | None = None,
        **keyword_headers: Any,
    ) -> None:
        """Like :meth:`ack`: a nack for a message of an earlier connection is skipped (it is redelivered)."""
        if self._rmq_ack_is_live(id, "nack"):
            sent = self._rmq_best_effort(
                "nack",
                lambda: stomp.protocol.Protocol11.nack(
                    self, id, subscription, transaction, receipt, **keyword_headers
                ),
            )
            self._rmq_count_unsent(sent, "nack")
            self._rmq_deliveries.forget(id)

    def ack_message(self, frame: Any) -> None:
        """Acknowledge a MESSAGE frame if its subscription uses client acks (a no-op for auto)."""
        sub = self._rmq_subscriptions.get(str(frame.headers.get("subscription")))
        if sub is not None and sub.ack != "auto":
            self.ack(frame.headers["message-id"], sub.id)

    # -- user transactions ---------------------------------------------------------------------------
    def begin(
        self, transaction: str | None = None, headers: Mapping[str, Any] | None = None, **keyword_headers: Any
    ) -> str:
        """Begin a user transaction on the current connection (it cannot survive a reconnection)."""
        epoch = self._rmq_require_connection("begin a transaction")
        with stomp_errors("begin"):
            tx: str = stomp.protocol.Protocol11.begin(self, transaction, headers, **keyword_headers)
        self._rmq_transactions[tx] = epoch
        return tx

    def commit(
        self, transaction: str | None = None, headers: Mapping[str, Any] | None = None, **kw: Any
    ) -> None:
        """Commit; raises :class:`TransactionRolledBackError` if the connection broke since ``begin()``."""
        self._rmq_check_transaction(transaction)
        with stomp_errors("commit"):
            stomp.protocol.Protocol11.commit(self, transaction, headers, **kw)
        self._rmq_transactions.pop(str(transaction), None)

    def abort(self, transaction: str, headers: Mapping[str, Any] | None = None, **kw: Any) -> None:
        """Abort; a transaction of a dead connection was already rolled back by the broker."""
        epoch = self._rmq_transactions.pop(str(transaction), None)
        if epoch is not None and epoch == self._rmq.supervisor.epoch and self.is_connected():
            self._rmq_best_effort(
                "abort", lambda: stomp.protocol.Protocol11.abort(self, transaction, headers, **kw)
            )

    # -- listeners and TLS, recorded so every new transport gets them --------------------------------
    def set_listener(self, name: str, listener: Any) -> None:
        # Under the lock that also guards swapping transports, so no new transport misses it.
        with self._rmq_lock:
            self._rmq_listeners[name] = listener
            self.transport.set_listener(name, listener)

    def remove_listener(self, name: str) -> None:
        with self._rmq_lock:
            self._rmq_listeners.pop(name, None)
            if self.transport.get_listener(name) is not None:
                self.transport.remove_listener(name)

    def get_listener(self, name: str) -> Any:
        return self._rmq_listeners.get(name)

    def set_ssl(self, *args: Any, **kwargs: Any) -> None:
        self._rmq_ssl.append((args, kwargs))
        self.transport.set_ssl(*args, **kwargs)

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out.update(self._rmq_counts)
        return out

    # -- internals ----------------------------------------------------------------------------------
    def _rmq_message(
        self, destination: str, body: str | bytes, content_type: str | None, headers: Mapping[str, Any]
    ) -> NewMessage:
        check_destination(destination, self._rmq_prefixes)
        data = body_bytes(body, self._rmq_encoding)
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
        self._rmq_check_transaction(headers["transaction"])
        check_destination(destination, self._rmq_prefixes)
        data = body_bytes(body, self._rmq_encoding)
        if self._rmq_persistent:
            headers.setdefault("persistent", "true")
        with stomp_errors("send in a transaction"):
            stomp.protocol.Protocol11.send(self, destination, data, content_type, headers)

    def _rmq_check_transaction(self, transaction: str | None) -> None:
        epoch = self._rmq_transactions.get(str(transaction))
        if epoch is None:
            raise InvalidMessageError(f"unknown transaction {transaction!r}: begin() it on this connection")
        if epoch != self._rmq.supervisor.epoch or not self.is_connected():
            self._rmq_transactions.pop(str(transaction), None)
            raise TransactionRolledBackError(
                f"the connection broke inside transaction {transaction!r}; the broker rolled it back"
            )

    def _rmq_require_connection(self, what: str) -> int:
        # Right after connect(wait=False) stomp.py would already send; give the connection its set-up time.
        if not self.is_connected() and not self._rmq_on_io_thread():
            self._rmq.supervisor.wait_connected(self._rmq_connect_timeout)
        if not self.is_connected():
            raise ConnectionLostError(
                f"cannot {what}: not connected (state {self._rmq.supervisor.state.value})"
            )
        return self._rmq.supervisor.epoch

    def _rmq_ack_is_live(self, message_id: str, what: str) -> bool:
        delivered_on = self._rmq_deliveries.epoch_of(message_id)
        live = self.is_connected() and delivered_on in (None, self._rmq.supervisor.epoch)
        if not live:
            with self._rmq_lock:
                self._rmq_counts[f"{what}s_skipped"] += 1
            log.debug("%s of %s skipped: its connection is gone, the broker redelivers it", what, message_id)
        return live

    def _rmq_count_unsent(self, sent: bool, what: str) -> None:
        if not sent:  # the connection died under the ack: same as skipped, the broker redelivers
            with self._rmq_lock:
                self._rmq_counts[f"{what}s_skipped"] += 1

    def _rmq_best_effort(self, what: str, action: Any) -> bool:
        # A frame that dies with the connection is restored (subscriptions) or redelivered (acks).
        try:
            with stomp_errors(what):
                action()
            return True
        except ConnectionLostError as exc:
            log.debug("%s not sent, the connection is gone (%s)", what, exc)
            return False

    def _rmq_subscribe_frame(self, sub: _Subscription, receipt: str | None = None) -> None:
        headers = dict(sub.headers)
        if receipt is not None:
            headers["receipt"] = receipt
        stomp.protocol.Protocol11.subscribe(self, sub.destination, sub.id, sub.ack, headers)

    def _rmq_subscribe_watched(self, link: Link, sub: _Subscription) -> None:
        """Subscribe on a live connection with a receipt; a refusal drops it from what is replayed."""
        receipt = f"{OWN_RECEIPT_PREFIX}sub-{link.epoch}-{sub.id}-{next(self._rmq_receipts)}"
        try:
            answered = link.expect({receipt: None})
        except ConnectionLostError:
            return  # the connection died meanwhile: the next one replays it
        answered.add_done_callback(lambda f: self._rmq_subscription_answered(link, receipt, sub, f))
        self._rmq_best_effort("subscribe", lambda: self._rmq_subscribe_frame(sub, receipt))

    def _rmq_subscription_answered(
        self, link: Link, receipt: str, sub: _Subscription, answered: concurrent.futures.Future[Any]
    ) -> None:
        exc = answered.exception()
        cause: BaseException | None
        if exc is None:
            cause = link.error_before(receipt)
        elif isinstance(exc, BatchRejectedError) and exc.exact:
            cause = exc.cause
        else:  # the connection died or the blame was a guess: the next connection replays it alone
            cause = None
        if cause is not None and not getattr(cause, "retriable", True):
            self._rmq_drop_subscription(sub, cause)

    def _rmq_drop_subscription(self, sub: _Subscription, cause: BaseException) -> None:
        """The broker refused this subscription for good: stop replaying it (the user's listeners saw the
        ERROR frame)."""
        with self._rmq_lock:
            if self._rmq_subscriptions.get(sub.id) == sub:
                del self._rmq_subscriptions[sub.id]
            self._rmq_counts["subscriptions_refused"] += 1
        log.error(
            "%s: subscription %r to %s refused, dropped: %s", self._rmq.name, sub.id, sub.destination, cause
        )

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
        return threading.current_thread() is getattr(self.transport, "io_thread", None)

    def _rmq_send_disconnect(self, receipt: str | None, headers: dict[str, Any]) -> None:
        link = self._rmq_link
        if link is None or link.dead:
            return
        link.closing = True  # the broker closes after the receipt: that is not an outage
        rid = receipt or f"{OWN_RECEIPT_PREFIX}disconnect-{next(self._rmq_receipts)}"
        try:
            done = link.expect({rid: None})
            with stomp_errors("disconnect"):
                stomp.protocol.Protocol11.disconnect(self, rid, headers)
            if not self._rmq_on_io_thread():  # there, the receipt could only be read after we return
                done.exception(timeout=self._rmq_connect_timeout)
        except Exception as exc:  # the connection is being dropped anyway
            log.debug("DISCONNECT receipt not received: %s", exc)

    def _rmq_new_transport(self, endpoint: HostAndPort) -> stomp.transport.Transport:
        transport = stomp.transport.Transport(
            [endpoint],
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_sleep_initial=0.0,
            reconnect_attempts_max=1,  # the supervisor owns retrying
            **self._rmq_transport_args,
        )
        for args, kwargs in self._rmq_ssl:
            transport.set_ssl(*args, **kwargs)
        # A thread factory set with conn.transport.override_threading() carries over to every transport.
        transport.override_threading(self.transport.create_thread_fc)
        return transport

    def _rmq_tell_listeners(self, method: str, *args: Any) -> None:
        """Call the user's listeners from the adapter's own event thread."""
        self._rmq_events.post([self], "_rmq_call_listeners", (method, *args))

    def _rmq_call_listeners(self, method: str, *args: Any) -> None:
        for listener in list(self._rmq_listeners.values()):
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                log.exception("listener %r raised in %s", listener, method)
