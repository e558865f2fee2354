"""The connection supervisor: state machine, the one reconnect loop, endpoint failover, listener fan-out.

Adapters never (re)connect on their own. They hand the supervisor a :class:`Connector` that opens a
:class:`Session` — one connection's life — on one endpoint, for the epoch the supervisor gives it, with a
function to call when that connection breaks. The supervisor owns the live session and closes it.
Everything else — how long to wait, which endpoint next, when to give up, who is told — is decided here,
and :meth:`Supervisor.run` is the one way to run an operation on a live connection through outages.
"""

from __future__ import annotations

import enum
import itertools
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .errors import ClientClosedError, ConnectionLostError, ReconnectFailedError, ResilientMQError
from .policy import ReconnectPolicy
from .session import Connector, Session
from .telemetry import ClientEvents, EventLogListener

__all__ = [
    "ConnectionState",
    "Endpoints",
    "EventDispatcher",
    "EventWaiter",
    "ReconnectListener",
    "Supervisor",
    "Waiter",
    "call_listeners",
    "tcp_probe",
]

log = logging.getLogger("resilientmq.core.supervisor")

E = TypeVar("E")
S = TypeVar("S", bound=Session)
T = TypeVar("T")

# How long a connection that an operation found broken may stay CONNECTED before the operation runs on
# it again anyway (the adapter's "broken" was then about the operation, not the connection).
_STILL_CONNECTED_GRACE = 1.0


class ConnectionState(enum.Enum):
    """Where a client's connection is. Observe it with ``state`` or ``on_state_changed``."""

    DISCONNECTED = "disconnected"
    """Not connected by choice: before the first ``connect()`` or after ``disconnect()``."""
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


class ReconnectListener:
    """Callbacks about the connection's life. Override what you need; every call is guarded.

    Any object with some of these methods works as a listener (a stomp.py listener, for instance).
    """

    def on_connection_lost(self, error: BaseException | None) -> None:
        """A connection that was up broke; reconnection starts."""

    def on_reconnecting(self, attempt: int, delay: float) -> None:
        """Attempt ``attempt`` (1-based) follows after ``delay`` seconds."""

    def on_reconnected(self, endpoint: Any) -> None:
        """A connection is up again, to ``endpoint``, with subscriptions restored."""

    def on_reconnect_failed(self, error: BaseException) -> None:
        """The policy gave up (or the broker refused us for good); the client is FAILED."""

    def on_state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        """The connection state moved from ``old`` to ``new``."""


