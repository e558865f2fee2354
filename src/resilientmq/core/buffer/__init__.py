"""The outbox: messages accepted by ``send()`` and not yet confirmed by the broker.

Two implementations of one :class:`Buffer` protocol: :class:`MemoryBuffer` (the default; survives broker
outages) and :class:`LmdbBuffer` (``buffer_path=``; also survives process crashes, and with
``buffer_fsync=True`` power loss). :func:`read_buffer_file` reads a durable file no client holds without
changing it (``resilientmq buffer``).
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
    new_message_id,
)
from .lmdb import BufferFile, FileVerdict, LmdbBuffer, read_buffer_file
from .memory import MemoryBuffer

__all__ = [
    "DEFAULT_BLOCK_TIMEOUT",
    "DEFAULT_MAX_MESSAGES",
    "BoundedBuffer",
    "Buffer",
    "BufferFile",
    "Envelope",
    "FailedMessage",
    "FileVerdict",
    "LmdbBuffer",
    "MemoryBuffer",
    "NewMessage",
    "OverflowPolicy",
    "new_message_id",
    "open_buffer",
    "read_buffer_file",
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
    """The buffer the adapters' ``buffer_*`` kwargs ask for: durable (LMDB) when a path is given.

    ``max_bytes`` bounds the pending bodies' bytes as ``buffer_max_messages`` bounds their number;
    ``fsync`` applies to a durable buffer only.
    """
    if buffer_path is None:
        return MemoryBuffer(buffer_max_messages, overflow, block_timeout, max_bytes=max_bytes)
    return LmdbBuffer(
        buffer_path, buffer_max_messages, overflow, block_timeout, fsync=fsync, max_bytes=max_bytes
    )
