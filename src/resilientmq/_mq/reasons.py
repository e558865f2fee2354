"""MQ reason codes: the one table that decides what each means to resilientmq, and the one translation.

Every MQI error the adapter meets goes through :func:`translate`. Reasons in :data:`REASONS` become
resilientmq errors that are *also* instances of the MQI module's ``MQMIError`` (with ``comp`` and
``reason``), so code written for ``ibmmq`` that catches ``MQMIError`` keeps working; reasons not in the
table (``MQRC_NO_MSG_AVAILABLE``, ``MQRC_TRUNCATED_MSG_FAILED``, option errors, ...) are the API's normal
answers and pass through unchanged.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
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

from .cmqc import CMQC as C
from .cmqc import reason_name

__all__ = ["REASONS", "Disposition", "disposition", "translate"]


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


# The one table. Reasons not listed pass through as the MQI module's own MQMIError.
REASONS: Mapping[int, Disposition] = {
    # The connection broke, the queue manager went away, or is going: reconnect.
    C.MQRC_CONNECTION_BROKEN: Disposition.RECONNECT,  # 2009
    C.MQRC_Q_MGR_NOT_AVAILABLE: Disposition.RECONNECT,  # 2059
    C.MQRC_Q_MGR_QUIESCING: Disposition.RECONNECT,  # 2161
    C.MQRC_Q_MGR_STOPPING: Disposition.RECONNECT,  # 2162
    C.MQRC_CONNECTION_QUIESCING: Disposition.RECONNECT,  # 2202
    C.MQRC_CONNECTION_STOPPING: Disposition.RECONNECT,  # 2203
    C.MQRC_CHANNEL_NOT_AVAILABLE: Disposition.RECONNECT,  # 2537
    C.MQRC_HOST_NOT_AVAILABLE: Disposition.RECONNECT,  # 2538
    C.MQRC_STANDBY_Q_MGR: Disposition.RECONNECT,  # 2543
    C.MQRC_CONNECTION_NOT_AVAILABLE: Disposition.RECONNECT,  # 2568
    C.MQRC_RECONNECT_FAILED: Disposition.RECONNECT,  # 2548: MQ's own client reconnect gave up
    C.MQRC_RECONNECT_TIMED_OUT: Disposition.RECONNECT,  # 2556
    C.MQRC_Q_MGR_NOT_ACTIVE: Disposition.RECONNECT,  # 2223
    # Handles that died with a connection.
    C.MQRC_HCONN_ERROR: Disposition.STALE_HANDLE,  # 2018
    C.MQRC_HOBJ_ERROR: Disposition.STALE_HANDLE,  # 2019
    # Units of work.
    C.MQRC_BACKED_OUT: Disposition.BACKED_OUT,  # 2003
    C.MQRC_CALL_INTERRUPTED: Disposition.OUTCOME_UNKNOWN,  # 2549
    C.MQRC_OUTCOME_PENDING: Disposition.OUTCOME_UNKNOWN,  # 2124
    C.MQRC_OUTCOME_MIXED: Disposition.OUTCOME_UNKNOWN,  # 2123
    # Permanent: retrying cannot help.
    C.MQRC_NOT_AUTHORIZED: Disposition.NOT_AUTHORIZED,  # 2035
    C.MQRC_SECURITY_ERROR: Disposition.NOT_AUTHORIZED,  # 2063
    C.MQRC_SSL_INITIALIZATION_ERROR: Disposition.CONFIG,  # 2393
    C.MQRC_KEY_REPOSITORY_ERROR: Disposition.CONFIG,  # 2381
    C.MQRC_UNSUPPORTED_CIPHER_SUITE: Disposition.CONFIG,  # 2400
    C.MQRC_SSL_PEER_NAME_MISMATCH: Disposition.CONFIG,  # 2398
    C.MQRC_Q_MGR_NAME_ERROR: Disposition.CONFIG,  # 2058
    C.MQRC_UNKNOWN_CHANNEL_NAME: Disposition.CONFIG,  # 2540
    C.MQRC_CHANNEL_CONFIG_ERROR: Disposition.CONFIG,  # 2539
    C.MQRC_UNKNOWN_OBJECT_NAME: Disposition.DESTINATION,  # 2085
    C.MQRC_UNKNOWN_ALIAS_BASE_Q: Disposition.DESTINATION,  # 2082
    C.MQRC_UNKNOWN_OBJECT_Q_MGR: Disposition.DESTINATION,  # 2086
    C.MQRC_UNKNOWN_REMOTE_Q_MGR: Disposition.DESTINATION,  # 2087
    C.MQRC_UNKNOWN_XMIT_Q: Disposition.DESTINATION,  # 2196
    C.MQRC_UNKNOWN_DEF_XMIT_Q: Disposition.DESTINATION,  # 2197
    C.MQRC_OBJECT_NAME_ERROR: Disposition.DESTINATION,  # 2152
    C.MQRC_ALIAS_BASE_Q_TYPE_ERROR: Disposition.DESTINATION,  # 2001
    C.MQRC_Q_DELETED: Disposition.DESTINATION,  # 2052
    C.MQRC_TOPIC_STRING_ERROR: Disposition.DESTINATION,  # 2425
    C.MQRC_MSG_TOO_BIG_FOR_Q: Disposition.TOO_LARGE,  # 2030
    C.MQRC_MSG_TOO_BIG_FOR_Q_MGR: Disposition.TOO_LARGE,  # 2031
    C.MQRC_MSG_TOO_BIG_FOR_CHANNEL: Disposition.TOO_LARGE,  # 2218
    # The queue manager is up but cannot take the message now.
    C.MQRC_Q_FULL: Disposition.BACKPRESSURE,  # 2053
    C.MQRC_PUT_INHIBITED: Disposition.BACKPRESSURE,  # 2051
    C.MQRC_STORAGE_MEDIUM_FULL: Disposition.BACKPRESSURE,  # 2192
    C.MQRC_RESOURCE_PROBLEM: Disposition.BACKPRESSURE,  # 2102
    C.MQRC_STORAGE_NOT_AVAILABLE: Disposition.BACKPRESSURE,  # 2071
}


def disposition(reason: int, *, after_break: bool = False) -> Disposition | None:
    """What ``reason`` means; stale handles count as a broken connection only ``after_break``."""
    found = REASONS.get(reason)
    if found is Disposition.STALE_HANDLE:
        return Disposition.RECONNECT if after_break else None
    return found


def describe(reason: int) -> str:
    name = reason_name(reason)
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
    return mq_error(cls, mqi, f"{what}: {describe(reason)}{detail}", comp, reason)


_TLS = frozenset(
    {
        C.MQRC_SSL_INITIALIZATION_ERROR,
        C.MQRC_KEY_REPOSITORY_ERROR,
        C.MQRC_UNSUPPORTED_CIPHER_SUITE,
        C.MQRC_SSL_PEER_NAME_MISMATCH,
    }
)


def mq_error(cls: type[ResilientMQError], mqi: Any, message: str, comp: int, reason: int) -> ResilientMQError:
    """An instance of ``cls`` that is also the MQI module's ``MQMIError`` (``comp``, ``reason``)."""
    err = _dual_class(cls, mqi.MQMIError)(message)
    err.comp, err.reason = comp, reason  # type: ignore[attr-defined]
    return err


def permanent_failure(exc: BaseException, what: str) -> ResilientMQError:
    """A per-message failure record for an MQI error that is not in the table (options, format, ...)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, int):
        return PermanentDeliveryError(f"{what}: {describe(reason)}")
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
