"""MQ reason codes: the one table that decides what each means to resilientmq, and the one translation.

Every MQI error the adapter meets goes through :func:`translate` (inside :func:`mqi_errors`, the shape of
httpx's ``map_httpcore_exceptions``). Reasons in :data:`REASONS` become resilientmq errors that are *also*
instances of the MQI module's ``MQMIError`` (with ``comp`` and ``reason``), so code written for ``ibmmq``
that catches ``MQMIError`` keeps working; reasons not in the table (``MQRC_NO_MSG_AVAILABLE``,
``MQRC_TRUNCATED_MSG_FAILED``, option errors, ...) are the API's normal answers and pass through unchanged.

The table carries IBM's documented reason numbers itself, so the adapter needs no constants of its own;
the names in messages come from the MQI module in use.
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from resilientmq.core.errors import (
    AuthenticationError,
    ConnectionLostError,
    DestinationError,
    MessageTooLargeError,
    OutcomeUnknownError,
    PermanentDeliveryError,
    ResilientMQError,
    TransactionRolledBackError,
)

__all__ = [
    "REASONS",
    "Disposition",
    "describe",
    "disposition",
    "mq_error",
    "mqi_errors",
    "permanent_failure",
    "translate",
]

_FAILED = 2  # MQCC_FAILED


class Disposition(enum.Enum):
    """What a reason code means for the caller."""

    RECONNECT = "the connection is gone: reconnect, then carry on"
    STALE_HANDLE = "a handle from a connection that broke: reconnect-class after a break, a bug otherwise"
    BACKED_OUT = "the unit of work was backed out"
    OUTCOME_UNKNOWN = "the commit may or may not have happened"
    NOT_AUTHORIZED = "refused: not authorized (credentials on connect, the object otherwise)"
    CONFIG = "the client configuration is wrong (queue manager name, channel, TLS)"
    DESTINATION = "the object is unknown or unusable"
    TOO_LARGE = "the message is larger than the queue or queue manager accepts"
    BACKPRESSURE = "the queue manager cannot take it now (queue full, put inhibited): retry later"


# The one table, by IBM's reason numbers. Reasons not listed pass through as the MQI module's own MQMIError.
REASONS: Mapping[int, Disposition] = {
    # The connection broke, the queue manager went away, or is going: reconnect.
    2009: Disposition.RECONNECT,  # MQRC_CONNECTION_BROKEN
    2059: Disposition.RECONNECT,  # MQRC_Q_MGR_NOT_AVAILABLE
    2161: Disposition.RECONNECT,  # MQRC_Q_MGR_QUIESCING
    2162: Disposition.RECONNECT,  # MQRC_Q_MGR_STOPPING
    2202: Disposition.RECONNECT,  # MQRC_CONNECTION_QUIESCING
    2203: Disposition.RECONNECT,  # MQRC_CONNECTION_STOPPING
    2537: Disposition.RECONNECT,  # MQRC_CHANNEL_NOT_AVAILABLE
    2538: Disposition.RECONNECT,  # MQRC_HOST_NOT_AVAILABLE
    2543: Disposition.RECONNECT,  # MQRC_STANDBY_Q_MGR
    2568: Disposition.RECONNECT,  # MQRC_CONNECTION_NOT_AVAILABLE
    2548: Disposition.RECONNECT,  # MQRC_RECONNECT_FAILED: MQ's own client reconnect gave up
    2556: Disposition.RECONNECT,  # MQRC_RECONNECT_TIMED_OUT
    2223: Disposition.RECONNECT,  # MQRC_Q_MGR_NOT_ACTIVE
    # Handles that died with a connection.
    2018: Disposition.STALE_HANDLE,  # MQRC_HCONN_ERROR
    2019: Disposition.STALE_HANDLE,  # MQRC_HOBJ_ERROR
    # Units of work.
    2003: Disposition.BACKED_OUT,  # MQRC_BACKED_OUT
    2549: Disposition.OUTCOME_UNKNOWN,  # MQRC_CALL_INTERRUPTED
    2124: Disposition.OUTCOME_UNKNOWN,  # MQRC_OUTCOME_PENDING
    2123: Disposition.OUTCOME_UNKNOWN,  # MQRC_OUTCOME_MIXED
    # Permanent: retrying cannot help.
    2035: Disposition.NOT_AUTHORIZED,  # MQRC_NOT_AUTHORIZED
    2063: Disposition.NOT_AUTHORIZED,  # MQRC_SECURITY_ERROR
    2393: Disposition.CONFIG,  # MQRC_SSL_INITIALIZATION_ERROR
    2381: Disposition.CONFIG,  # MQRC_KEY_REPOSITORY_ERROR
    2400: Disposition.CONFIG,  # MQRC_UNSUPPORTED_CIPHER_SUITE
    2398: Disposition.CONFIG,  # MQRC_SSL_PEER_NAME_MISMATCH
    2058: Disposition.CONFIG,  # MQRC_Q_MGR_NAME_ERROR
    2540: Disposition.CONFIG,  # MQRC_UNKNOWN_CHANNEL_NAME
    2539: Disposition.CONFIG,  # MQRC_CHANNEL_CONFIG_ERROR
    2085: Disposition.DESTINATION,  # MQRC_UNKNOWN_OBJECT_NAME
    2082: Disposition.DESTINATION,  # MQRC_UNKNOWN_ALIAS_BASE_Q
    2086: Disposition.DESTINATION,  # MQRC_UNKNOWN_OBJECT_Q_MGR
    2087: Disposition.DESTINATION,  # MQRC_UNKNOWN_REMOTE_Q_MGR
    2196: Disposition.DESTINATION,  # MQRC_UNKNOWN_XMIT_Q
    2197: Disposition.DESTINATION,  # MQRC_UNKNOWN_DEF_XMIT_Q
    2152: Disposition.DESTINATION,  # MQRC_OBJECT_NAME_ERROR
    2001: Disposition.DESTINATION,  # MQRC_ALIAS_BASE_Q_TYPE_ERROR
    2052: Disposition.DESTINATION,  # MQRC_Q_DELETED
    2425: Disposition.DESTINATION,  # MQRC_TOPIC_STRING_ERROR
    2030: Disposition.TOO_LARGE,  # MQRC_MSG_TOO_BIG_FOR_Q
    2031: Disposition.TOO_LARGE,  # MQRC_MSG_TOO_BIG_FOR_Q_MGR
    2218: Disposition.TOO_LARGE,  # MQRC_MSG_TOO_BIG_FOR_CHANNEL
    # The queue manager is up but cannot take the message now.
    2053: Disposition.BACKPRESSURE,  # MQRC_Q_FULL
    2051: Disposition.BACKPRESSURE,  # MQRC_PUT_INHIBITED
    2192: Disposition.BACKPRESSURE,  # MQRC_STORAGE_MEDIUM_FULL
    2102: Disposition.BACKPRESSURE,  # MQRC_RESOURCE_PROBLEM
    2071: Disposition.BACKPRESSURE,  # MQRC_STORAGE_NOT_AVAILABLE
}

# The CONFIG reasons that are about TLS: the credentials side, so AuthenticationError.
_TLS = frozenset({2393, 2381, 2400, 2398})


def disposition(reason: int, *, after_break: bool = False) -> Disposition | None:
    """What ``reason`` means; stale handles count as a broken connection only ``after_break``."""
    found = REASONS.get(reason)
    if found is Disposition.STALE_HANDLE:
        return Disposition.RECONNECT if after_break else None
    return found


def _reason_name(mqi: Any, reason: int) -> str | None:
    """The mnemonic the MQI module gives ``reason`` (``2009`` -> ``"MQRC_CONNECTION_BROKEN"``), if any."""
    try:
        said = str(mqi.MQMIError(_FAILED, reason).error_as_string())
    except Exception:  # an MQI module without ibmmq's error_as_string
        return None
    name = said.rsplit(" ", 1)[-1]
    return name if name.startswith("MQRC") else None


def describe(reason: int, mqi: Any = None) -> str:
    """``MQ reason 2009 (MQRC_CONNECTION_BROKEN)``, named by ``mqi`` when it can."""
    name = _reason_name(mqi, reason) if mqi is not None else None
    return f"MQ reason {reason} ({name})" if name else f"MQ reason {reason}"


def translate(
    exc: BaseException,
    mqi: Any,
    what: str,
    *,
    after_break: bool = False,
    connecting: bool = False,
    committing: bool = False,
) -> BaseException:
    """The exception to raise for ``exc``, met while doing ``what``.

    ``connecting``: an ``MQRC_NOT_AUTHORIZED`` means bad credentials. ``committing``: a broken connection
    means the queue manager backed the unit of work out. Returns ``exc`` itself when it is not ours to
    translate.
    """
    original: BaseException = exc
    if isinstance(exc, mqi.PYIFError) and "not connected" in str(exc):
        return ConnectionLostError(f"{what}: not connected to the queue manager")
    if not isinstance(exc, mqi.MQMIError):
        return original
    reason, comp = int(getattr(exc, "reason", 0)), int(getattr(exc, "comp", 0))
    found = disposition(reason, after_break=after_break)
    if found is None or found is Disposition.BACKPRESSURE:
        return original
    cls: type[ResilientMQError]
    detail = ""
    if found is Disposition.RECONNECT:
        if committing:
            cls = TransactionRolledBackError
            detail = "; the connection broke, so the queue manager backed the unit of work out"
        else:
            cls = ConnectionLostError
    elif found is Disposition.BACKED_OUT:
        cls = TransactionRolledBackError
    elif found is Disposition.OUTCOME_UNKNOWN:
        cls = OutcomeUnknownError
        detail = "; the unit of work may or may not be committed: check before replaying it"
    elif found is Disposition.NOT_AUTHORIZED:
        cls = AuthenticationError if connecting else DestinationError
        detail = "; check the user id and password" if connecting else "; the user may not use this object"
    elif found is Disposition.CONFIG:
        cls = AuthenticationError if reason in _TLS else DestinationError
    elif found is Disposition.TOO_LARGE:
        cls = MessageTooLargeError
    else:
        cls = DestinationError
    return mq_error(cls, mqi, f"{what}: {describe(reason, mqi)}{detail}", comp, reason)


def _never() -> bool:
    return False


@contextlib.contextmanager
def mqi_errors(
    mqi: Any,
    what: str,
    *,
    after_break: Callable[[], bool] = _never,
    committing: bool = False,
    lost: Callable[[BaseException], None] | None = None,
) -> Iterator[None]:
    """Translate the MQI errors raised inside (the one place); ``lost`` hears of a broken connection.

    ``after_break`` is asked when an error comes: whether the connection is already known to be gone
    (then stale handles mean the same). Errors already translated pass through untouched.
    """
    try:
        yield
    except ResilientMQError:
        raise
    except (mqi.MQMIError, mqi.PYIFError) as exc:
        broken = after_break()
        err = translate(exc, mqi, what, after_break=broken, committing=committing)
        if err is exc:
            raise
        reason = getattr(exc, "reason", None)
        gone = isinstance(err, ConnectionLostError) or (
            isinstance(reason, int) and disposition(reason, after_break=broken) is Disposition.RECONNECT
        )
        if gone and lost is not None:
            lost(err)
        raise err from exc


def mq_error(cls: type[ResilientMQError], mqi: Any, message: str, comp: int, reason: int) -> ResilientMQError:
    """An instance of ``cls`` that is also the MQI module's ``MQMIError`` (``comp``, ``reason``)."""
    err = _dual_class(cls, mqi.MQMIError)(message)
    err.comp, err.reason = comp, reason  # type: ignore[attr-defined]
    return err


def permanent_failure(exc: BaseException, what: str, mqi: Any = None) -> ResilientMQError:
    """A per-message failure record for an MQI error that is not in the table (options, format, ...)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, int):
        return PermanentDeliveryError(f"{what}: {describe(reason, mqi)}")
    return PermanentDeliveryError(f"{what}: {exc}")


_dual_lock = threading.Lock()
_dual_classes: dict[tuple[type, type], type] = {}


def _dual_class(ours: type[ResilientMQError], theirs: type) -> type[ResilientMQError]:
    with _dual_lock:
        cls = _dual_classes.get((ours, theirs))
        if cls is None:

            def __init__(self: Any, message: str) -> None:
                Exception.__init__(self, message)

            def __str__(self: Any) -> str:
                return str(self.args[0])

            cls = type(
                ours.__name__,
                (ours, theirs),
                {"__init__": __init__, "__str__": __str__, "__module__": ours.__module__},
            )
            cls.__qualname__ = ours.__qualname__
            _dual_classes[(ours, theirs)] = cls
        return cls
