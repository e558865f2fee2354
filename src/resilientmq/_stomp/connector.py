"""The supervisor's view of a STOMP connection: open a fresh stomp.py transport to one endpoint and restore
it; drop it."""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any

import stomp.listener
import stomp.protocol
import stomp.utils

from resilientmq.core.errors import ConnectionLostError
from resilientmq.core.session import BatchRejectedError

from .errors import stomp_errors
from .link import LINK_LISTENER_NAME, OWN_RECEIPT_PREFIX, Link
from .listeners import UserListenerView

if TYPE_CHECKING:
    from resilientmq.stomp import ResilientActiveMQConnection, _Subscription

__all__ = ["StompConnector"]

log = logging.getLogger("resilientmq.stomp")

HostAndPort = tuple[str, int]


class StompConnector:
    """Opens one connection per call, on a transport of its own.

    A fresh stomp.py transport per connection keeps nothing of a dead one (receive buffer, receipts,
    heart-beat loop); each gets its own heart-beat listener bound to it, so a dying connection's monitor
    can never act on its successor.
    """

    def __init__(self, conn: ResilientActiveMQConnection) -> None:
        self._conn = conn

    def open(self, endpoint: HostAndPort) -> None:
        conn = self._conn
        args = conn._rmq_connect_args
        if args is None:
            raise ConnectionLostError("connect() was not called")
        self.close()
        epoch = conn._rmq.supervisor.epoch + 1
        transport, link = self._new_link(endpoint, epoch)
        with conn._rmq_lock:
            for name, listener in conn._rmq_listeners.items():
                transport.set_listener(name, UserListenerView(listener))
            conn.transport, conn._rmq_link, conn._rmq_links = transport, link, [link]
        host, port = endpoint
        try:
            with stomp_errors(f"connecting to {host}:{port}"):
                transport.start()
                _bound_send_time(transport, conn._rmq_send_timeout)
                stomp.protocol.Protocol11.connect(
                    conn,
                    args["username"],
                    args["passcode"],
                    False,
                    dict(args["headers"]),
                    args["with_connect_command"],
                    **args["keyword_headers"],
                )
            if not link.wait_connected(conn._rmq_connect_timeout):
                if link.connect_error is not None:
                    raise link.connect_error
                raise ConnectionLostError(
                    f"no CONNECTED frame from {host}:{port} within {conn._rmq_connect_timeout:g} s"
                )
            self._restore_subscriptions(link)
            if conn._rmq_sender.uses_transactions(link):
                for _ in range(conn._rmq_send_connections - 1):
                    self._open_sender_link(endpoint, epoch)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for link in self._conn._rmq_links:
            self._close(link, link.transport)

    def _new_link(self, endpoint: HostAndPort, epoch: int) -> tuple[Any, Link]:
        conn = self._conn
        transport = conn._rmq_new_transport(endpoint)
        link = Link(epoch, endpoint, self._lost, conn._rmq_deliveries)
        link.transport = transport
        transport.set_listener(LINK_LISTENER_NAME, link)
        transport.set_listener(
            "protocol-listener",
            stomp.listener.HeartbeatListener(transport, conn._rmq_heartbeats, conn._rmq_heartbeat_scale),
        )
        return transport, link

    def _open_sender_link(self, endpoint: HostAndPort, epoch: int) -> None:
        """One more connection that only sends (see ``send_connections``): the broker then works on one
        batch's SENDs while committing another, on two of its threads. It carries no subscriptions and no
        client-id (a client-id may be used by one connection only)."""
        conn = self._conn
        args = conn._rmq_connect_args
        assert args is not None
        transport, link = self._new_link(endpoint, epoch)
        with conn._rmq_lock:
            conn._rmq_links = [*conn._rmq_links, link]
        headers = {**args["headers"], **args["keyword_headers"], "accept-version": "1.1"}
        headers.pop("client-id", None)
        vhost = conn._rmq_transport_args.get("vhost")
        if vhost:
            headers["host"] = vhost
        if args["username"] is not None:
            headers["login"] = args["username"]
        if args["passcode"] is not None:
            headers["passcode"] = args["passcode"]
        host, port = endpoint
        with stomp_errors(f"connecting a sending connection to {host}:{port}"):
            transport.start()
            _bound_send_time(transport, conn._rmq_send_timeout)
            command = "CONNECT" if args["with_connect_command"] else "STOMP"
            transport.transmit(stomp.utils.Frame(command, headers))
        if not link.wait_connected(conn._rmq_connect_timeout):
            raise link.connect_error or ConnectionLostError(
                f"no CONNECTED frame from {host}:{port} for a sending connection"
            )

    def _close(self, link: Link, transport: Any) -> None:
        link.closing = True
        # User listeners hear of connections that die on their own (from stomp.py's io thread), not of one
        # we drop: this may run in the supervisor's thread, where a listener calling connect(wait=True) —
        # the classic stomp.py reconnect pattern — would wait on itself.
        for name in list(self._conn._rmq_listeners):
            if transport.get_listener(name) is not None:
                transport.remove_listener(name)
        try:
            transport.running = False
            transport.disconnect_socket()
        except Exception as exc:  # already gone
            log.debug("closing the transport: %s", exc)
        link.on_disconnected()  # settle what it still owed, even if stomp.py stays silent

    def _lost(self, link: Link, reason: BaseException) -> None:
        # Only the current connections' end is news; an earlier attempt's socket dying late is not.
        if link in self._conn._rmq_links:
            self._conn._rmq.supervisor.report_lost(reason, link.epoch)

    def _restore_subscriptions(self, link: Link) -> None:
        """Replay subscriptions one at a time, each with a receipt, so one the broker refuses is known
        for sure (it is dropped, not replayed for ever); loop until the registry and the connection agree,
        then let new subscriptions go out directly."""
        conn = self._conn
        restored: dict[str, _Subscription] = {}
        while True:
            with conn._rmq_lock:
                todo = [s for s in conn._rmq_subscriptions.values() if restored.get(s.id) != s]
                gone = [sid for sid in restored if sid not in conn._rmq_subscriptions]
                if not todo and not gone:
                    link.subscriptions_ready = True
                    return
            for sid in gone:
                self._unsubscribe(sid)
                restored.pop(sid)
            for sub in todo:
                if sub.id in restored:
                    self._unsubscribe(sub.id)
                if self._subscribe_and_wait(link, sub):
                    restored[sub.id] = sub

    def _subscribe_and_wait(self, link: Link, sub: _Subscription) -> bool:
        conn = self._conn
        receipt = f"{OWN_RECEIPT_PREFIX}sub-{link.epoch}-{sub.id}"
        answered = link.expect({receipt: None})
        with stomp_errors("restoring subscriptions"):
            conn._rmq_subscribe_frame(sub, receipt)
        try:
            answered.result(timeout=conn._rmq_connect_timeout)
            refusal = link.error_before(receipt)
            if refusal is None:
                return True
            raise BatchRejectedError(str(refusal), refusal)
        except BatchRejectedError as exc:
            cause = exc.cause or exc
            # A guessed blame is not a refusal: the connection is lost and the next one tries again.
            if getattr(cause, "retriable", False) or not exc.exact:
                raise ConnectionLostError(
                    f"subscription {sub.id!r} to {sub.destination} failed: {cause}"
                ) from exc
            conn._rmq_drop_subscription(sub, cause)
            return False
        except concurrent.futures.TimeoutError:
            raise ConnectionLostError(
                f"no receipt for the SUBSCRIBE to {sub.destination} within {conn._rmq_connect_timeout:g} s"
            ) from None

    def _unsubscribe(self, sid: str) -> None:
        with stomp_errors("restoring subscriptions"):
            stomp.protocol.Protocol11.unsubscribe(self._conn, sid)


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
