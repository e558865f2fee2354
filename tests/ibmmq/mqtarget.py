"""The queue manager a test of the IBM MQ suite runs against (see conftest.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from resilientmq import FOREVER, DestinationError, ReconnectPolicy, ResilientWebSphereMQQueueManager
from resilientmq.testing import mqsim

FAST = ReconnectPolicy(initial_delay=0.01, multiplier=2.0, max_delay=0.05, max_attempts=FOREVER)

_names = itertools.count(1)


def ibmmq_installed() -> bool:
    """True when the ``ibmmq`` package can be found (its pure-Python part; IBM's C client may be missing).

    Robust to an import hook that blocks ``ibmmq`` (test_without_ibmmq.py runs the suite under one).
    """
    try:
        return importlib.util.find_spec("ibmmq") is not None
    except ImportError:
        return False


class MQTarget:
    """One queue manager for a test: the simulator or a real one, and how to reach it."""

    def __init__(self, mqi: Any, sim: mqsim.Simulator | None, qmgr: str, channel: str, conn: str) -> None:
        self.mqi = mqi
        self.C = mqi.CMQC
        self.sim = sim
        self.qmgr = qmgr
        self.channel = channel
        self.conn = conn
        self.user = os.environ.get("RESILIENTMQ_MQ_USER") if sim is None else None
        self.password = os.environ.get("RESILIENTMQ_MQ_PASSWORD") if sim is None else None
        self._clients: list[Any] = []

    @property
    def is_sim(self) -> bool:
        return self.sim is not None

    def queue(self, **options: Any) -> str:
        """An empty queue for this test: a new one on the simulator, the configured one (drained) on a real
        queue manager."""
        if self.sim is not None:
            name = f"TEST.Q{next(_names)}"
            self.sim.define_queue(name, max_depth=options.pop("max_depth", 100_000), **options)
            return name
        if options:
            pytest.skip(f"queue attributes {sorted(options)} need the simulator")
        name = os.environ.get("RESILIENTMQ_MQ_QUEUE", "DEV.QUEUE.1")
        self.drain(name)
        return name

    @contextlib.contextmanager
    def authorized(self, what: str) -> Iterator[None]:
        """On a real queue manager, skip (with the reason) when the configured user may not do ``what``."""
        try:
            yield
        except DestinationError as exc:
            if self.sim is None and getattr(exc, "reason", None) == self.C.MQRC_NOT_AUTHORIZED:
                pytest.skip(f"the configured user may not {what} on this queue manager: {exc}")
            raise

    def plain(self) -> Any:
        """An independent plain MQI connection (for putting and counting behind the adapter's back)."""
        qm = self.mqi.connect(self.qmgr, self.channel, self.conn, self.user, self.password)
        self._clients.append(qm)
        return qm

    def resilient(self, **kwargs: Any) -> ResilientWebSphereMQQueueManager:
        kwargs.setdefault("reconnect_policy", FAST)
        kwargs.setdefault("drain_timeout", 5.0)
        if self.user is not None:
            kwargs.setdefault("user", self.user)
            kwargs.setdefault("password", self.password)
        qm = ResilientWebSphereMQQueueManager(self.qmgr, self.channel, self.conn, mqi=self.mqi, **kwargs)
        self._clients.append(qm)
        return qm

    def drain(self, queue: str, *, wait_ms: int = 0) -> list[tuple[bytes, Any]]:
        """Every message on ``queue``, got destructively over a plain connection: (body, MD)."""
        mqi, c = self.mqi, self.C
        qm = self.plain()
        q = mqi.Queue(qm, queue, c.MQOO_INPUT_SHARED)
        out = []
        try:
            while True:
                md = mqi.MD()
                options = c.MQGMO_NO_SYNCPOINT | (c.MQGMO_WAIT if wait_ms else c.MQGMO_NO_WAIT)
                gmo = mqi.GMO(Options=options, WaitInterval=wait_ms)
                try:
                    out.append((q.get(None, md, gmo), md))
                except mqi.MQMIError as exc:
                    if exc.reason == c.MQRC_NO_MSG_AVAILABLE:
                        return out
                    raise
        finally:
            q.close()

    def close(self) -> None:
        for client in reversed(self._clients):
            with contextlib.suppress(Exception):
                client.disconnect()
