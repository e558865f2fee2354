"""What every client shares: one buffer, supervisor and outbox wired together, and the public methods
built on them.

A facade builds one :class:`ClientCore` from its :class:`~resilientmq.core.options.ResilienceOptions` and
its adapter's :class:`~resilientmq.core.session.Connector`, and mixes in :class:`ResilientClientMixin` for
``flush()``, ``get_buffer_size()``, ``get_failed_messages()``, ``stats()`` and friends, so those behave the
same on every broker. Facade attributes are prefixed ``_rmq_`` so they never collide with the base client's.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .buffer import FailedMessage, open_buffer
from .options import ResilienceOptions
from .outbox import Outbox
from .policy import ReconnectPolicy
from .session import Connector, Session
from .supervisor import ConnectionState, Endpoints, Supervisor

__all__ = ["ClientCore", "ResilientClientMixin"]

E = TypeVar("E")
S = TypeVar("S", bound=Session)


class ClientCore(Generic[E, S]):
    """One client's buffer, supervisor and outbox."""

    def __init__(
        self,
        name: str,
        options: ResilienceOptions,
        connector: Connector[E, S],
        endpoints: Endpoints[E],
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
            max_bytes=options.buffer_max_bytes,
        )
        try:
            self.supervisor: Supervisor[E, S] = Supervisor(
                connector,
                endpoints,
                options.reconnect_policy,
                name=name,
                probe=probe,
                primary_probe_interval=primary_probe_interval,
            )
            self.outbox = Outbox(
                self.buffer,
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

    _rmq: ClientCore[Any, Any]

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
