"""MQ messages to buffer headers and back: the MQMD, the put options and the message properties.

A buffered put must be replayed as it was asked for, possibly by another process (``buffer_path``), so
the headers hold plain JSON: byte fields are base64-encoded, properties carry their MQ type.
"""

from __future__ import annotations

import base64
import itertools
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from resilientmq.core.errors import InvalidMessageError

from .settings import text

__all__ = [
    "adjusted_expiry",
    "decode_value",
    "encode_fields",
    "encode_value",
    "md_fields",
    "new_msg_id",
    "od_fields",
    "property_type_of",
    "read_handle_properties",
    "restore_md",
]


def encode_value(value: Any) -> Any:
    """A JSON-safe form of an MQI structure field (bytes become ``{"b64": ...}``)."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InvalidMessageError(f"cannot buffer a field of type {type(value).__name__}: {value!r}")


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


_defaults: dict[type, dict[str, Any]] = {}


def md_fields(md: Any) -> dict[str, Any]:
    """The MQMD fields that differ from a new MD's, JSON-safe (bookkeeping fields such as ``_StrucId`` are
    left out; :func:`restore_md` starts from a new MD, so nothing is lost)."""
    return encode_fields(md.get(), type(md))


def encode_fields(values: Mapping[str, Any], md_class: type) -> dict[str, Any]:
    """``md_fields`` of the values ``MD.get()`` returned earlier for an MD of ``md_class``."""
    defaults = _defaults.get(md_class)
    if defaults is None:
        defaults = _defaults[md_class] = md_class().get()
    return {
        k: encode_value(v) for k, v in values.items() if not k.startswith("_") and defaults.get(k, k) != v
    }


def od_fields(od: Any) -> dict[str, str]:
    """The fields of an MQI ``OD`` a buffered put or put1 is replayed with."""
    return {
        "ObjectName": text(od.ObjectName),
        "ObjectQMgrName": text(od.ObjectQMgrName),
        "AlternateUserId": text(getattr(od, "AlternateUserId", b"")),
    }


def restore_md(mqi: Any, fields: Mapping[str, Any]) -> Any:
    """A fresh MQI ``MD`` carrying ``fields`` (fields this MQI's MD lacks are skipped)."""
    md = mqi.MD()
    for name, value in fields.items():
        if hasattr(md, name):
            setattr(md, name, decode_value(value))
    return md


class _MsgIds:
    """24-byte MsgIds: a marker, a random per-process prefix and a counter (cheap, unique, fork-safe)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = b"RMQ" + os.urandom(13)
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            n = next(self._counter)
        return self._prefix + n.to_bytes(8, "big")


new_msg_id = _MsgIds()
"""A 24-byte MsgId assigned when a message is accepted, so re-sends carry the same id."""


def is_none_id(value: Any) -> bool:
    return not (value or b"").strip(b"\0")


def adjusted_expiry(expiry: int, accepted_at: float, now: float | None = None) -> int | None:
    """MQ's Expiry counts tenths of a second from the put: subtract the time spent in the buffer.

    None when the message expired while it waited (MQ would have discarded it). Zero or negative values
    (``MQEI_UNLIMITED``) mean no expiry and are returned unchanged.
    """
    if expiry <= 0:
        return expiry
    waited = int(((time.time() if now is None else now) - accepted_at) * 10)
    left = expiry - max(waited, 0)
    return left if left > 0 else None


def property_type_of(mqi: Any, value: Any) -> int:
    """The MQTYPE a Python value is stored with (ints widen to INT64, floats to FLOAT64)."""
    c = mqi.CMQC
    if value is None:
        return int(c.MQTYPE_NULL)
    if isinstance(value, bool):
        return int(c.MQTYPE_BOOLEAN)
    if isinstance(value, int):
        return int(c.MQTYPE_INT64)
    if isinstance(value, float):
        return int(c.MQTYPE_FLOAT64)
    if isinstance(value, bytes):
        return int(c.MQTYPE_BYTE_STRING)
    if isinstance(value, str):
        return int(c.MQTYPE_STRING)
    raise InvalidMessageError(
        f"message property values must be str, bytes, int, float, bool or None, got {value!r}"
    )


def properties_from_mapping(mqi: Any, properties: Mapping[str, Any]) -> list[list[Any]]:
    """``{"name": value}`` or ``{"name": (value, MQTYPE_*)}`` to ``[[name, value, type], ...]``."""
    out: list[list[Any]] = []
    for name, spec in properties.items():
        if not isinstance(name, str) or not name:
            raise InvalidMessageError(f"message property names must be non-empty strings, got {name!r}")
        value, ptype = spec if isinstance(spec, tuple) else (spec, property_type_of(mqi, spec))
        out.append([name, encode_value(value), int(ptype)])
    return out


def read_handle_properties(mqi: Any, hconn: Any, hmsg: int) -> list[list[Any]]:
    """Every property of message handle ``hmsg`` (MQINQMP with the ``%`` wildcard), as buffer records."""
    c = mqi.CMQC
    handle = mqi.MessageHandle(dup_handle=hmsg)
    handle.properties.conn_handle = hconn
    out: list[list[Any]] = []
    options = c.MQIMPO_INQ_FIRST
    length: int | None = None
    while True:
        try:
            value, name = handle.properties.get("%", impo_options=options, max_value_length=length)
        except mqi.MQMIError as exc:
            if exc.reason == c.MQRC_PROPERTY_NOT_AVAILABLE:
                return out
            if exc.reason == c.MQRC_PROPERTY_VALUE_TOO_BIG and getattr(exc, "data_length", 0):
                # Ask again for the same property, with room for its value.
                length, options = int(exc.data_length), c.MQIMPO_INQ_PROP_UNDER_CURSOR
                continue
            raise
        length = None
        key = name.decode("utf-8") if isinstance(name, bytes) else str(name)
        out.append([key, encode_value(value), property_type_of(mqi, value)])
        options = c.MQIMPO_INQ_NEXT
