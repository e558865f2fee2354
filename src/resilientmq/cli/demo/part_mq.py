"""IBM MQ on the MQI simulator: connections broken and the queue manager stopped mid-stream.

The plain client is what an application without resilientmq does: on an MQ error it drops that message and
opens a new connection for the next one."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from resilientmq import ReconnectPolicy, ResilientWebSphereMQQueueManager
from resilientmq.testing import mqsim

from .driver import DemoClient, PartRun, Step, ours

__all__ = ["run"]

WHERE = ("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
DURATION = 8.0


def run(ctx: PartRun) -> None:
    sim = mqsim.Simulator(queue_manager_name=WHERE[0])
    mqi, c = sim.mqi, sim.mqi.CMQC
    for queue in ("DEMO.PLAIN", "DEMO.OURS"):
        sim.define_queue(queue, max_depth=ctx.messages * 2)
    plain = _Plain(mqi, "DEMO.PLAIN")
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.25, max_attempts=-1)
    qm: Any = ResilientWebSphereMQQueueManager(*WHERE, mqi=mqi, reconnect_policy=policy)
    q = qm.open_queue("DEMO.OURS", c.MQOO_OUTPUT)

    def finish() -> None:
        qm.flush(60)
        qm.disconnect()

    mine = ours(
        "ResilientWebSphereMQQueueManager",
        qm,
        "DEMO.OURS",
        send=lambda _i, body: q.put(body, mqi.MD(Persistence=c.MQPER_PERSISTENT)),
        finish=finish,
    )
    script = [
        Step(1.5, "connections broken (2009)", sim.break_connections),
        Step(3.0, "queue manager stopped 2 s (2162/2059)", sim.stop, 2.0, sim.start),
        Step(6.5, "connections broken (2009)", sim.break_connections),
    ]
    ctx.stream([plain.client, mine], script, DURATION)
    for client in (plain.client, mine):
        ctx.tally(client, _drain(mqi, client.destination))


class _Plain:
    """ibmmq's QueueManager and Queue as an application uses them without resilientmq."""

    def __init__(self, mqi: Any, queue: str) -> None:
        self._mqi = mqi
        self._queue = queue
        self._qm: Any = None
        self._q: Any = None
        self._retry_at = 0.0
        self.client = DemoClient(
            "ibmmq QueueManager (plain, simulated)",
            ours=False,
            destination=queue,
            send=self.send,
            state=lambda: "up" if self._q is not None else "down",
            finish=self.finish,
            counts_confirmations=True,
        )

    def send(self, _i: int, body: bytes) -> None:
        mqi, c = self._mqi, self._mqi.CMQC
        if self._q is None:
            if time.monotonic() < self._retry_at:
                raise ConnectionError("not connected")
            self._retry_at = time.monotonic() + 0.1
            self._qm = mqi.connect(*WHERE)
            self._q = mqi.Queue(self._qm, self._queue, c.MQOO_OUTPUT)
        try:
            self._q.put(body, mqi.MD(Persistence=c.MQPER_PERSISTENT))  # returned: the queue manager has it
        except mqi.MQMIError:
            self._q = None  # that message is gone; a new connection for the next one
            raise
        self.client.mark_confirmed()

    def finish(self) -> None:
        with contextlib.suppress(Exception):
            if self._q is not None:
                self._q.close()
            if self._qm is not None:
                self._qm.disconnect()


def _drain(mqi: Any, queue: str) -> list[bytes]:
    """Every message on ``queue``, read by a connection of its own."""
    c = mqi.CMQC
    qm = mqi.connect(*WHERE)
    q = mqi.Queue(qm, queue, c.MQOO_INPUT_SHARED)
    got = []
    try:
        while True:
            try:
                got.append(q.get(None, mqi.MD(), mqi.GMO(Options=c.MQGMO_NO_WAIT)))
            except mqi.MQMIError as exc:
                if exc.reason == c.MQRC_NO_MSG_AVAILABLE:
                    return got
                raise
    finally:
        q.close()
        qm.disconnect()
