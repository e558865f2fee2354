"""STOMP 1.1 frame encoding for the batched send path (one socket write per batch)."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MESSAGE_ID_HEADER", "encode_frame"]

MESSAGE_ID_HEADER = "resilientmq-id"
"""The header carrying each message's stable id, the same on every re-send (consumers de-duplicate by it)."""

_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"})
_NEEDS_ESCAPE = re.compile(r"[\\\n:]")


def _escape(text: str) -> str:
    # Most header values need no escaping; the search is cheaper than an unconditional translate.
    return text.translate(_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def encode_frame(command: str, headers: Mapping[str, object], body: bytes = b"") -> bytes:
    """One frame, headers escaped as STOMP 1.1 requires, ``content-length`` set for any body."""
    parts = [command, "\n"]
    for key, value in headers.items():
        if value is None or key == "content-length":
            continue
        parts.append(f"{_escape(str(key))}:{_escape(str(value))}\n")
    if body:
        parts.append(f"content-length:{len(body)}\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8") + body + b"\x00"
