"""What every resilientmq client promises, as one base class of tests (kombu's t/integration/common.py style).

A subclass per adapter and broker supplies the hooks below and nothing else; the tests are inherited. Every
count comes from an independent consumer of the broker (a plain client library, not ours), never from the
client's own counters. Adding an adapter is one more subclass::

    class TestConfluent(ClientContract):
        def broker(self, request): ...            # start or find the broker, and what takes it down
        def make_client(self, **resilience): ...  # build and start it, without waiting for a connection
        def send(self, client, destination, body): ...
        def new_destination(self): ...
        def received(self, destination, expect): ...
        def broker_down(self): ...
        def broker_up(self): ...
        def close(self, client): ...
        def send_refused(self, client, destination): ...

Where an adapter differs by design, its subclass says so in one line (a class attribute with a comment).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from resilientmq import (
    FOREVER,
    BufferFullError,
    ClientClosedError,
    ConnectionState,
    ReconnectListener,
    ReconnectPolicy,
)
from resilientmq.testing import wait_until

__all__ = ["FAST", "TIMEOUT", "ClientContract", "Refusal"]

# Quick to notice and quick to come back, and never giving up: outages in these tests last a second or so.
FAST = ReconnectPolicy(
    initial_delay=0.05,
    multiplier=2.0,
    max_delay=0.25,
    jitter=0.1,
    max_attempts=FOREVER,
    initial_connect_attempts=FOREVER,
)
TIMEOUT = 30.0  # the bound of every wait that should end in well under a second
DOCUMENTED_STATS = {"accepted", "sent", "resent", "confirmed", "failed", "dropped", "buffered", "reconnects"}


@dataclass(frozen=True)
class Refusal:
    """A message the broker refuses for good, and how the failed record must describe it."""

    body: bytes
    error_type: type[Exception]
    reason: str
    """A regular expression the failed record's ``reason`` must match."""


