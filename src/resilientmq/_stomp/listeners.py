"""Listener plumbing: what user listeners are shown, the news they get, and a de-duplicating wrapper."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from .link import OWN_RECEIPT_PREFIX
from .sender import MESSAGE_ID_HEADER

if TYPE_CHECKING:
    from resilientmq.stomp import ResilientActiveMQConnection

__all__ = ["DeduplicatingListener", "TellUserListeners", "UserListenerView"]

log = logging.getLogger("resilientmq.stomp")


class UserListenerView:
    """A user listener as registered on a transport: the adapter's own receipts are not shown to it."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener

    def on_receipt(self, frame: Any) -> None:
        if str(frame.headers.get("receipt-id", "")).startswith(OWN_RECEIPT_PREFIX):
            return
        handler = getattr(self.listener, "on_receipt", None)
        if handler is not None:
            handler(frame)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.listener, name)


class TellUserListeners:
    """Passes the supervisor's news (lost, reconnecting, reconnected, failed) to the user's listeners."""

    _EVENTS = frozenset({"on_connection_lost", "on_reconnecting", "on_reconnected", "on_reconnect_failed"})

    def __init__(self, conn: ResilientActiveMQConnection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        if name not in self._EVENTS:
            raise AttributeError(name)
        return lambda *args: self._conn._rmq_call_listeners(name, *args)


class DeduplicatingListener:
    """Wraps a listener and drops messages it has already seen (re-sends after a reconnect, redeliveries).

    Messages are keyed by the ``resilientmq-id`` header (falling back to ``message-id``); the last
    ``capacity`` keys are remembered. Give ``connection`` to have duplicates acknowledged for you when
    their subscription uses client acks. ``duplicates`` counts what was dropped. Every other callback goes
    to the wrapped listener unchanged.
    """

    def __init__(self, listener: Any, capacity: int = 100_000, connection: Any = None) -> None:
        self._listener = listener
        self._capacity = capacity
        self._connection = connection
        self._seen: dict[str, None] = {}
        self._lock = threading.Lock()
        self.duplicates = 0

    def on_message(self, frame: Any) -> None:
        key = frame.headers.get(MESSAGE_ID_HEADER) or frame.headers.get("message-id")
        with self._lock:
            duplicate = key is not None and key in self._seen
            if key is not None and not duplicate:
                self._seen[key] = None
                if len(self._seen) > self._capacity:
                    del self._seen[next(iter(self._seen))]
            if duplicate:
                self.duplicates += 1
        if duplicate:
            if self._connection is not None:
                self._connection.ack_message(frame)
            return
        handler = getattr(self._listener, "on_message", None)
        if handler is not None:
            handler(frame)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._listener, name)
