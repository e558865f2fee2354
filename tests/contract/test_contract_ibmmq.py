"""The contract for ResilientWebSphereMQQueueManager: on the MQ simulator, and on a real queue manager.

The simulator's outage is ``sim.stop()``/``sim.start()``. A real queue manager (``RESILIENTMQ_MQ_QMGR``,
``_CHANNEL`` and ``_CONN``; optional ``_USER``, ``_PASSWORD`` and ``_QUEUE``, default ``DEV.QUEUE.1``, a queue
the suite may empty) is reached through a ChaosProxy, whose ``down()``/``up()`` is the outage. The
independent consumer is a plain MQI connection straight to the queue manager.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from contract_suite import ClientContract, Refusal

from resilientmq import DestinationError, ResilientWebSphereMQQueueManager
from resilientmq.testing import ChaosProxy, mqsim

REAL_ENV = ("RESILIENTMQ_MQ_QMGR", "RESILIENTMQ_MQ_CHANNEL", "RESILIENTMQ_MQ_CONN")
REAL_SKIP = "no real queue manager configured: set " + ", ".join(REAL_ENV) + " to run these cases against one"

_names = itertools.count(1)


class MQContract(ClientContract):
    """The MQ hooks; subclasses say which queue manager, how it goes down, and which queue to use."""

    mqi: Any
    qmgr: str
    channel: str
    conn: str  # where the independent consumer connects: the queue manager itself
    client_conn: str  # where the client under test connects
    user: str | None = None
    password: str | None = None

    def make_client(self, **resilience: Any) -> ResilientWebSphereMQQueueManager:
        """Started means ``background_connect=True``: the constructor returns at once and connects later."""
        return ResilientWebSphereMQQueueManager(
            self.qmgr,
            self.channel,
            self.client_conn,
            self.user,
            self.password,
            mqi=self.mqi,
            background_connect=True,
            **resilience,
        )

    def send(self, client: Any, destination: str, body: Any) -> None:
        # Persistent, as an application that cares would put: a queue manager restart keeps the message.
        client.put1(destination, body, self.mqi.MD(Persistence=self.mqi.CMQC.MQPER_PERSISTENT))

    def plain(self) -> Any:
        return self.mqi.connect(self.qmgr, self.channel, self.conn, self.user, self.password)

    def received(self, destination: str, expect: int) -> list[bytes]:
        mqi, c = self.mqi, self.mqi.CMQC
        qm = self.plain()
        bodies: list[bytes] = []
        try:
            q = mqi.Queue(qm, destination, c.MQOO_INPUT_SHARED)
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                # Waits while messages are still expected; then takes what is left (duplicates) at once.
                waiting = len(set(bodies)) < expect
                options = c.MQGMO_NO_SYNCPOINT | (c.MQGMO_WAIT if waiting else c.MQGMO_NO_WAIT)
                try:
                    bodies.append(q.get(None, mqi.MD(), mqi.GMO(Options=options, WaitInterval=200)))
                except mqi.MQMIError as exc:
                    if exc.reason != c.MQRC_NO_MSG_AVAILABLE:
                        raise
                    if not waiting:
                        break
            q.close()
        finally:
            qm.disconnect()
        return bodies

    def close(self, client: Any) -> None:
        client.disconnect()  # flushes first, bounded by drain_timeout

    def send_refused(self, client: Any, destination: str) -> Refusal:
        # While connected, a put to an unknown queue raises at once (the queue is checked when first put
        # to); put during an outage, it is buffered and the queue manager refuses it on delivery.
        body = b"to nowhere"
        self.broker_down()
        client.put1(f"RMQ.NOSUCH.{uuid.uuid4().hex[:12].upper()}", body)
        self.broker_up()
        return Refusal(body, DestinationError, re.escape("2085") + "|" + re.escape("2035"))


class TestMQSimulator(MQContract):
    sim: mqsim.Simulator

    @contextlib.contextmanager
    def broker(self, request: pytest.FixtureRequest) -> Iterator[None]:
        self.sim = mqsim.Simulator(queue_manager_name="QM1")
        self.mqi = self.sim.mqi
        self.qmgr, self.channel = "QM1", "DEV.APP.SVRCONN"
        self.conn = self.client_conn = "127.0.0.1(1414)"
        yield

    def new_destination(self) -> str:
        name = f"CONTRACT.Q{next(_names)}"
        self.sim.define_queue(name, max_depth=100_000)
        return name

    def broker_down(self) -> None:
        self.sim.stop()

    def broker_up(self) -> None:
        self.sim.start()


class TestRealQueueManager(MQContract):
    proxy: ChaosProxy
    queue: str

    @contextlib.contextmanager
    def broker(self, request: pytest.FixtureRequest) -> Iterator[None]:
        if any(not os.environ.get(name) for name in REAL_ENV):
            pytest.skip(REAL_SKIP)
        try:
            self.mqi = importlib.import_module("ibmmq")
        except ImportError as exc:
            pytest.fail(f"a real queue manager is configured but the ibmmq client cannot be loaded: {exc}")
        self.qmgr = os.environ["RESILIENTMQ_MQ_QMGR"]
        self.channel = os.environ["RESILIENTMQ_MQ_CHANNEL"]
        self.conn = os.environ["RESILIENTMQ_MQ_CONN"]
        self.user = os.environ.get("RESILIENTMQ_MQ_USER")
        self.password = os.environ.get("RESILIENTMQ_MQ_PASSWORD")
        self.queue = os.environ.get("RESILIENTMQ_MQ_QUEUE", "DEV.QUEUE.1")
        found = re.fullmatch(r"\s*([^(,\s]+)\((\d+)\).*", self.conn)
        if found is None:
            pytest.fail(f"RESILIENTMQ_MQ_CONN must start with 'host(port)', got {self.conn!r}")
        with ChaosProxy(found.group(1), int(found.group(2))) as self.proxy:
            self.client_conn = f"127.0.0.1({self.proxy.port})"
            yield

    def new_destination(self) -> str:
        self.received(self.queue, 0)  # one configured queue: empty it for this test
        return self.queue

    def broker_down(self) -> None:
        self.proxy.down()

    def broker_up(self) -> None:
        self.proxy.up()
