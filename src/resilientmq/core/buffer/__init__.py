"""The outbox: messages accepted by ``send()`` and not yet confirmed by the broker.

Two implementations of one :class:`Buffer` protocol: :class:`MemoryBuffer` (the default; survives broker
outages) and :class:`SqliteBuffer` (``buffer_path=``; also survives process crashes).
"""

from __future__ import annotations

import os

from ._base import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_MAX_MESSAGES,
    BoundedBuffer,
    Buffer,
    Envelope,
    FailedMessage,
    NewMessage,
    OverflowPolicy,
)
from .memory import MemoryBuffer
from .sqlite import SqliteBuffer

__all__ = [
    "DEFAULT_BLOCK_TIMEOUT",
    "DEFAULT_MAX_MESSAGES",
    "BoundedBuffer",
    "Buffer",
    "Envelope",
    "FailedMessage",
    "MemoryBuffer",
    "NewMessage",
    "OverflowPolicy",
    "SqliteBuffer",
    "open_buffer",
]


def open_buffer(
    buffer_path: str | os.PathLike[str] | None = None,
    buffer_max_messages: int = DEFAULT_MAX_MESSAGES,
    overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
    block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
    *,
    fsync: bool = False,
    max_bytes: int | None = None,
) -> BoundedBuffer:
    """The buffer the adapters' ``buffer_*`` kwargs ask for: durable when a path is given."""
    if max_bytes is not None:
        raise NotImplementedError("buffer_max_bytes arrives with the LMDB outbox")
    if buffer_path is None:
        return MemoryBuffer(buffer_max_messages, overflow, block_timeout)
    return SqliteBuffer(buffer_path, buffer_max_messages, overflow, block_timeout, fsync=fsync)
