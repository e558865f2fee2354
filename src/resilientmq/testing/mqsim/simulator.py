"""The simulator: a queue manager (:mod:`.engine`, :mod:`.messaging`, :mod:`.admin`), the controls a test
drives it with (stop, start, quiesce, break connections, inject faults, ...), and its ``ibmmq``-shaped
module."""

from __future__ import annotations

from .admin import AdminEngine
from .constants import CMQC as C
from .module import build_module
from .state import FATAL, MQI_VERBS, Fault, QMState, normalise_address

__all__ = ["Simulator"]


class Simulator(AdminEngine):
    """One simulated queue manager, with an ``ibmmq``-shaped module in :attr:`mqi`.

    ``addresses`` (e.g. ``["127.0.0.1(1414)", "127.0.0.1(1415)"]``) models a multi-instance queue manager:
    client connections succeed only through the active address (the first, until :meth:`failover`); other
    addresses answer ``MQRC_HOST_NOT_AVAILABLE``. Without it every connection name is accepted.
    ``client_reconnect_timeout`` bounds how long an ``MQCNO_RECONNECT`` connection waits for a stopped queue
    manager before failing with ``MQRC_RECONNECT_FAILED`` (MQ's default is 1800 s).
    """

    def __init__(
        self,
        queue_manager_name: str = "QM1",
        *,
        max_msg_length: int = 4 * 1024 * 1024,
        addresses: list[str] | None = None,
        client_reconnect_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            queue_manager_name,
            max_msg_length=max_msg_length,
            addresses=addresses,
            client_reconnect_timeout=client_reconnect_timeout,
        )
        self.define_model_queue("SYSTEM.DEFAULT.MODEL.QUEUE")
        self.define_queue("SYSTEM.DEFAULT.LOCAL.QUEUE")
        self.define_queue("SYSTEM.DEAD.LETTER.QUEUE")
        self.mqi = build_module(self)

    def __repr__(self) -> str:
        return f"<mqsim.Simulator {self.queue_manager_name} {self._state.value}>"

    # -- controls ---------------------------------------------------------------------------------------
    def delete_queue(self, name: str) -> None:
        """Delete a queue whatever holds it (a test's hammer; PCF ``MQCMD_DELETE_Q`` refuses an open queue
        as MQ does): handles still open on it get ``MQRC_Q_DELETED``."""
        with self._cond:
            if self._queues.pop(name, None) is None:
                raise ValueError(f"no queue {name!r}")
            self._cond.notify_all()

    def depth(self, name: str) -> int:
        """The queue's current depth, as MQ counts it (uncommitted puts in, uncommitted gets out)."""
        with self._cond:
            queue = self._queues.get(name)
            if queue is None:
                raise ValueError(f"no queue {name!r}")
            self._purge_expired(queue)
            return len(queue.messages)

    def queue_names(self) -> list[str]:
        with self._cond:
            return sorted(self._queues)

    def set_inhibited(self, name: str, *, put: bool | None = None, get: bool | None = None) -> None:
        """ALTER QLOCAL PUT(DISABLED)/GET(DISABLED)."""
        with self._cond:
            queue = self._queue_or_error(name)
            if put is not None:
                queue.put_inhibited = put
            if get is not None:
                queue.get_inhibited = get
                self._cond.notify_all()

    def deny(self, name: str) -> None:
        """Refuse every MQOPEN/MQPUT1/MQSUB of the object ``name`` with ``MQRC_NOT_AUTHORIZED``."""
        with self._cond:
            self._denied.add(name)

    def allow(self, name: str) -> None:
        with self._cond:
            self._denied.discard(name)

    def require_credentials(self, user: str | None, password: str | None = None) -> None:
        """Refuse connections without this user and password (``MQRC_NOT_AUTHORIZED``); None: accept all."""
        with self._cond:
            self._credentials = None if user is None else (user, password or "")

    def fail_next(
        self,
        verb: str,
        reason: int,
        *,
        count: int = 1,
        skip: int = 0,
        after: bool = False,
        comp: int | None = None,
        kill: bool | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``verb`` (``MQPUT``, ``MQCMIT``, ...) return ``reason``.

        ``skip`` lets that many calls of ``verb`` through first (on any connection).

        ``after=True`` performs the call first and then reports the error (a put that happened although the
        client saw the connection break; a commit whose outcome the client cannot know). ``kill`` ends the
        connection too; by default it does for ``MQRC_CONNECTION_BROKEN`` and ``MQRC_Q_MGR_STOPPING``.
        """
        if verb not in MQI_VERBS:
            raise ValueError(f"unknown MQI verb {verb!r}; one of {sorted(MQI_VERBS)}")
        if count < 1 or skip < 0:
            raise ValueError(f"count must be >= 1 and skip >= 0, got {count!r} and {skip!r}")
        if comp is None:
            comp = C.MQCC_WARNING if reason in (C.MQRC_BACKED_OUT, C.MQRC_NO_SUBS_MATCHED) else C.MQCC_FAILED
        with self._cond:
            kill = reason in FATAL if kill is None else kill
            self._faults.append(Fault(verb, reason, comp, count, after, kill, skip))

    @property
    def state(self) -> str:
        """``"running"``, ``"quiescing"`` or ``"stopped"``."""
        return self._state.value

    @property
    def connection_count(self) -> int:
        """Live connections (broken ones the application has not disconnected are not counted)."""
        with self._cond:
            return sum(1 for c in self._conns.values() if c.dead is None)

    @property
    def waiting_calls(self) -> int:
        """MQGET calls now waiting for a message (for tests that act while a get is in flight)."""
        return self._waiting

    @property
    def active_address(self) -> str | None:
        return self._active

    def stop(self) -> None:
        """endmqm -i: calls in flight get ``MQRC_Q_MGR_STOPPING``, later calls on their connections
        ``MQRC_CONNECTION_BROKEN``, new connections ``MQRC_Q_MGR_NOT_AVAILABLE`` until :meth:`start`.

        Uncommitted work is backed out; non-persistent messages, temporary dynamic queues and non-durable
        subscriptions are gone. ``MQCNO_RECONNECT`` connections wait (up to ``client_reconnect_timeout``).
        """
        with self._cond:
            self._shutdown(C.MQRC_Q_MGR_STOPPING)

    def start(self) -> None:
        """strmqm. After :meth:`quiesce` this completes the restart (as :meth:`stop` then start)."""
        with self._cond:
            if self._state is QMState.QUIESCING:
                self._shutdown(C.MQRC_Q_MGR_QUIESCING)
            if self._state is QMState.STOPPED:
                self._state = QMState.RUNNING
                for conn in self._conns.values():
                    conn.reconnecting_until = None
                self._cond.notify_all()

    def quiesce(self) -> None:
        """endmqm -c: calls that ask to fail if quiescing (the ``*_FAIL_IF_QUIESCING`` options) and new
        connections get ``MQRC_Q_MGR_QUIESCING``; other calls go on until :meth:`stop` or :meth:`start`."""
        with self._cond:
            if self._state is QMState.RUNNING:
                self._state = QMState.QUIESCING
                self._cond.notify_all()

    def break_connections(self) -> int:
        """Break every client connection (``MQRC_CONNECTION_BROKEN``); the queue manager stays up.

        Their units of work are backed out. ``MQCNO_RECONNECT`` connections reconnect transparently (their
        handles stay valid; a unit of work in progress is backed out and the next ``MQCMIT`` warns
        ``MQRC_BACKED_OUT``). Returns how many connections broke.
        """
        with self._cond:
            broken = 0
            for conn in list(self._conns.values()):
                if conn.dead is not None:
                    continue
                if conn.reconnectable:
                    self._back_out_underneath(conn)
                else:
                    self._kill(conn, C.MQRC_CONNECTION_BROKEN, C.MQRC_CONNECTION_BROKEN)
                broken += 1
            self._cond.notify_all()
            return broken

    def failover(self, address: str) -> None:
        """Multi-instance failover: stop, make ``address`` the active instance, start."""
        address = normalise_address(address)
        with self._cond:
            if self._addresses is None or address not in self._addresses:
                raise ValueError(
                    f"{address!r} is not one of this queue manager's addresses {self._addresses}"
                )
            self._shutdown(C.MQRC_Q_MGR_STOPPING)
            self._active = address
        self.start()
