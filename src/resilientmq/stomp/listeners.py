"""Listener plumbing: what user listeners are shown, the news they get, and a de-duplicating wrapper."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from .frames import MESSAGE_ID_HEADER
from .link import OWN_RECEIPT_PREFIX

__all__ = ["DeduplicatingListener", "MessageAcker", "TellUserListeners", "UserListenerView"]

log = logging.getLogger("resilientmq.stomp")


class MessageAcker(Protocol):
    """What :class:`DeduplicatingListener` needs of a connection: acknowledging a frame it drops."""

    def ack_message(self, frame: Any) -> None: ...


class UserListenerView:
    """A user listener as one transport shows it: the adapter's own receipts are hidden from it, and it
    hears ``on_disconnected`` once (two of stomp.py's threads may both report the end of a connection)."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self._lock = threading.Lock()
        self._disconnected = False

    def on_receipt(self, frame: Any) -> None:
        if str(frame.headers.get("receipt-id", "")).startswith(OWN_RECEIPT_PREFIX):
            return
        handler = getattr(self.listener, "on_receipt", None)
        if handler is not None:
            handler(frame)

    def on_disconnected(self) -> None:
        with self._lock:
            told, self._disconnected = self._disconnected, True
        handler = getattr(self.listener, "on_disconnected", None)
        if handler is not None and not told:
            handler()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.listener, name)


class TellUserListeners:
    """Passes the supervisor's news (lost, reconnecting, reconnected, failed) to the user's listeners.

    ``call(method, *args)`` calls ``method`` on every user listener.
    """

    _EVENTS = frozenset({"on_connection_lost", "on_reconnecting", "on_reconnected", "on_reconnect_failed"})

    def __init__(self, call: Callable[..., None]) -> None:
        self._call = call

    def __getattr__(self, name: str) -> Any:
        if name not in self._EVENTS:
            raise AttributeError(name)
        return lambda *args: self._call(name, *args)


class DeduplicatingListener:
    """Wraps a listener and drops messages it has already seen (re-sends after a reconnect, redeliveries).

    Messages are keyed by the ``resilientmq-id`` header (falling back to ``message-id``); the last
    ``capacity`` keys are remembered. Give ``connection`` to have duplicates acknowledged for you when
    their subscription uses client acks. ``duplicates`` counts what was dropped. Every other callback goes
    to the wrapped listener unchanged.
    """

    def __init__(
        self, listener: Any, capacity: int = 100_000, connection: MessageAcker | None = None
    ) -> None:
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