class Waiter(Protocol):
    """An interruptible sleep; injected so tests can run the reconnect loop without a clock."""

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if interrupted."""

    def interrupt(self) -> None:
        """Wake the current and every later ``wait`` at once, until ``reset()``."""

    def reset(self) -> None:
        """Make ``wait`` sleep again."""


class EventWaiter:
    """The real waiter: a ``threading.Event`` (nats.py's reconnect wake, tenacity's ``sleep_using_event``)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def interrupt(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self._event.clear()


class Endpoints(Generic[E]):
    """Endpoints tried in turn; optionally shuffled once, optionally sticky to the first."""

    def __init__(
        self,
        endpoints: Sequence[E],
        *,
        randomize: bool = False,
        prefer_primary: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        items = list(endpoints)
        if not items:
            raise ValueError("at least one endpoint is required")
        if randomize:
            # The primary keeps its place when it is preferred; the others are shuffled.
            head, tail = (items[:1], items[1:]) if prefer_primary else ([], items)
            (rng or random.Random()).shuffle(tail)
            items = head + tail
        self._items = items
        self.prefer_primary = prefer_primary

    @property
    def primary(self) -> E:
        return self._items[0]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Any:
        return iter(self._items)

    def order(self, last: E | None) -> list[E]:
        """The endpoints to try in one pass: the primary first when preferred, else the last good one."""
        if self.prefer_primary or last is None or last not in self._items:
            return list(self._items)
        i = self._items.index(last)
        return self._items[i:] + self._items[:i]


def tcp_probe(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a TCP connection to ``host:port`` can be opened (used to notice the primary is back)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Supervisor(Generic[E, S]):
    """Owns one client's connection: connects, notices loss, reconnects by the policy, tells listeners."""

    def __init__(
        self,
        connector: Connector[E, S],
        endpoints: Endpoints[E],
        policy: ReconnectPolicy,
        *,
        name: str = "resilientmq",
        probe: Callable[[E], bool] | None = None,
        primary_probe_interval: float = 30.0,
        waiter: Waiter | None = None,
        rng: random.Random | None = None,
        telemetry: Any = None,
    ) -> None:
        self._connector = connector
        self.endpoints = endpoints
        self.policy = policy
        self.name = name
        self._probe = probe
        self._probe_interval = primary_probe_interval
        self._waiter: Waiter = waiter or EventWaiter()
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._state = ConnectionState.DISCONNECTED
        self._closed = False  # final: close() was called
        self._generation = 0  # bumped by disconnect()/close() so a running cycle knows to stop
        self._epoch = 0  # the live (or last) connection's number
        self._opening = 0  # the number of the connection attempt under way, 0 when none is
        self._attempt_numbers = itertools.count(1)
        self._endpoint: E | None = None
        self._session: S | None = None
        self._pending_cycle = False
        self._early_loss: tuple[int, BaseException | None] | None = None
        self._next_probe = 0.0
        self._failure: BaseException | None = None
        self._listeners: list[Any] = []
        self._thread: threading.Thread | None = None
        self._cycle_lock = threading.Lock()  # one reconnect cycle at a time, whichever thread runs it
        self._backing_off = False  # a cycle waits between attempts
        self._expedited = False
        self._events = EventDispatcher(name)
        # Told every listener event first, and of each failed attempt and the first connection: the
        # structured log (resilientmq.core.telemetry), delivered in order on the event thread.
        self._telemetry = telemetry if telemetry is not None else EventLogListener(ClientEvents(name, ""))
        self.reconnects = 0
        self.connection_losses = 0
        self.connect_attempts = 0

    # -- observation --------------------------------------------------------------------------------
    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def epoch(self) -> int:
        """The live (or last) connection's number. Every connection attempt gets a new, higher one, so
        work and news tagged with it are never mistaken for another connection's."""
        return self._epoch

    @property
    def endpoint(self) -> E | None:
        """The endpoint of the current (or last) connection."""
        return self._endpoint

    @property
    def failure(self) -> BaseException | None:
        """Why the supervisor is FAILED, if it is."""
        return self._failure

    @property
    def closed(self) -> bool:
        return self._closed

    def add_listener(self, listener: Any) -> None:
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def stats(self) -> dict[str, int]:
        return {
            "reconnects": self.reconnects,
            "connection_losses": self.connection_losses,
            "connect_attempts": self.connect_attempts,
        }

    # -- commands -----------------------------------------------------------------------------------
    def connect(self, *, wait: bool = True) -> None:
        """Make the first connection (again after ``disconnect()`` or FAILED; a no-op when under way).

        ``wait=True`` connects in the calling thread within ``initial_connect_attempts`` and raises
        :class:`ReconnectFailedError` or the permanent error on failure. ``wait=False`` returns at once and
        connects in the background under the reconnect budget (``max_attempts``).
        """
        with self._lock:
            if self._closed:
                raise ClientClosedError(f"{self.name}: the client is closed")
            if self._state not in (ConnectionState.DISCONNECTED, ConnectionState.FAILED):
                return
            self._failure = None
            self._early_loss = None
            self._waiter.reset()
            self._set_state(ConnectionState.CONNECTING)
            self._ensure_thread()
            if not wait:
                self._pending_cycle = True
                self._changed.notify_all()
                return
            generation = self._generation
        if not self._cycle(generation, initial=True, first=True):
            with self._lock:
                if self._closed:
                    raise ClientClosedError(f"{self.name}: closed while connecting")
                if self._failure is None:
                    raise ConnectionLostError(f"{self.name}: disconnected while connecting")
                raise self._failure

    def resume(self) -> bool:
        """If the reconnect policy gave up, start connecting again in the background; whether it did.

        For the producers without a ``connect()`` of their own: producing after the policy gave up is how
        their users ask for another try, as librdkafka never stops trying. Not after a refusal for good
        (credentials, configuration): another try cannot help, and the error must reach the caller."""
        if self._state is not ConnectionState.FAILED or not isinstance(self._failure, ReconnectFailedError):
            return False
        self.connect(wait=False)
        return True

    def report_lost(self, error: BaseException | None = None, epoch: int | None = None) -> None:
        """The connection broke. Safe from any thread; repeated news and news of older connections are
        ignored.

        ``epoch`` names the connection. News of the connection still being opened is acted on as soon as
        ``open()`` returns, so a connection that dies during set-up is not taken for live.
        """
        with self._lock:
            if (
                epoch is not None
                and epoch == self._opening
                and self._state
                in (
                    ConnectionState.CONNECTING,
                    ConnectionState.RECONNECTING,
                )
            ):
                # The connection being opened died before open() returned: act on it once it is up.
                self._early_loss = (epoch, error)
                return
            if self._state is not ConnectionState.CONNECTED:
                return
            if epoch is not None and epoch != self._epoch:
                return
            self.connection_losses += 1
            # Queued under the lock so listeners hear of the loss before the loop's first attempt.
            self._emit("on_connection_lost", error)
            self._set_state(ConnectionState.RECONNECTING)
            self._pending_cycle = True
            self._changed.notify_all()

    def wait_connected(self, timeout: float | None = None) -> int | None:
        """Block until CONNECTED and return the epoch; None on timeout, when FAILED or DISCONNECTED.

        Raises :class:`ClientClosedError` once the supervisor is closed.
        """
        session = self.wait_session(timeout)
        return None if session is None else session.epoch

    def wait_session(self, timeout: float | None = None) -> S | None:
        """Block until CONNECTED and return the live session; None on timeout, when FAILED or DISCONNECTED.

        Raises :class:`ClientClosedError` once the supervisor is closed.
        """
        settled = (ConnectionState.CONNECTED, ConnectionState.FAILED, ConnectionState.DISCONNECTED)
        with self._lock:
            self._changed.wait_for(lambda: self._closed or self._state in settled, timeout)
            if self._closed:
                raise ClientClosedError(f"{self.name}: the client is closed")
            return self._session if self._state is ConnectionState.CONNECTED else None

    def session(self, epoch: int | None = None) -> S | None:
        """The live session (of ``epoch``, if given), or None; never waits."""
        with self._lock:
            session = self._session if self._state is ConnectionState.CONNECTED else None
            if session is None or (epoch is not None and session.epoch != epoch):
                return None
            return session

    def run(
        self,
        what: str,
        fn: Callable[[S], T],
        *,
        timeout: float | None = None,
        retry: bool | Callable[[BaseException], bool] = True,
        disconnected: Callable[[], BaseException] | None = None,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> T:
        """Run ``fn(session)`` on a live connection, waiting out outages by the policy.

        When ``fn`` raises :class:`ConnectionLostError` (the adapter translates its library's errors), the
        connection is reported lost and, if ``retry`` allows (a bool, or a predicate of the error), ``fn``
        runs again on the next connection. ``timeout`` bounds the whole call (None: until the policy gives
        up, which raises :class:`ReconnectFailedError`). Before the first ``connect()`` or after
        ``disconnect()``, ``disconnected()`` is raised (default: :class:`ConnectionLostError`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        failed_epoch = 0
        while True:
            session = self._live_after(what, failed_epoch, deadline, timeout, disconnected)
            try:
                return fn(session)
            except ConnectionLostError as exc:
                self.report_lost(exc, session.epoch)
                again = retry(exc) if callable(retry) else retry
                if not again or (deadline is not None and time.monotonic() >= deadline):
                    raise
                if on_retry is not None:
                    on_retry(exc)
                failed_epoch = session.epoch

    def _live_after(
        self,
        what: str,
        failed_epoch: int,
        deadline: float | None,
        timeout: float | None,
        disconnected: Callable[[], BaseException] | None,
    ) -> S:
        """The live session, preferring one newer than ``failed_epoch``."""
        since = time.monotonic()
        with self._lock:
            while True:
                if self._closed:
                    raise ClientClosedError(f"{what}: the client is closed")
                state = self._state
                if state is ConnectionState.CONNECTED and self._session is not None:
                    stale = self._session.epoch <= failed_epoch
                    if not stale or time.monotonic() - since >= _STILL_CONNECTED_GRACE:
                        return self._session
                elif state is ConnectionState.FAILED:
                    raise ReconnectFailedError(
                        f"{what}: the connection failed for good: {self._failure}"
                    ) from self._failure
                elif state is ConnectionState.DISCONNECTED:
                    raise (
                        disconnected()
                        if disconnected is not None
                        else ConnectionLostError(f"{what}: not connected")
                    )
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ConnectionLostError(f"{what}: no connection within {timeout:g} s ({state.value})")
                # Woken by every state change; the bound only re-checks the grace period and deadline.
                self._changed.wait(0.1 if remaining is None else min(remaining, 0.1))

    def expedite(self) -> None:
        """Cut the current wait between reconnect attempts short: the next attempt runs now.

        For an adapter whose client library reconnects by itself and shows that the broker answers again
        (deliveries resume) before the policy's next attempt is due. A no-op when no attempt is waiting.
        """
        with self._lock:
            if not self._backing_off or self._closed:
                return
            self._expedited = True
        self._waiter.interrupt()

    def disconnect(self) -> None:
        """Stop reconnecting and drop the connection; ``connect()`` may be called again."""
        if not self._closed:
            self._stop(ConnectionState.DISCONNECTED)

    def in_own_thread(self) -> bool:
        """True in the supervisor's (or its listeners') thread, where waiting on a reconnection would
        wait on oneself."""
        current = threading.current_thread()
        return current is self._thread or self._events.in_own_thread()

    def close(self) -> None:
        """Stop for good: interrupt any wait at once, drop the connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop(ConnectionState.CLOSED)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._events.close()

    def _stop(self, final_state: ConnectionState) -> None:
        with self._lock:
            self._generation += 1
            self._pending_cycle = False
            self._changed.notify_all()
        self._waiter.interrupt()
        self._connector.cancel()
        self._drop_session()
        with self._lock:
            self._set_state(final_state)

    def _drop_session(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:
                log.exception("%s: closing session #%d raised", self.name, session.epoch)

    # -- the loop -----------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-supervisor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not (self._closed or self._pending_cycle):
                    # Woken by every state change; the timeout only paces the primary probe.
                    self._changed.wait(self._probe_timeout())
                if self._closed:
                    return
                run_cycle, self._pending_cycle = self._pending_cycle, False
                first = self._state is ConnectionState.CONNECTING
                generation = self._generation
                probe_due = self._should_probe_primary() and time.monotonic() >= self._next_probe
            if run_cycle:
                self._drop_session()
                self._cycle(generation, initial=False, first=first)
            elif probe_due:
                self._next_probe = time.monotonic() + self._probe_interval
                self._return_to_primary()

    def _cycle(self, generation: int, *, initial: bool, first: bool) -> bool:
        """Try endpoints until one connects or the policy gives up. True when connected.

        Cycles are serialised: a ``connect()`` right after ``disconnect()`` waits for a stale cycle (still
        inside ``open()``) to notice it is stale and drop its connection before opening another.
        """
        with self._cycle_lock:
            if self._generation != generation:
                return False
            return self._attempts(generation, initial=initial, first=first)

    def _attempts(self, generation: int, *, initial: bool, first: bool) -> bool:
        attempt = 0
        last_error: BaseException | None = None
        while True:
            attempt += 1
            if not self.policy.allows(attempt, initial=initial):
                budget = self.policy.initial_connect_attempts if initial else self.policy.max_attempts
                failure = ReconnectFailedError(
                    f"{self.name}: could not connect to any of {list(self.endpoints)} "
                    f"in {budget} attempt(s); last error: {last_error}"
                )
                failure.__cause__ = last_error
                self._fail(failure, generation)
                return False
            delay = 0.0 if attempt == 1 else self.policy.next_delay(attempt - 1, self._rng)
            if not first:
                self._emit("on_reconnecting", attempt, delay)
            if delay > 0:
                with self._lock:
                    self._backing_off = True
                self._waiter.wait(delay)
                with self._lock:
                    self._backing_off = False
                    if self._expedited and self._generation == generation:
                        self._waiter.reset()  # only this wait was cut short, not every later one
                    self._expedited = False
            for endpoint in self.endpoints.order(self._endpoint):
                if self._generation != generation:
                    return False
                self.connect_attempts += 1
                with self._lock:
                    epoch = self._opening = next(self._attempt_numbers)
                    self._early_loss = None  # news of an earlier attempt's connection, not of this one
                try:
                    session = self._connector.open(endpoint, epoch, self._reporter(epoch))
                except Exception as exc:
                    with self._lock:
                        self._opening = 0
                    if self._generation != generation:
                        return False  # cancelled by disconnect()/close(): the error is the cancellation's
                    self._tell("on_attempt_failed", attempt, endpoint, exc)
                    if isinstance(exc, ResilientMQError) and not exc.retriable:
                        self._fail(exc, generation)  # refused for good: retrying cannot help
                        return False
                    last_error = exc
                    continue
                return self._connected(endpoint, session, first, generation)

    def _reporter(self, epoch: int) -> Callable[[BaseException | None], None]:
        def lost(error: BaseException | None = None) -> None:
            self.report_lost(error, epoch)

        return lost

    def _connected(self, endpoint: E, session: S, first: bool, generation: int) -> bool:
        with self._lock:
            self._opening = 0
            stale = self._generation != generation
            if not stale:
                self._epoch = session.epoch
                self._endpoint = endpoint
                self._session = session
                self._next_probe = time.monotonic() + self._probe_interval
                if not first:
                    self.reconnects += 1
                self._set_state(ConnectionState.CONNECTED)
        if stale:
            session.close()
            return False
        if first:
            self._tell("on_connected", endpoint)
        else:
            self._emit("on_reconnected", endpoint)
        early, self._early_loss = self._early_loss, None
        if early is not None and early[0] == self._epoch:
            self.report_lost(early[1], early[0])
        return True

    def _fail(self, error: BaseException, generation: int) -> None:
        with self._lock:
            if self._generation != generation:
                return
            self._failure = error
            self._set_state(ConnectionState.FAILED)
        self._drop_session()
        self._emit("on_reconnect_failed", error)

    # -- returning to the primary -------------------------------------------------------------------
    def _probe_timeout(self) -> float | None:
        if not self._should_probe_primary():
            return None
        return max(0.0, self._next_probe - time.monotonic())

    def _should_probe_primary(self) -> bool:
        return (
            self.endpoints.prefer_primary
            and self._probe is not None
            and self._state is ConnectionState.CONNECTED
            and self._endpoint != self.endpoints.primary
        )

    def _return_to_primary(self) -> None:
        assert self._probe is not None
        primary = self.endpoints.primary
        try:
            reachable = self._probe(primary)
        except Exception:
            log.exception("%s: probing the primary %s raised", self.name, primary)
            return
        if reachable:
            log.info("%s: primary %s is reachable again; moving back to it", self.name, primary)
            self.report_lost(
                ConnectionLostError(f"moving back to the primary endpoint {primary}"), self._epoch
            )

    # -- helpers ------------------------------------------------------------------------------------
    def _set_state(self, new: ConnectionState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self._changed.notify_all()
        self._emit("on_state_changed", old, new)

    def _emit(self, method: str, *args: Any) -> None:
        with self._lock:
            listeners = [self._telemetry, *self._listeners]
        self._events.post(listeners, method, args)

    def _tell(self, method: str, *args: Any) -> None:
        """An event for the structured log only (user listeners have no such method)."""
        self._events.post([self._telemetry], method, args)


class EventDispatcher:
    """Calls listeners in order on a thread of its own.

    Callbacks never run under the supervisor's lock nor in the reconnect loop, so a slow or raising (or
    re-entrant) callback can neither deadlock nor kill it.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[list[Any], str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def post(self, listeners: list[Any], method: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"{self._name}-events", daemon=True)
                self._thread.start()
        self._queue.put((listeners, method, args))

    def in_own_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        if thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            listeners, method, args = item
            call_listeners(listeners, method, args, self._name)


def call_listeners(listeners: Iterable[Any], method: str, args: tuple[Any, ...], owner: str) -> None:
    """Call ``method`` on every listener that has it, in this thread; one that raises is logged, and the
    others are still called (a user's callback must never break what called it)."""
    for listener in listeners:
        fn = getattr(listener, method, None)
        if fn is None:
            continue
        try:
            fn(*args)
        except Exception:
            log.exception("%s: listener %r raised in %s", owner, listener, method)
