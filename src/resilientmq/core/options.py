"""The resilience keyword arguments every client takes: declared once, documented once, validated once.

A facade takes them as ``**resilience: Unpack[ResilienceKwargs]`` (or picks them out of a base library's
own ``**configs`` with :meth:`ResilienceOptions.split`) and validates them with
:meth:`ResilienceOptions.from_kwargs`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from .buffer import DEFAULT_BLOCK_TIMEOUT, DEFAULT_MAX_MESSAGES, OverflowPolicy
from .policy import ReconnectPolicy, resolve_policy

__all__ = ["DEFAULT_DRAIN_TIMEOUT", "RESILIENCE_KWARGS", "ResilienceKwargs", "ResilienceOptions"]

DEFAULT_DRAIN_TIMEOUT = 30.0


class ResilienceKwargs(TypedDict, total=False):
    """The resilience keyword arguments of every resilientmq client.

    ``reconnect_tries``
        Reconnect attempts after a connection that was up is lost (default 10; -1 = forever).
    ``reconnect_interval_seconds``
        The longest wait between two attempts (default 60): waits start at 1 s and double up to it.
    ``reconnect_policy``
        A full :class:`~resilientmq.ReconnectPolicy` instead of the two above.
    ``buffer_max_messages``
        The outbox's hard bound in messages (default 10,000).
    ``buffer_max_bytes``
        The outbox's hard bound in bytes of message bodies (default None: no bound in bytes).
    ``buffer_path``
        A file for a durable outbox (default None: in memory). One process at a time owns a path.
    ``buffer_overflow``
        When the outbox is full: ``"block"`` (the default: wait up to ``buffer_block_timeout``, then raise
        ``BufferFullError``), ``"raise"`` at once, or ``"drop_oldest"`` (each dropped message is counted
        and kept in ``get_failed_messages()``).
    ``buffer_block_timeout``
        How long ``"block"`` waits for room, in seconds (default 30; None = for ever).
    ``buffer_fsync``
        Also survive power loss: the durable outbox syncs to disk before ``send()`` returns.
    ``drain_timeout``
        How long ``disconnect()``/``close()`` wait for confirmations, in seconds (default 30).
    """

    reconnect_tries: int
    reconnect_interval_seconds: float | ReconnectPolicy
    reconnect_policy: ReconnectPolicy
    buffer_max_messages: int
    buffer_max_bytes: int | None
    buffer_path: str | os.PathLike[str] | None
    buffer_overflow: OverflowPolicy | str
    buffer_block_timeout: float | None
    buffer_fsync: bool
    drain_timeout: float | None


RESILIENCE_KWARGS: frozenset[str] = frozenset(ResilienceKwargs.__annotations__)


@dataclass(frozen=True)
class ResilienceOptions:
    """The resilience kwargs, validated."""

    reconnect_policy: ReconnectPolicy
    buffer_max_messages: int = DEFAULT_MAX_MESSAGES
    buffer_max_bytes: int | None = None
    buffer_path: str | None = None
    buffer_overflow: OverflowPolicy = OverflowPolicy.BLOCK
    buffer_block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT
    buffer_fsync: bool = False
    drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT

    @classmethod
    def from_kwargs(
        cls, kwargs: Mapping[str, Any], *, owner: str = "client", defaults: Mapping[str, Any] | None = None
    ) -> ResilienceOptions:
        """Validate ``kwargs`` (a :class:`ResilienceKwargs`); ``defaults`` are an adapter's own defaults
        for some of them. Unknown names raise ``TypeError`` naming ``owner``, as Python would."""
        unknown = sorted(set(kwargs) - RESILIENCE_KWARGS)
        if unknown:
            raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}")
        kw = {**(defaults or {}), **kwargs}
        buffer_path = kw.get("buffer_path")
        if buffer_path is not None and not isinstance(buffer_path, (str, os.PathLike)):
            raise TypeError(f"buffer_path must be a path or None, got {type(buffer_path).__name__}")
        drain_timeout = kw.get("drain_timeout", DEFAULT_DRAIN_TIMEOUT)
        if drain_timeout is not None and drain_timeout < 0:
            raise ValueError(f"drain_timeout must be >= 0 or None, got {drain_timeout!r}")
        max_bytes = kw.get("buffer_max_bytes")
        if max_bytes is not None and (
            not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1
        ):
            raise ValueError(f"buffer_max_bytes must be a positive int or None, got {max_bytes!r}")
        fsync = kw.get("buffer_fsync", False)
        if not isinstance(fsync, bool):
            raise TypeError(f"buffer_fsync must be a bool, got {type(fsync).__name__}")
        return cls(
            reconnect_policy=resolve_policy(
                kw.get("reconnect_policy"), kw.get("reconnect_tries"), kw.get("reconnect_interval_seconds")
            ),
            buffer_max_messages=kw.get("buffer_max_messages", DEFAULT_MAX_MESSAGES),
            buffer_max_bytes=max_bytes,
            buffer_path=None if buffer_path is None else os.fspath(buffer_path),
            buffer_overflow=OverflowPolicy.coerce(kw.get("buffer_overflow", OverflowPolicy.BLOCK)),
            buffer_block_timeout=kw.get("buffer_block_timeout", DEFAULT_BLOCK_TIMEOUT),
            buffer_fsync=fsync,
            drain_timeout=drain_timeout,
        )

    @classmethod
    def split(
        cls, kwargs: Mapping[str, Any], *, owner: str = "client", defaults: Mapping[str, Any] | None = None
    ) -> tuple[ResilienceOptions, dict[str, Any]]:
        """Pick the resilience kwargs out of a mixed ``**kwargs``; returns them validated, and the rest."""
        ours = {k: v for k, v in kwargs.items() if k in RESILIENCE_KWARGS}
        rest = {k: v for k, v in kwargs.items() if k not in RESILIENCE_KWARGS}
        return cls.from_kwargs(ours, owner=owner, defaults=defaults), rest
