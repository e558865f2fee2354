"""The one place that turns stomp.py's failures and STOMP ERROR frames into resilientmq errors.

ERROR frames go through one table (:data:`ERROR_TABLE`), failures raised by stomp.py or the socket through
one context manager (:func:`stomp_errors`, the shape of httpx's ``map_httpcore_exceptions``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import stomp.exception

from resilientmq.core.errors import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    MessageTooLargeError,
    PermanentDeliveryError,
    ReconnectFailedError,
    ResilientMQError,
)

__all__ = [
    "ERROR_TABLE",
    "ClientIdInUseError",
    "StompAuthenticationError",
    "StompConnectFailedError",
    "classify_error_frame",
    "describe_frame",
    "stomp_errors",
]


class StompConnectFailedError(ReconnectFailedError, stomp.exception.ConnectFailedException):  # type: ignore[misc]
    """``connect()`` gave up: a :class:`ReconnectFailedError` that stomp.py callers catch as before."""


class StompAuthenticationError(AuthenticationError, stomp.exception.ConnectFailedException):  # type: ignore[misc]
    """The broker refused the credentials: an :class:`AuthenticationError` and a ConnectFailedException."""


class ClientIdInUseError(ConnectionLostError):
    """The broker still holds an earlier connection with this client-id (ActiveMQ frees it only once it has
    finished with that connection: the command it was running, then a rollback of its open transactions)."""


@dataclass(frozen=True)
class _Row:
    fragments: tuple[str, ...]
    """Lower-case fragments of the broker's words; empty matches any ERROR."""
    error: type[ResilientMQError]
    says: str
    """How our message starts."""
    connecting: bool | None = None
    """Only during CONNECT (True), only after it (False), or either (None)."""


_TRANSIENT = (
    "already connected",
    "shutting down",
    "temporarily",
    "try again",
    "timeout",
    "timed out",
    "usage manager",
    "store is full",
    "limit reached",
    "resource_error",
    "resource error",
)
_TOO_LARGE = ("frame size", "frame too large", "too large", "max_frame", "maximum command length", "exceeds")
_AUTH = ("password", "credentials", "authenticat", "login", "access refused", "access_refused", "not allowed")
_DESTINATION = (
    "not authorized",
    "not_authorized",
    "unauthorized",
    "forbidden",
    "not_found",
    "not found",
    "no exchange",
    "no queue",
    "unknown destination",
    "invalid destination",
    "illegal destination",
    "does not exist",
    "access denied",
)

ERROR_TABLE: tuple[_Row, ...] = (
    _Row(("already connected",), ClientIdInUseError, "the client-id is still in use", connecting=True),
    _Row(_TRANSIENT, ConnectionLostError, "broker error (transient)"),
    # During CONNECT a refused name or destination means the credentials: retrying cannot help.
    _Row(_AUTH + _DESTINATION, AuthenticationError, "the broker refused the connection", connecting=True),
    _Row((), ConnectionLostError, "the broker refused the connection", connecting=True),
    _Row(_TOO_LARGE, MessageTooLargeError, "the broker refused the message as too large", connecting=False),
    _Row(_DESTINATION, DestinationError, "the broker refused the destination", connecting=False),
    _Row((), PermanentDeliveryError, "the broker rejected the message", connecting=False),
)
"""What an ERROR frame means (ActiveMQ, RabbitMQ, Artemis): the first row that matches decides."""


def describe_frame(frame: Any) -> str:
    """The broker's message: the ``message`` header, with the first line of the body if it adds anything."""
    headers = getattr(frame, "headers", {}) or {}
    message = str(headers.get("message", "")).strip()
    body = getattr(frame, "body", "") or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    first = body.strip().splitlines()[0].strip() if body.strip() else ""
    if first and first not in message and message not in first:
        return f"{message}: {first}" if message else first
    return message or first or "ERROR frame without a message"


# Names a broker quotes in its messages: queue://x, topic://x, /queue/x, 'x', "x", [x].
_NAMES = re.compile(
    r"""(?:\b(?:queue|topic|temp-queue|temp-topic)://\S+)|(?:/\S+)|'[^']*'|"[^"]*"|\[[^\]]*\]"""
)


def _wording(text: str) -> str:
    """The broker's words without the names it quotes, so a destination called ``x.timeout`` cannot
    make a refusal look transient."""
    return _NAMES.sub(" ", text).lower()


def classify_error_frame(frame: Any, *, connecting: bool) -> ResilientMQError:
    """What an ERROR frame means for us. During CONNECT, a refusal of credentials is permanent."""
    text = describe_frame(frame)
    low = _wording(text)
    for row in ERROR_TABLE:
        if row.connecting not in (None, connecting):
            continue
        if not row.fragments or any(k in low for k in row.fragments):
            return row.error(f"{row.says}: {text}")
    raise AssertionError("ERROR_TABLE ends with a row for any frame")  # pragma: no cover


@contextmanager
def stomp_errors(what: str) -> Iterator[None]:
    """Translate a broken connection seen by stomp.py (or the socket) into ConnectionLostError."""
    try:
        yield
    except (stomp.exception.StompException, OSError) as exc:
        raise ConnectionLostError(f"{what}: {type(exc).__name__}: {exc}") from exc
