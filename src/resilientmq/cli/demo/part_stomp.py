"""ActiveMQ behind a ChaosProxy: a reset, the port refused, the broker killed with -9 and restarted, and a
silent partition. The plain client is stomp.py as an application uses it without resilientmq: when its
connection is gone it connects again (at most twice a second) and the message it was sending is lost."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import stomp

from resilientmq import ReconnectPolicy, ResilientActiveMQConnection
from resilientmq.testing import ActiveMQBroker, ChaosProxy

from .driver import DemoClient, PartRun, Step, ours

__all__ = ["run"]

DURATION = 22.0
HEADERS = {"persistent": "true"}


def run(ctx: PartRun) -> None:
    ctx.note("starting ActiveMQ ...")
    with ActiveMQBroker() as broker, ChaosProxy(*broker.host_and_ports[0]) as proxy:
        plain = _Plain(proxy.address, "/queue/demo.plain")
        conn: Any = ResilientActiveMQConnection(
            [proxy.address],
            heartbeats=(1000, 1000),
            reconnect_policy=ReconnectPolicy(initial_delay=0.1, max_delay=1.0, max_attempts=-1),
        )
        conn.connect(wait=True)

        def finish() -> None:
            conn.flush(60)
            conn.close()

        mine = ours(
            "ResilientActiveMQConnection",
            conn,
            "/queue/demo.ours",
            send=lambda _i, body: conn.send("/queue/demo.ours", body, headers=HEADERS),
            finish=finish,
        )

        def kill_and_restart() -> None:
            broker.kill()
            broker.restart()

        script = [
            Step(2.5, "connection reset", proxy.cut),
            Step(5.0, "port refused 3 s", proxy.down, 3.0, proxy.up),
            Step(10.0, "broker kill -9, restart", kill_and_restart),
            Step(17.0, "silent partition 3 s", proxy.blackhole, 3.0, proxy.heal),
        ]
        ctx.stream([plain.client, mine], script, DURATION)
        for client in (plain.client, mine):
            ctx.tally(client, _received(broker.host_and_ports, client.destination))


class _Plain:
    def __init__(self, address: tuple[str, int], destination: str) -> None:
        self._address = address
        self._destination = destination
        self._retry_at = 0.0
        self._conn = self._connect()
        self.client = DemoClient(
            "stomp.py Connection (plain)",
            ours=False,
            destination=destination,
            send=self.send,
            state=lambda: "up" if self._conn is not None and self._conn.is_connected() else "down",
            finish=self.finish,
        )

    def _connect(self) -> Any:
        conn = stomp.Connection([self._address], reconnect_attempts_max=1)
        conn.connect(wait=False)  # stomp.py's wait=True waits for ever in a silent partition
        deadline = time.monotonic() + 2.0
        pause = threading.Event()
        while not conn.is_connected():
            if time.monotonic() > deadline:
                with contextlib.suppress(Exception):
                    conn.disconnect()
                raise ConnectionError(f"no CONNECTED frame from {self._address} within 2 s")
            pause.wait(0.02)
        return conn

    def send(self, _i: int, body: bytes) -> None:
        if self._conn is None or not self._conn.is_connected():
            if time.monotonic() < self._retry_at:
                raise ConnectionError("not connected")
            self._retry_at = time.monotonic() + 0.5
            old, self._conn = self._conn, None
            if old is not None:
                with contextlib.suppress(Exception):
                    old.disconnect()
            self._conn = self._connect()
        self._conn.send(self._destination, body, headers=HEADERS)

    def finish(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.disconnect()


def _received(host_and_ports: list[tuple[str, int]], destination: str) -> list[str]:
    """Every message on ``destination``, by a consumer of its own, until the queue is quiet for 1.5 s."""
    got: list[str] = []
    cond = threading.Condition()

    class Count(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: Any) -> None:
            with cond:
                got.append(frame.body)
                cond.notify_all()

    conn = stomp.Connection(host_and_ports)
    conn.set_listener("count", Count())
    conn.connect(wait=True)
    conn.subscribe(destination, id="count", ack="auto")
    with cond:
        while True:
            before = len(got)
            cond.wait(1.5)
            if len(got) == before:
                break
    conn.disconnect()
    return got
