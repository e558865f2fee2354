"""What an operator sees of the clients in a process: a weak registry of them (read by
:mod:`resilientmq.metrics`), and structured events, one logger per client.

Every client logs to ``resilientmq.client.<client>``; each record carries its fields as ``extra``
attributes (``event``, ``client``, ``broker`` and the event's own: ``attempt``, ``delay``, ``endpoint``,
``count``, ``reason``, ...), so a JSON formatter (:class:`JsonFormatter`, or any that reads the record's
attributes) ships them as they are. The events are the reconnect listener's (``connection_lost``,
``reconnecting``, ``attempt_failed``, ``connected``, ``reconnected``, ``reconnect_failed``,
``state_changed``) and the outbox's decisions (``resending``, ``isolating``, ``failed``, ``dropped``,
``buffer_full``, ``unanswered``, ``closed_unconfirmed``, ``recovered``, ``not_confirmed``).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "LOGGER_PREFIX",
    "ClientEvents",
    "ClientSnapshot",
    "EventLogListener",
    "JsonFormatter",
    "Observable",
    "register",
    "registered",
    "snapshots",
    "unregister",
]

LOGGER_PREFIX = "resilientmq.client"

# Attributes every LogRecord has; whatever else a record carries came in through ``extra``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class ClientEvents:
    """One client's structured events: logger ``resilientmq.client.<client>``, fields as ``extra``."""

    def __init__(self, client: str, broker: str) -> None:
        self.client = client
        self.broker = broker
        self.logger = logging.getLogger(f"{LOGGER_PREFIX}.{client}")

    def relabel(self, client: str) -> None:
        """Log as ``client`` from now on (the registry's unique label for this client)."""
        if client != self.client:
            self.client = client
            self.logger = logging.getLogger(f"{LOGGER_PREFIX}.{client}")

    def emit(self, level: int, event: str, message: str, *args: object, **fields: Any) -> None:
        """Log ``message % args`` (prefixed with the client's name) with ``event`` and ``fields``."""
        if not self.logger.isEnabledFor(level):
            return  # most events are INFO: cheap when nobody listens
        extra = {"event": event, "client": self.client, "broker": self.broker, **fields}
        self.logger.log(level, "%s: " + message, self.client, *args, extra=extra)


def _error_fields(error: BaseException | None) -> dict[str, Any]:
    if error is None:
        return {"reason": "no reason given", "error_type": None}
    return {"reason": str(error) or type(error).__name__, "error_type": type(error).__name__}


class EventLogListener:
    """A supervisor listener that turns every reconnect event into a record of :class:`ClientEvents`.

    The supervisor delivers it in order with the user's listeners, on its event thread (never under the
    supervisor's lock: a slow log handler cannot stall the reconnect loop). ``on_attempt_failed`` and
    ``on_connected`` are told to this listener only.
    """

    def __init__(self, events: ClientEvents) -> None:
        self._events = events

    def on_connection_lost(self, error: BaseException | None) -> None:
        fields = _error_fields(error)
        reason = fields["reason"]
        self._events.emit(logging.WARNING, "connection_lost", "connection lost: %s", reason, **fields)

    def on_reconnecting(self, attempt: int, delay: float) -> None:
        self._events.emit(
            logging.INFO,
            "reconnecting",
            "reconnect attempt %d in %.2f s",
            attempt,
            delay,
            attempt=attempt,
            delay=delay,
        )

    def on_attempt_failed(self, attempt: int, endpoint: Any, error: BaseException) -> None:
        fields = _error_fields(error)
        self._events.emit(
            logging.INFO,
            "attempt_failed",
            "attempt %d to %s failed: %s",
            attempt,
            endpoint,
            fields["reason"],
            attempt=attempt,
            endpoint=str(endpoint),
            **fields,
        )

    def on_connected(self, endpoint: Any) -> None:
        self._events.emit(logging.INFO, "connected", "connected to %s", endpoint, endpoint=str(endpoint))

    def on_reconnected(self, endpoint: Any) -> None:
        self._events.emit(logging.INFO, "reconnected", "reconnected to %s", endpoint, endpoint=str(endpoint))

    def on_reconnect_failed(self, error: BaseException) -> None:
        fields = _error_fields(error)
        self._events.emit(
            logging.ERROR, "reconnect_failed", "gave up connecting: %s", fields["reason"], **fields
        )

    def on_state_changed(self, old: Any, new: Any) -> None:
        old_state, new_state = getattr(old, "value", str(old)), getattr(new, "value", str(new))
        self._events.emit(
            logging.DEBUG,
            "state_changed",
            "%s -> %s",
            old_state,
            new_state,
            old_state=old_state,
            state=new_state,
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and every ``extra`` field.

    ``logging.getLogger("resilientmq").addHandler(handler)`` with ``handler.setFormatter(JsonFormatter())``
    ships every client's events. Values JSON cannot hold are written as their ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


# -- the registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientSnapshot:
    """One client's numbers at one moment, as the metrics collector reads them."""

    client: str
    broker: str
    counters: Mapping[str, int]
    """The outbox's ``stats()``: accepted, sent, resent, confirmed, failed, dropped, buffered, ..."""
    buffered_bytes: int
    state: str
    """The :class:`~resilientmq.core.supervisor.ConnectionState` value ('connected', 'reconnecting', ...)."""
    seconds_since_confirmation: float
    """Since the latest confirmation, or since the client started when nothing was confirmed yet."""


class Observable(Protocol):
    """What a registered client offers the collector."""

    def snapshot(self) -> ClientSnapshot: ...


_lock = threading.Lock()
_clients: weakref.WeakValueDictionary[str, Observable] = weakref.WeakValueDictionary()


def register(client: Observable, name: str) -> str:
    """Add ``client`` to the registry (weakly: a client nobody holds leaves it); returns its label.

    The label is ``name``, or ``name#2``, ``name#3``... while a live client holds ``name``: two clients
    must never report the same label set.
    """
    with _lock:
        label = name
        for n in itertools.count(2):
            if label not in _clients:
                break
            label = f"{name}#{n}"
        _clients[label] = client
        return label


def unregister(label: str, client: Observable) -> None:
    """Take ``client`` out of the registry (a closed client reports no more). Idempotent."""
    with _lock:
        if _clients.get(label) is client:
            del _clients[label]


def registered() -> list[Observable]:
    """The live clients, in label order."""
    with _lock:
        return [c for _label, c in sorted(_clients.items())]


def snapshots() -> list[ClientSnapshot]:
    """A snapshot of every live client (one that fails to answer is left out, not fatal)."""
    out = []
    for client in registered():
        try:
            out.append(client.snapshot())
        except Exception:
            logging.getLogger(__name__).exception("snapshot of %r failed", client)
    return out