class Recorder(ReconnectListener):
    """Every reconnect-listener call, in the order the client made them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[Any, ...]] = []

    def _add(self, *event: Any) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._events)

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e[0] == name)

    def on_connection_lost(self, error: BaseException | None) -> None:
        self._add("lost")

    def on_reconnecting(self, attempt: int, delay: float) -> None:
        self._add("reconnecting", attempt)

    def on_reconnected(self, endpoint: Any) -> None:
        self._add("reconnected")

    def on_reconnect_failed(self, error: BaseException) -> None:
        self._add("failed", error)

    def on_state_changed(self, old: ConnectionState, new: ConnectionState) -> None:
        self._add("state", old, new)


class ClientContract:
    """The contract. Not collected itself (no ``Test`` prefix); each ``Test*`` subclass runs it."""

    unknown_kwarg_error: type[Exception] = TypeError
    """What the constructor raises for a misspelt keyword argument."""
    close_grace: float = 5.0
    """How much longer than ``drain_timeout`` closing may take during an outage (threads, sockets)."""

    # -- hooks ------------------------------------------------------------------------------------------
    def broker(self, request: pytest.FixtureRequest) -> contextlib.AbstractContextManager[None]:
        """Provide the broker (and what takes it down) for one test; ``pytest.skip`` when there is none."""
        raise NotImplementedError

    def make_client(self, **resilience: Any) -> Any:
        """Build the client for the broker with these resilience kwargs and start it, without waiting."""
        raise NotImplementedError

    def send(self, client: Any, destination: str, body: Any) -> None:
        """Send one message the client's ordinary way (``body`` is passed as given)."""
        raise NotImplementedError

    def new_destination(self) -> str:
        """A destination no other test uses, empty."""
        raise NotImplementedError

    def received(self, destination: str, expect: int) -> list[bytes]:
        """Every body the broker holds for ``destination``, read by an independent consumer, in order.

        Waits (bounded) for ``expect`` distinct bodies, then long enough to see any duplicates.
        """
        raise NotImplementedError

    def broker_down(self) -> None:
        """Make the broker unreachable (refused connections, open ones reset)."""
        raise NotImplementedError

    def broker_up(self) -> None:
        """Make it reachable again. Idempotent."""
        raise NotImplementedError

    def close(self, client: Any) -> None:
        """Close the client the ordinary way (``close()``/``disconnect()``), draining by ``drain_timeout``."""
        raise NotImplementedError

    def send_refused(self, client: Any, destination: str) -> Refusal:
        """Send one message this broker refuses for good (``destination`` exists and holds one message)."""
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _contract_bed(self, request: pytest.FixtureRequest) -> Iterator[None]:
        self._clients: list[Any] = []
        with self.broker(request):
            try:
                yield
            finally:
                try:
                    self.broker_up()  # so that closing drains at once instead of waiting out drain_timeout
                finally:
                    for client in reversed(self._clients):
                        with contextlib.suppress(Exception):
                            self.close(client)

    def client(self, *, connected: bool = True, **resilience: Any) -> Any:
        """A started client (closed at teardown); with ``connected``, once it is connected."""
        options: dict[str, Any] = {"reconnect_policy": FAST, "drain_timeout": 10.0, **resilience}
        client = self.make_client(**options)
        self._clients.append(client)
        if connected:
            wait_until(
                lambda: client.connection_state is ConnectionState.CONNECTED, TIMEOUT, what="the connection"
            )
        return client

    def assert_delivered(self, destination: str, bodies: list[bytes]) -> None:
        """The independent consumer finds every body, once, in the order sent."""
        got = self.received(destination, len(bodies))
        held = set(got)
        lost = [b for b in bodies if b not in held]
        assert lost == [], f"{len(lost)} of {len(bodies)} lost, first {lost[:3]}"
        assert len(got) == len(held), f"{len(got) - len(held)} duplicates"
        assert got == bodies, "delivered out of order"

    # -- the contract -----------------------------------------------------------------------------------
    def test_sends_during_an_outage_are_buffered_then_delivered_in_order(self) -> None:
        client = self.client()
        dest = self.new_destination()
        self.broker_down()
        bodies = [b"outage-%03d" % i for i in range(200)]
        for body in bodies:
            self.send(client, dest, body)
        assert client.get_buffer_size() == 200
        self.broker_up()
        assert client.flush(TIMEOUT) is True
        assert client.get_buffer_size() == 0
        self.assert_delivered(dest, bodies)

    def test_starts_while_every_broker_is_down_and_delivers_once_one_is_up(self) -> None:
        self.broker_down()
        started = time.monotonic()
        client = self.client(connected=False)
        assert time.monotonic() - started < 5.0, "starting waited for the broker"
        assert client.connection_state is not ConnectionState.CONNECTED
        dest = self.new_destination()
        bodies = [b"early-%02d" % i for i in range(20)]
        for body in bodies:
            self.send(client, dest, body)
        assert client.get_buffer_size() == 20
        self.broker_up()
        assert client.flush(TIMEOUT) is True
        assert client.connection_state is ConnectionState.CONNECTED
        self.assert_delivered(dest, bodies)

    def test_flush_is_true_only_when_everything_is_confirmed(self) -> None:
        client = self.client()
        assert client.flush(TIMEOUT) is True  # nothing to confirm
        dest = self.new_destination()
        self.send(client, dest, b"f-0")
        assert client.flush(TIMEOUT) is True
        self.broker_down()
        self.send(client, dest, b"f-1")
        assert client.flush(0.3) is False
        assert client.get_buffer_size() == 1
        self.broker_up()
        assert client.flush(TIMEOUT) is True
        assert client.get_buffer_size() == 0
        self.assert_delivered(dest, [b"f-0", b"f-1"])

    def test_a_refused_message_lands_in_the_failed_list_with_its_reason(self) -> None:
        client = self.client()
        dest = self.new_destination()
        self.send(client, dest, b"before")
        assert client.flush(TIMEOUT) is True
        refusal = self.send_refused(client, dest)
        self.send(client, dest, b"after")
        assert client.flush(TIMEOUT) is False  # a message failed since the previous flush()...
        assert client.flush(TIMEOUT) is True  # ...said once
        (failed,) = client.get_failed_messages()
        assert failed.body == refusal.body
        assert failed.error_type == refusal.error_type.__name__
        assert re.search(refusal.reason, failed.reason), failed.reason
        stats = client.stats()
        assert (stats["failed"], stats["buffered"]) == (1, 0)
        self.assert_delivered(dest, [b"before", b"after"])  # nothing else was failed or lost

    def test_stats_have_the_documented_keys_and_add_up_after_a_clean_run(self) -> None:
        client = self.client()
        dest = self.new_destination()
        bodies = [b"s-%02d" % i for i in range(50)]
        for body in bodies:
            self.send(client, dest, body)
        assert client.flush(TIMEOUT) is True
        stats = client.stats()
        assert set(stats) >= DOCUMENTED_STATS, DOCUMENTED_STATS - set(stats)
        assert all(isinstance(stats[k], int) for k in DOCUMENTED_STATS)
        assert stats["accepted"] == stats["sent"] == stats["confirmed"] == 50
        zero = ("resent", "failed", "dropped", "buffered", "reconnects")
        assert {k: stats[k] for k in zero} == dict.fromkeys(zero, 0)
        self.assert_delivered(dest, bodies)

    def test_reconnect_listener_and_connection_state_follow_an_outage(self) -> None:
        client = self.client()
        recorder = Recorder()
        client.add_reconnect_listener(recorder)
        dest = self.new_destination()
        self.broker_down()
        # A send meets the outage: some clients only notice a loss by using the connection.
        self.send(client, dest, b"during")
        wait_until(lambda: recorder.count("reconnecting") >= 1, TIMEOUT, what="a reconnect attempt")
        assert client.connection_state is ConnectionState.RECONNECTING
        self.broker_up()
        wait_until(lambda: recorder.count("reconnected") >= 1, TIMEOUT, what="on_reconnected")
        wait_until(lambda: client.connection_state is ConnectionState.CONNECTED, TIMEOUT, what="CONNECTED")
        assert client.flush(TIMEOUT) is True

        events = recorder.events
        calls = [e for e in events if e[0] != "state"]
        calls = calls[: next(i for i, e in enumerate(calls) if e[0] == "reconnected") + 1]
        assert calls[0] == ("lost",)
        assert {e[0] for e in calls[1:-1]} == {"reconnecting"}
        assert [e[1] for e in calls[1:-1]] == list(range(1, len(calls) - 1))  # attempts 1, 2, 3, ...
        states = [(e[1], e[2]) for e in events if e[0] == "state"]
        assert states[:2] == [
            (ConnectionState.CONNECTED, ConnectionState.RECONNECTING),
            (ConnectionState.RECONNECTING, ConnectionState.CONNECTED),
        ]
        assert client.stats()["reconnects"] >= 1
        self.assert_delivered(dest, [b"during"])

    def test_close_drains_what_was_buffered_and_then_refuses_sends(self) -> None:
        client = self.client(drain_timeout=TIMEOUT)
        dest = self.new_destination()
        self.broker_down()
        bodies = [b"drain-%03d" % i for i in range(100)]
        for body in bodies:
            self.send(client, dest, body)
        assert client.get_buffer_size() == 100
        self.broker_up()
        self.close(client)  # waits for the reconnection and every confirmation
        self.assert_delivered(dest, bodies)
        with pytest.raises(ClientClosedError):
            self.send(client, dest, b"late")

    @pytest.mark.parametrize("drain_timeout", [0.0, 0.5])
    def test_a_durable_buffer_left_by_one_client_is_delivered_by_the_next(
        self, tmp_path: Path, drain_timeout: float
    ) -> None:
        path = str(tmp_path / "outbox.db")
        first = self.client(buffer_path=path, drain_timeout=drain_timeout)
        dest = self.new_destination()
        self.broker_down()
        bodies = [b"durable-%02d" % i for i in range(50)]
        for body in bodies:
            self.send(first, dest, body)
        started = time.monotonic()
        self.close(first)  # the broker is down: nothing can drain
        took = time.monotonic() - started
        assert drain_timeout * 0.8 <= took < drain_timeout + self.close_grace, f"close() took {took:.2f} s"
        second = self.client(connected=False, buffer_path=path)
        assert second.get_buffer_size() == 50
        self.broker_up()
        assert second.flush(TIMEOUT) is True
        self.assert_delivered(dest, bodies)

    # -- bad input: the same kinds of errors on every client -------------------------------------------
    def test_a_body_that_is_not_bytes_or_str_is_a_type_error(self) -> None:
        client = self.client()
        dest = self.new_destination()
        with pytest.raises(TypeError):
            self.send(client, dest, 42)
        with pytest.raises(TypeError):
            self.send(client, dest, {"not": "a body"})
        assert client.get_buffer_size() == 0
        self.send(client, dest, b"good")
        assert client.flush(TIMEOUT) is True
        self.assert_delivered(dest, [b"good"])

    def test_a_full_buffer_with_overflow_raise_is_a_buffer_full_error(self) -> None:
        client = self.client(buffer_max_messages=3, buffer_overflow="raise")
        dest = self.new_destination()
        self.broker_down()
        for i in range(3):
            self.send(client, dest, b"o-%d" % i)
        with pytest.raises(BufferFullError, match="buffer full"):
            self.send(client, dest, b"o-3")
        assert client.get_buffer_size() == 3
        self.broker_up()
        assert client.flush(TIMEOUT) is True
        self.assert_delivered(dest, [b"o-0", b"o-1", b"o-2"])

    def test_an_unknown_resilience_kwarg_is_refused(self) -> None:
        with pytest.raises(self.unknown_kwarg_error, match="reconect_tries"):
            self.client(connected=False, reconect_tries=3)

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            ({"buffer_overflow": "sometimes"}, ValueError, "overflow policy must be one of"),
            ({"buffer_max_messages": 0}, ValueError, "buffer_max_messages must be a positive int"),
            ({"reconnect_tries": "3", "reconnect_policy": None}, TypeError, "reconnect_tries must be an int"),
            ({"drain_timeout": -1}, ValueError, "drain_timeout must be >= 0"),
        ],
        ids=["overflow", "max-messages", "tries", "drain"],
    )
    def test_bad_resilience_values_are_refused_alike(
        self, kwargs: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        with pytest.raises(error, match=message):
            self.client(connected=False, **kwargs)
