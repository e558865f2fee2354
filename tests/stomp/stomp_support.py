"""Helpers for the STOMP suite: an independent consumer that counts, and connection presets."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stomp

from resilientmq import ReconnectPolicy
from resilientmq.stomp import MESSAGE_ID_HEADER, ResilientActiveMQConnection
from resilientmq.stomp.ledger import LEDGER_PREFIX
from resilientmq.testing import ChaosProxy, wait_until

__all__ = [
    "FAST",
    "RABBIT_ADDRESS",
    "BrokerTarget",
    "Collector",
    "Tally",
    "browse",
    "consume_all",
    "ledger_of",
    "tally",
    "wait_until",
]

RABBIT_ADDRESS = ("127.0.0.1", 61613)

# Quick to notice and quick to come back, so outages in tests last seconds, not minutes.
FAST = ReconnectPolicy(initial_delay=0.05, multiplier=2.0, max_delay=0.5, jitter=0.1, max_attempts=-1)


@dataclass
class BrokerTarget:
    kind: str
    address: tuple[str, int]
    proxy: ChaosProxy | None = None
    user: str | None = None
    password: str | None = None

    def destination(self, name: str = "q") -> str:
        return f"/queue/rmq-test.{name}.{uuid.uuid4().hex[:10]}"

    def resilient(self, **kw: Any) -> ResilientActiveMQConnection:
        """A resilient connection through the proxy, with test-friendly timings."""
        opts: dict[str, Any] = {
            "heartbeats": (500, 500),
            "reconnect_policy": FAST,
            "receipt_timeout": 5.0,
            "connect_timeout": 3.0,
        }
        opts.update(kw)
        assert self.proxy is not None, "this target has no proxy"
        return ResilientActiveMQConnection([self.proxy.address], **opts)

    def connect(self, conn: stomp.Connection, **kw: Any) -> None:
        conn.connect(self.user, self.password, wait=True, **kw)

    def plain(self) -> stomp.Connection:
        """A plain stomp.py connection straight to the broker (no proxy): the independent witness."""
        conn = stomp.Connection([self.address])
        self.connect(conn)
        return conn


class Collector(stomp.ConnectionListener):  # type: ignore[misc]
    """Records every MESSAGE (body, our id header, headers); optionally acks with ``ack``."""

    def __init__(self, ack: Callable[[Any], None] | None = None) -> None:
        self.cond = threading.Condition()
        self.bodies: list[str] = []
        self.ids: list[str | None] = []
        self.frames: list[Any] = []
        self._ack = ack

    def on_message(self, frame: Any) -> None:
        with self.cond:
            self.bodies.append(frame.body)
            self.ids.append(frame.headers.get(MESSAGE_ID_HEADER))
            self.frames.append(frame)
            self.cond.notify_all()
        if self._ack is not None:
            self._ack(frame)

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(set(self.bodies)) >= n, timeout)

    def settle(self, quiet: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until no new message has arrived for ``quiet`` seconds (to catch late duplicates)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while time.monotonic() < deadline:
                before = len(self.bodies)
                self.cond.wait(quiet)
                if len(self.bodies) == before:
                    return


@dataclass
class Tally:
    sent: int
    received: int
    unique: int
    lost: int
    duplicates: int
    order_ok: bool


def consume_all(target: BrokerTarget, destination: str, expected: list[str], timeout: float = 60.0) -> Tally:
    """Drain ``destination`` with a plain consumer and compare with what was sent."""
    collector = Collector()
    conn = target.plain()
    conn.set_listener("collector", collector)
    conn.subscribe(destination, id="witness", ack="auto")
    try:
        collector.wait_for(len(set(expected)), timeout)
        collector.settle()
    finally:
        conn.disconnect()
    return tally(expected, collector.bodies)


def tally(expected: list[str], received: list[str]) -> Tally:
    wanted = set(expected)
    unique = set(received)
    firsts: list[str] = []
    seen: set[str] = set()
    for body in received:
        if body not in seen:
            seen.add(body)
            firsts.append(body)
    position = {body: i for i, body in enumerate(expected)}
    order = [position[b] for b in firsts if b in position]
    return Tally(
        sent=len(expected),
        received=len(received),
        unique=len(unique & wanted),
        lost=len(wanted - unique),
        duplicates=len(received) - len(unique),
        order_ok=order == sorted(order),
    )


def browse(target: BrokerTarget, destination: str, timeout: float = 10.0) -> list[Any]:
    """The messages an ActiveMQ queue holds now, read with a queue browser (``browser:true``): nothing is
    consumed. Raises TimeoutError if the browse does not end."""
    ended = threading.Event()
    frames: list[Any] = []

    class Browser(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: Any) -> None:
            if frame.headers.get("browser") == "end":
                ended.set()
            else:
                frames.append(frame)

    conn = stomp.Connection([target.address])
    conn.set_listener("browser", Browser())
    target.connect(conn)
    try:
        conn.subscribe(destination, id="browse", ack="auto", headers={"browser": "true"})
        if not ended.wait(timeout):
            raise TimeoutError(f"browsing {destination} did not end")
    finally:
        conn.disconnect()
    return frames


def ledger_of(conn: ResilientActiveMQConnection) -> str:
    """The ledger queue of ``conn`` (named by its outbox identity)."""
    return LEDGER_PREFIX + conn._rmq.buffer.identity
