"""Fixtures for the IBM MQ suite.

``mq`` runs a test twice: on the simulator, and on a real queue manager when ``RESILIENTMQ_MQ_QMGR``,
``RESILIENTMQ_MQ_CHANNEL`` and ``RESILIENTMQ_MQ_CONN`` are set (optionally ``RESILIENTMQ_MQ_USER``,
``RESILIENTMQ_MQ_PASSWORD`` and ``RESILIENTMQ_MQ_QUEUE``, default ``DEV.QUEUE.1``, a queue the suite may
empty). ``sim_mq`` is the simulator only, for tests that stop, break or inject faults into the queue manager.
Messages are counted with a separate plain MQI connection, never through the adapter's counters.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

import pytest
from mqtarget import MQTarget

from resilientmq.testing import mqsim

REAL_ENV = ("RESILIENTMQ_MQ_QMGR", "RESILIENTMQ_MQ_CHANNEL", "RESILIENTMQ_MQ_CONN")
REAL_SKIP = "no real queue manager configured: set " + ", ".join(REAL_ENV) + " to run these cases against one"


def _real_target() -> MQTarget:
    missing = [name for name in REAL_ENV if not os.environ.get(name)]
    if missing:
        pytest.skip(REAL_SKIP)
    try:
        mqi = importlib.import_module("ibmmq")
    except ImportError as exc:
        pytest.fail(f"a real queue manager is configured but the ibmmq client cannot be loaded: {exc}")
    return MQTarget(
        mqi,
        None,
        os.environ["RESILIENTMQ_MQ_QMGR"],
        os.environ["RESILIENTMQ_MQ_CHANNEL"],
        os.environ["RESILIENTMQ_MQ_CONN"],
    )


def _sim_target() -> MQTarget:
    sim = mqsim.Simulator(queue_manager_name="QM1")
    return MQTarget(sim.mqi, sim, "QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")


@pytest.fixture(params=["sim", "ibmmq"])
def mq(request: pytest.FixtureRequest) -> Iterator[MQTarget]:
    """The simulator, and a real queue manager when one is configured."""
    target = _sim_target() if request.param == "sim" else _real_target()
    try:
        yield target
    finally:
        target.close()


@pytest.fixture
def sim_mq() -> Iterator[MQTarget]:
    """The simulator only: for tests that stop, quiesce, break or inject faults into the queue manager."""
    target = _sim_target()
    try:
        yield target
    finally:
        target.close()
