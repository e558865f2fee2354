"""The supervisor with a scripted connector: attempts, delays, failover, listeners, close()."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from resilientmq import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    ConnectionState,
    ReconnectFailedError,
    ReconnectPolicy,
)
from resilientmq.core.buffer import Envelope
from resilientmq.core.session import BatchResult, LossReporter
from resilientmq.core.supervisor import Endpoints, EventWaiter, Supervisor


class ScriptedSession:
    def __init__(self, connector: ScriptedConnector, epoch: int, lost: LossReporter) -> None:
        self.connector = connector
        self.epoch = epoch
        self.lost = lost

    def transmit(self, batch: Sequence[Envelope]) -> Future[BatchResult]:
        raise NotImplementedError("the supervisor tests send nothing")

    def close(self) -> None:
        self.connector.closes += 1


class ScriptedConnector:
    """Fails the first ``failures`` opens (or per-endpoint via ``refuse``), then succeeds."""

    def __init__(self, failures: int = 0, error: Callable[[], Exception] | None = None) -> None:
        self.failures = failures
        self.error = error or (lambda: ConnectionRefusedError("refused"))
        self.opened: list[str] = []
        self.epochs: list[int] = []
        self.closes = 0
        self.cancels = 0
        self.refuse: set[str] = set()

    def open(self, endpoint: str, epoch: int, lost: LossReporter) -> ScriptedSession:
        self.opened.append(endpoint)
        self.epochs.append(epoch)
        if endpoint in self.refuse:
            raise ConnectionRefusedError(f"{endpoint} refused")
        if self.failures > 0:
            self.failures -= 1
            raise self.error()
        return ScriptedSession(self, epoch, lost)

    def cancel(self) -> None:
        self.cancels += 1


class RecordingWaiter:
    """Records each requested delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.delays.append(seconds)
        return False

    def interrupt(self) -> None:
        pass

    def reset(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.cond = threading.Condition()

    def _add(self, *event: Any) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def on_connection_lost(self, error: BaseException | None) -> None:
        self._add("lost", type(error).__name__)

    def on_reconnecting(self, attempt: int, delay: float) -> None:
        self._add("reconnecting", attempt, delay)

    def on_reconnected(self, endpoint: Any) -> None:
        self._add("reconnected", endpoint)

    def on_reconnect_failed(self, error: BaseException) -> None:
        self._add("failed", type(error).__name__)

    def wait_for(self, kind: str, timeout: float = 5.0, count: int = 1) -> list[tuple[Any, ...]]:
        with self.cond:
            assert self.cond.wait_for(lambda: sum(e[0] == kind for e in self.events) >= count, timeout), (
                self.events
            )
            return list(self.events)


def policy(**kw: Any) -> ReconnectPolicy:
    base: dict[str, Any] = {"initial_delay": 1.0, "multiplier": 2.0, "max_delay": 8.0, "jitter": 0.0}
    base.update(kw)
    return ReconnectPolicy(**base)


def make(
    connector: ScriptedConnector, endpoints: list[str] | None = None, **kw: Any
) -> tuple[Supervisor[str, ScriptedSession], RecordingWaiter, Recorder]:
    waiter = RecordingWaiter()
    sup: Supervisor[str, ScriptedSession] = Supervisor(
        connector, Endpoints(endpoints or ["a"]), kw.pop("policy", policy()), waiter=waiter, **kw
    )
    rec = Recorder()
    sup.add_listener(rec)
    return sup, waiter, rec


def test_initial_connect_retries_with_backoff_then_succeeds() -> None:
    conn = ScriptedConnector(failures=2)
    sup, waiter, _ = make(conn, policy=policy(initial_connect_attempts=3))
    sup.connect()
    assert sup.state is ConnectionState.CONNECTED
    assert conn.opened == ["a", "a", "a"]
    assert waiter.delays == [1.0, 2.0]
    assert conn.epochs == [1, 2, 3] and sup.epoch == 3  # every attempt has a number of its own
    sup.close()


def test_initial_connect_gives_up_after_its_budget() -> None:
    conn = ScriptedConnector(failures=100)
    sup, waiter, rec = make(conn, policy=policy(initial_connect_attempts=3))
    with pytest.raises(ReconnectFailedError, match="in 3 attempt") as info:
        sup.connect()
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert sup.state is ConnectionState.FAILED
    assert len(conn.opened) == 3 and waiter.delays == [1.0, 2.0]
    rec.wait_for("failed")
    sup.close()


def test_permanent_error_fails_fast_without_retrying() -> None:
    conn = ScriptedConnector(failures=100, error=lambda: AuthenticationError("bad password"))
    sup, waiter, _ = make(conn, policy=policy(initial_connect_attempts=10))
    with pytest.raises(AuthenticationError, match="bad password"):
        sup.connect()
    assert conn.opened == ["a"] and waiter.delays == []
    assert sup.state is ConnectionState.FAILED
    sup.close()


def test_resume_tries_again_after_the_policy_gave_up_but_not_after_a_refusal_for_good() -> None:
    conn = ScriptedConnector(failures=2)
    sup, _, _ = make(conn, policy=policy(initial_connect_attempts=2))
    with pytest.raises(ReconnectFailedError):
        sup.connect()
    assert sup.resume() is True  # the broker may be back: connect again in the background
    assert sup.wait_connected(timeout=5) is not None
    assert sup.resume() is False  # connected: nothing to resume
    sup.close()

    refused = ScriptedConnector(failures=100, error=lambda: AuthenticationError("bad password"))
    sup, _, _ = make(refused, policy=policy(initial_connect_attempts=10))
    with pytest.raises(AuthenticationError):
        sup.connect()
    assert sup.resume() is False and sup.state is ConnectionState.FAILED
    assert refused.opened == ["a"]
    sup.close()


def test_reconnect_after_loss_reports_attempts_delays_and_order_to_listeners() -> None:
    conn = ScriptedConnector()
    sup, waiter, rec = make(conn, policy=policy(max_attempts=10))
    sup.connect()
    conn.failures = 3
    sup.report_lost(ConnectionLostError("reset"), epoch=sup.epoch)
    assert sup.wait_connected(timeout=5) == 5  # attempts 2, 3 and 4 failed
    events = rec.wait_for("reconnected")
    assert events == [
        ("lost", "ConnectionLostError"),
        ("reconnecting", 1, 0.0),
        ("reconnecting", 2, 1.0),
        ("reconnecting", 3, 2.0),
        ("reconnecting", 4, 4.0),
        ("reconnected", "a"),
    ]
    assert waiter.delays == [1.0, 2.0, 4.0]
    assert sup.stats()["reconnects"] == 1
    sup.close()


def test_stale_or_repeated_loss_reports_are_ignored() -> None:
    conn = ScriptedConnector()
    sup, _, rec = make(conn)
    sup.connect()
    sup.report_lost(ConnectionLostError("old news"), epoch=0)
    assert sup.state is ConnectionState.CONNECTED
    sup.report_lost(ConnectionLostError("1"), epoch=1)
    sup.report_lost(ConnectionLostError("2"), epoch=1)
    assert sup.wait_connected(5) == 2
    rec.wait_for("reconnected")
    assert sup.stats()["connection_losses"] == 1
    sup.close()


def test_reconnect_gives_up_and_goes_failed() -> None:
    conn = ScriptedConnector()
    sup, _waiter, rec = make(conn, policy=policy(max_attempts=3))
    sup.connect()
    conn.failures = 100
    sup.report_lost(None)
    events = rec.wait_for("failed")
    assert [e[0] for e in events] == ["lost", "reconnecting", "reconnecting", "reconnecting", "failed"]
    assert sup.state is ConnectionState.FAILED
    assert sup.wait_connected(0.1) is None
    assert isinstance(sup.failure, ReconnectFailedError)
    # Connecting again after FAILED starts a fresh cycle.
    conn.failures = 0
    sup.connect()
    assert sup.state is ConnectionState.CONNECTED
    sup.close()


def test_failover_tries_each_endpoint_in_a_pass() -> None:
    conn = ScriptedConnector()
    conn.refuse = {"a"}
    sup, waiter, _ = make(conn, ["a", "b", "c"])
    sup.connect()
    assert conn.opened == ["a", "b"] and sup.endpoint == "b"
    assert waiter.delays == []
    # Losing b: the pass starts with the last good endpoint, then goes round.
    conn.refuse = {"b"}
    sup.report_lost(None)
    sup.wait_connected(5)
    assert conn.opened[2:] == ["b", "c"] and sup.endpoint == "c"
    sup.close()


def test_prefer_primary_returns_to_the_primary_when_it_is_reachable() -> None:
    conn = ScriptedConnector()
    conn.refuse = {"a"}
    probe_answers = {"a": False}
    waiter = RecordingWaiter()
    sup: Supervisor[str, ScriptedSession] = Supervisor(
        conn,
        Endpoints(["a", "b"], prefer_primary=True),
        policy(),
        waiter=waiter,
        probe=lambda ep: probe_answers[ep],
        primary_probe_interval=0.05,
    )
    rec = Recorder()
    sup.add_listener(rec)
    sup.connect()
    assert sup.endpoint == "b"
    conn.refuse = set()
    probe_answers["a"] = True
    rec.wait_for("reconnected")
    assert sup.endpoint == "a"
    sup.close()


def test_raising_listener_does_not_stop_the_loop() -> None:
    class Boom:
        def on_connection_lost(self, error: BaseException | None) -> None:
            raise RuntimeError("user bug")

        def on_reconnecting(self, attempt: int, delay: float) -> None:
            raise RuntimeError("user bug")

    conn = ScriptedConnector()
    sup, _, rec = make(conn)
    sup.add_listener(Boom())
    sup.connect()
    conn.failures = 1
    sup.report_lost(None)
    assert sup.wait_connected(5) == 3  # attempt 2 failed
    rec.wait_for("reconnected")
    sup.close()


def test_close_interrupts_a_long_reconnect_wait_within_a_second() -> None:
    conn = ScriptedConnector()
    # The real waiter: a 60 s wait that close() must cut short.
    sup: Supervisor[str, ScriptedSession] = Supervisor(
        conn, Endpoints(["a"]), ReconnectPolicy(initial_delay=60, max_delay=60, jitter=0)
    )
    rec = Recorder()
    sup.add_listener(rec)
    sup.connect()
    conn.failures = 100
    sup.report_lost(None)
    # Attempt 1 fails at once; attempt 2 is preceded by the 60 s wait.
    with rec.cond:
        assert rec.cond.wait_for(lambda: ("reconnecting", 2, 60.0) in rec.events, 5)
    started = time.monotonic()
    sup.close()
    assert time.monotonic() - started < 10.0  # against a 60 s wait; wide, as CI machines are noisy
    assert sup.state is ConnectionState.CLOSED
    with pytest.raises(ClientClosedError):
        sup.wait_connected(0)
    with pytest.raises(ClientClosedError):
        sup.connect()


def test_close_interrupts_a_blocking_initial_connect() -> None:
    conn = ScriptedConnector(failures=100)
    sup: Supervisor[str, ScriptedSession] = Supervisor(
        conn, Endpoints(["a"]), ReconnectPolicy(initial_delay=60, max_delay=60, initial_connect_attempts=5)
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sup.connect()
        except BaseException as exc:
            errors.append(exc)

    first_attempt = threading.Event()
    conn.error = lambda: (first_attempt.set(), ConnectionRefusedError("refused"))[1]
    t = threading.Thread(target=run)
    t.start()
    assert first_attempt.wait(5)
    started = time.monotonic()
    sup.close()
    t.join(15)
    assert time.monotonic() - started < 10.0  # against a 60 s wait; wide, as CI machines are noisy
    assert len(errors) == 1 and isinstance(errors[0], ClientClosedError)


def test_background_connect_returns_at_once() -> None:
    conn = ScriptedConnector(failures=2)
    sup, waiter, _ = make(conn)
    sup.connect(wait=False)
    assert sup.wait_connected(5) == 3  # attempts 1 and 2 failed
    assert waiter.delays == [1.0, 2.0]
    sup.close()


def test_disconnect_then_connect_again() -> None:
    conn = ScriptedConnector()
    sup, _, _ = make(conn)
    sup.connect()
    sup.disconnect()
    assert sup.state is ConnectionState.DISCONNECTED
    assert sup.wait_connected(0.1) is None
    sup.connect()
    assert sup.state is ConnectionState.CONNECTED and sup.epoch == 2
    sup.close()


def test_endpoints_validation_and_randomization() -> None:
    with pytest.raises(ValueError, match="at least one endpoint"):
        Endpoints([])
    eps = Endpoints(list("abcdef"), randomize=True, prefer_primary=True, rng=random.Random(3))
    assert eps.primary == "a" and sorted(eps) == list("abcdef")


def test_loss_reported_while_opening_is_acted_on_once_connected() -> None:
    class DiesDuringOpen(ScriptedConnector):
        def open(self, endpoint: str, epoch: int, lost: LossReporter) -> ScriptedSession:
            session = super().open(endpoint, epoch, lost)
            if len(self.opened) == 2:
                # The connection being opened (epoch 2) dies before open() returns.
                lost(ConnectionLostError("died during set-up"))
            return session

    conn = DiesDuringOpen()
    sup, _, rec = make(conn)
    sup.connect()
    sup.report_lost(ConnectionLostError("first loss"), epoch=1)
    # Epoch 2 is declared lost as soon as it is up, so a third connection follows.
    rec.wait_for("reconnected", count=2)
    assert sup.epoch == 3 and len(conn.opened) == 3
    assert sup.stats()["connection_losses"] == 2
    sup.close()


def test_connect_after_disconnect_waits_for_the_stale_cycle_one_open_at_a_time() -> None:
    class SlowOpen(ScriptedConnector):
        def __init__(self) -> None:
            super().__init__()
            self.inside = 0
            self.most_inside = 0
            self.entered = threading.Event()
            self.release = threading.Event()
            self.lock = threading.Lock()

        def open(self, endpoint: str, epoch: int, lost: LossReporter) -> ScriptedSession:
            with self.lock:
                self.inside += 1
                self.most_inside = max(self.most_inside, self.inside)
            try:
                if len(self.opened) == 1:  # the reconnection after the loss: slow
                    self.entered.set()
                    self.release.wait(5)
                return super().open(endpoint, epoch, lost)
            finally:
                with self.lock:
                    self.inside -= 1

    conn = SlowOpen()
    sup, _, _ = make(conn)
    sup.connect()
    sup.report_lost(None)
    assert conn.entered.wait(5)  # the supervisor thread is inside open()
    sup.disconnect()
    done = threading.Event()

    def reconnect() -> None:
        sup.connect()
        done.set()

    threading.Thread(target=reconnect).start()
    assert not done.wait(0.2)  # it waits for the stale cycle instead of opening alongside it
    conn.release.set()
    assert done.wait(5)
    assert conn.most_inside == 1
    assert sup.state is ConnectionState.CONNECTED
    sup.close()


def test_a_loss_reported_by_a_failed_attempt_does_not_hit_the_next_connection() -> None:
    class DyingAttempt(ScriptedConnector):
        def open(self, endpoint: str, epoch: int, lost: LossReporter) -> ScriptedSession:
            session = super().open(endpoint, epoch, lost)
            if len(self.opened) == 2:
                # This attempt's socket dies during set-up and says so, then the attempt fails.
                lost(ConnectionLostError("set-up died"))
                raise ConnectionRefusedError("refused")
            return session

    conn = DyingAttempt()
    sup, _, rec = make(conn)
    sup.connect()
    sup.report_lost(None, epoch=1)
    rec.wait_for("reconnected")  # attempt 2 failed, attempt 3 connected
    assert sup.epoch == 3 and len(conn.opened) == 3
    assert sup.state is ConnectionState.CONNECTED
    assert sup.stats()["connection_losses"] == 1
    sup.close()


# -- run(): the one way to run an operation on a live connection --------------------------------------
def test_run_retries_on_the_next_connection_after_a_loss() -> None:
    conn = ScriptedConnector()
    sup, _, rec = make(conn)
    sup.connect()
    seen: list[int] = []

    def operation(session: ScriptedSession) -> str:
        seen.append(session.epoch)
        if len(seen) == 1:
            raise ConnectionLostError("the socket broke under the call")
        return f"done on #{session.epoch}"

    assert sup.run("op", operation, timeout=5) == "done on #2"
    assert seen == [1, 2]  # never again on the connection that broke
    assert conn.epochs == [1, 2]  # the supervisor named every epoch
    rec.wait_for("reconnected")
    sup.close()


def test_run_without_retry_reports_the_loss_and_raises() -> None:
    conn = ScriptedConnector()
    sup, _, rec = make(conn)
    sup.connect()

    def operation(session: ScriptedSession) -> None:
        raise ConnectionLostError("broken")

    with pytest.raises(ConnectionLostError, match="broken"):
        sup.run("op", operation, retry=False)
    rec.wait_for("lost")
    sup.close()


def test_run_before_connect_raises_the_disconnected_error_and_when_failed_reconnect_failed() -> None:
    conn = ScriptedConnector(failures=100)
    sup, _, _ = make(conn, policy=policy(initial_connect_attempts=1))
    with pytest.raises(LookupError, match="never connected"):
        sup.run("op", lambda s: s, disconnected=lambda: LookupError("never connected"))
    with pytest.raises(ReconnectFailedError):
        sup.connect()
    with pytest.raises(ReconnectFailedError, match="op: the connection failed for good"):
        sup.run("op", lambda s: s)
    sup.close()
    with pytest.raises(ClientClosedError):
        sup.run("op", lambda s: s)


def test_run_gives_up_at_its_timeout_while_reconnecting() -> None:
    class Gate(ScriptedConnector):
        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()

        def open(self, endpoint: str, epoch: int, lost: LossReporter) -> ScriptedSession:
            if epoch > 1:
                self.release.wait(5)  # the reconnection hangs until the test is done
            return super().open(endpoint, epoch, lost)

    conn = Gate()
    sup, _, _ = make(conn)
    sup.connect()
    sup.report_lost(None)
    with pytest.raises(ConnectionLostError, match=r"op: no connection within 0.2 s \(reconnecting\)"):
        sup.run("op", lambda s: s, timeout=0.2)
    conn.release.set()
    sup.close()


def test_session_is_the_live_one_and_closed_when_replaced() -> None:
    conn = ScriptedConnector()
    sup, _, rec = make(conn)
    sup.connect()
    first = sup.session()
    assert first is not None and first.epoch == 1 and sup.session(epoch=2) is None
    first.lost(ConnectionLostError("reset"))  # the session's own reporter names its epoch
    rec.wait_for("reconnected")
    assert conn.closes >= 1  # the dead session was closed before the next one opened
    second = sup.session()
    assert second is not None and second.epoch == 2
    first.lost(ConnectionLostError("late news of the old connection"))
    assert sup.session() is second  # ignored: it named epoch 1
    sup.close()
    assert sup.session() is None and conn.cancels >= 1


def test_expedite_cuts_the_wait_before_the_next_attempt_short_once() -> None:
    class SignallingWaiter(EventWaiter):
        """The real waiter, telling the test each time the supervisor starts waiting."""

        def __init__(self) -> None:
            super().__init__()
            self.waiting = threading.Semaphore(0)

        def wait(self, seconds: float) -> bool:
            self.waiting.release()
            return super().wait(seconds)

    conn = ScriptedConnector()
    waiter = SignallingWaiter()
    sup: Supervisor[str, ScriptedSession] = Supervisor(
        conn, Endpoints(["a"]), policy(initial_delay=30.0, max_delay=30.0, max_attempts=-1), waiter=waiter
    )
    sup.connect()
    sup.expedite()  # nothing waits: a no-op
    conn.failures = 2
    sup.report_lost(None)
    assert waiter.waiting.acquire(timeout=5)  # attempt 1 failed at once; attempt 2 waits 30 s
    started = time.monotonic()
    sup.expedite()
    assert waiter.waiting.acquire(timeout=5)  # attempt 2 ran now and failed; attempt 3 waits again
    assert time.monotonic() - started < 10
    assert len(conn.opened) == 3 and sup.wait_connected(0.3) is None  # that wait was not cut short
    sup.expedite()
    assert sup.wait_connected(5) is not None and len(conn.opened) == 4
    sup.close()
