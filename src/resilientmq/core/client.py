"""What every client shares: one buffer, supervisor and outbox wired together, and the public methods
built on them.

A facade builds one :class:`ClientCore` from its :class:`~resilientmq.core.options.ResilienceOptions` and
its adapter's :class:`~resilientmq.core.session.Connector`, and mixes in :class:`ResilientClientMixin` for
``flush()``, ``get_buffer_size()``, ``get_failed_messages()``, ``stats()`` and friends, so those behave the
same on every broker. Facade attributes are prefixed ``_rmq_`` so they never collide with the base client's.

Every core registers itself (weakly) in :mod:`resilientmq.core.telemetry` while it is open, which is how
:mod:`resilientmq.metrics` finds every client in the process, and logs its events to
``resilientmq.client.<name>``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from . import telemetry
from .buffer import FailedMessage, open_buffer
from .options import ResilienceOptions
from .outbox import Outbox
from .policy import ReconnectPolicy
from .session import Connector, Session
from .supervisor import ConnectionState, Endpoints, Supervisor

__all__ = ["ClientCore", "ResilientClientMixin", "close_at_exit"]

E = TypeVar("E")
S = TypeVar("S", bound=Session)


def _adapter_package(connector: object) -> str:
    """'stomp' for a connector from ``resilientmq.stomp.session``; a foreign one's top-level package."""
    parts = type(connector).__module__.split(".")
    return parts[1] if parts[0] == "resilientmq" and len(parts) > 1 else parts[0]


class ClientCore(Generic[E, S]):
    """One client's buffer, supervisor and outbox.

    ``broker`` labels this client's metrics and events (default: the adapter package the connector comes
    from: 'stomp', 'kafka', 'confluent', 'ibmmq'). ``label`` is ``name`` made unique among the live
    clients of the process (``name#2`` for a second one).
    """

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
        broker: str | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.broker = broker if broker is not None else _adapter_package(connector)
        self.started_at = time.monotonic()
        self.buffer = open_buffer(
            options.buffer_path,
            options.buffer_max_messages,
            options.buffer_overflow,
            options.buffer_block_timeout,
            fsync=options.buffer_fsync,
            max_bytes=options.buffer_max_bytes,
        )
        self.events = telemetry.ClientEvents(name, self.broker)
        try:
            self.supervisor: Supervisor[E, S] = Supervisor(
                connector,
                endpoints,
                options.reconnect_policy,
                name=name,
                probe=probe,
                primary_probe_interval=primary_probe_interval,
                telemetry=telemetry.EventLogListener(self.events),
            )
            self.outbox = Outbox(
                self.buffer,
                self.supervisor,
                name=name,
                max_batch=max_batch,
                max_in_flight=max_in_flight,
                retry_policy=retry_policy,
                confirm_timeout=confirm_timeout,
                events=self.events,
            )
        except BaseException:
            self.buffer.close()
            raise
        # Registered once complete (a collector may read it at once); the label is unique in the process.
        self.label = telemetry.register(self, name)
        self.events.relabel(self.label)

    def close(self, drain_timeout: float | None) -> bool:
        """Drain (bounded), stop the sender, drop the connection. True when nothing was left."""
        try:
            drained = self.outbox.close(drain_timeout)
            self.supervisor.close()
        finally:
            telemetry.unregister(self.label, self)
        return drained

    def snapshot(self) -> telemetry.ClientSnapshot:
        """This client's numbers now, for :mod:`resilientmq.metrics`."""
        confirmed_at = self.outbox.last_confirmed_at
        since = self.started_at if confirmed_at is None else confirmed_at
        return telemetry.ClientSnapshot(
            client=self.label,
            broker=self.broker,
            counters=self.outbox.stats(),
            buffered_bytes=self.buffer.pending_bytes,
            state=self.supervisor.state.value,
            seconds_since_confirmation=max(0.0, time.monotonic() - since),
        )


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


def close_at_exit(client: Any, timeout: float) -> Callable[[], None]:
    """An ``atexit`` hook that closes ``client`` (``client.close(timeout)``) if it is still alive then.

    It holds the client weakly, so registering it does not keep a forgotten client alive.
    """
    ref = weakref.ref(client)

    def hook() -> None:
        live = ref()
        if live is not None:
            live.close(timeout)

    return hook
