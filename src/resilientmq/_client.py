"""What the three drop-in clients share: their resilience kwargs and the public methods built on the core.

An adapter builds one :class:`ClientCore` (buffer + supervisor + outbox) from its kwargs and mixes in
:class:`ResilientClientMixin` for ``get_buffer_size()``, ``get_failed_messages()``, ``stats()`` and friends,
so those behave the same on every broker. Attributes are prefixed ``_rmq_`` so they never collide with
the base client's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from resilientmq.buffer import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_MAX_MESSAGES,
    FailedMessage,
    OverflowPolicy,
    open_buffer,
)
from resilientmq.outbox import Outbox, Transport
from resilientmq.policy import ReconnectPolicy, resolve_policy
from resilientmq.supervisor import ConnectionState, Connector, Endpoints, Supervisor

__all__ = ["DEFAULT_DRAIN_TIMEOUT", "ClientCore", "ResilienceOptions", "ResilientClientMixin"]

E = TypeVar("E")

DEFAULT_DRAIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class ResilienceOptions:
    """The resilience kwargs every client accepts, validated once."""

    reconnect_policy: ReconnectPolicy
    buffer_max_messages: int = DEFAULT_MAX_MESSAGES
    buffer_path: str | None = None
    buffer_overflow: OverflowPolicy = OverflowPolicy.BLOCK
    buffer_block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT
    buffer_fsync: bool = False
    drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT

    @classmethod
    def from_kwargs(
        cls,
        *,
        reconnect_tries: int | None = None,
        reconnect_interval_seconds: float | ReconnectPolicy | None = None,
        reconnect_policy: ReconnectPolicy | None = None,
        buffer_max_messages: int = DEFAULT_MAX_MESSAGES,
        buffer_path: str | os.PathLike[str] | None = None,
        buffer_overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        buffer_block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
        buffer_fsync: bool = False,
        drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
    ) -> ResilienceOptions:
        if buffer_path is not None and not isinstance(buffer_path, (str, os.PathLike)):
            raise TypeError(f"buffer_path must be a path or None, got {type(buffer_path).__name__}")
        if drain_timeout is not None and drain_timeout < 0:
            raise ValueError(f"drain_timeout must be >= 0 or None, got {drain_timeout!r}")
        return cls(
            reconnect_policy=resolve_policy(reconnect_policy, reconnect_tries, reconnect_interval_seconds),
            buffer_max_messages=buffer_max_messages,
            buffer_path=None if buffer_path is None else os.fspath(buffer_path),
            buffer_overflow=OverflowPolicy.coerce(buffer_overflow),
            buffer_block_timeout=buffer_block_timeout,
            buffer_fsync=buffer_fsync,
            drain_timeout=drain_timeout,
        )


class ClientCore(Generic[E]):
    """One client's buffer, supervisor and outbox, wired together."""

    def __init__(
        self,
        name: str,
        options: ResilienceOptions,
        connector: Connector[E],
        endpoints: Endpoints[E],
        transport: Transport,
        *,
        probe: Any = None,
        primary_probe_interval: float = 30.0,
        max_batch: int = 500,
        max_in_flight: int = 4,
        retry_policy: ReconnectPolicy | None = None,
        confirm_timeout: float | None = 30.0,
    ) -> None:
        self.name = name
        self.options = options
        self.buffer = open_buffer(
            options.buffer_path,
            options.buffer_max_messages,
            options.buffer_overflow,
            options.buffer_block_timeout,
            fsync=options.buffer_fsync,
        )
        try:
            self.supervisor: Supervisor[E] = Supervisor(
                connector,
                endpoints,
                options.reconnect_policy,
                name=name,
                probe=probe,
                primary_probe_interval=primary_probe_interval,
            )
            self.outbox = Outbox(
                self.buffer,
                transport,
                self.supervisor,
                name=name,
                max_batch=max_batch,
                max_in_flight=max_in_flight,
                retry_policy=retry_policy,
                confirm_timeout=confirm_timeout,
            )
        except BaseException:
            self.buffer.close()
            raise

    def close(self, drain_timeout: float | None) -> bool:
        """Drain (bounded), stop the sender, drop the connection. True when nothing was left."""
        drained = self.outbox.close(drain_timeout)
        self.supervisor.close()
        return drained


class ResilientClientMixin:
    """The public resilience methods, identical on every client."""

    _rmq: ClientCore[Any]

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every accepted message is confirmed (or failed); False on timeout.

        Also False when a message failed since the previous ``flush()``: see ``get_failed_messages()``.
        """
        return self._rmq.outbox.flush(timeout)

    def get_buffer_size(self) -> int:
        """Messages accepted but not yet confirmed by the broker."""
        return len(self._rmq.outbox)

    def get_failed_messages(self) -> list[FailedMessage]:
        """Messages that can never be delivered (or were dropped by ``drop_oldest``), with the reason."""
        return self._rmq.outbox.failed()

    def clear_failed_messages(self) -> int:
        """Forget the failed list once you have dealt with it; returns how many were cleared."""
        return self._rmq.buffer.clear_failed()

    def stats(self) -> dict[str, int]:
        """Counters: accepted, sent, resent, confirmed, failed, dropped, buffered, reconnects, ..."""
        return self._rmq.outbox.stats()

    @property
    def connection_state(self) -> ConnectionState:
        """Where the connection is (CONNECTED, RECONNECTING, ...)."""
        return self._rmq.supervisor.state

    def add_reconnect_listener(self, listener: Any) -> None:
        """Be told of connection loss, reconnect attempts, reconnection and giving up.

        Any object with some of :class:`resilientmq.ReconnectListener`'s methods works.
        """
        self._rmq.supervisor.add_listener(listener)

    def remove_reconnect_listener(self, listener: Any) -> None:
        self._rmq.supervisor.remove_listener(listener)
