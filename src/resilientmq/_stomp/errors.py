"""The one place that turns stomp.py's failures and STOMP ERROR frames into resilientmq errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stomp.exception

from resilientmq.core.errors import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    MessageTooLargeError,
    PermanentDeliveryError,
    ResilientMQError,
)

__all__ = ["classify_error_frame", "describe_frame", "stomp_errors"]

# Lower-case fragments of broker ERROR messages (ActiveMQ, RabbitMQ, Artemis), in the order they are tried.
# They are matched against the message with destination and other names taken out (see _wording).
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
    if any(k in low for k in _TRANSIENT):
        return ConnectionLostError(f"broker error (transient): {text}")
    if connecting:
        if any(k in low for k in _AUTH + _DESTINATION):
            return AuthenticationError(f"the broker refused the connection: {text}")
        return ConnectionLostError(f"the broker refused the connection: {text}")
    if any(k in low for k in _TOO_LARGE):
        return MessageTooLargeError(f"the broker refused the message as too large: {text}")
    if any(k in low for k in _DESTINATION):
        return DestinationError(f"the broker refused the destination: {text}")
    return PermanentDeliveryError(f"the broker rejected the message: {text}")


@contextmanager
def stomp_errors(what: str) -> Iterator[None]:
    """Translate a broken connection seen by stomp.py (or the socket) into ConnectionLostError."""
    try:
        yield
    except (stomp.exception.StompException, OSError) as exc:
        raise ConnectionLostError(f"{what}: {type(exc).__name__}: {exc}") from exc
