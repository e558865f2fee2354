"""A durable buffer survives kill -9 of the process that filled it.

The simulator lives inside one process, so the test is built honestly around that: a child process opens
a queue manager connection with ``buffer_path`` while its own simulated queue manager is down, puts N
messages (each is in the buffer file before ``put()`` returns), says so, and is killed with SIGKILL. The
parent then opens the same file with a new client connected to its own (running) simulator, which delivers
what the child left: all N, in order, with their descriptors and properties.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from mqtarget import FAST, MQTarget

from resilientmq import ResilientWebSphereMQQueueManager
from resilientmq.core.buffer import open_buffer

CHILD = textwrap.dedent(
    """
    import sys
    from resilientmq import FOREVER, ReconnectPolicy, ResilientWebSphereMQQueueManager
    from resilientmq.testing import mqsim

    path, n = sys.argv[1], int(sys.argv[2])
    sim = mqsim.Simulator("QM1")
    sim.define_queue("DURABLE.Q")
    sim.stop()  # the queue manager is down for this process's whole life
    mqi, c = sim.mqi, sim.mqi.CMQC
    qm = ResilientWebSphereMQQueueManager(
        "QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)", mqi=mqi, buffer_path=path, background_connect=True,
        reconnect_policy=ReconnectPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=FOREVER),
    )
    q = qm.open_queue("DURABLE.Q", c.MQOO_OUTPUT)
    for i in range(n):
        md = mqi.MD(Persistence=c.MQPER_PERSISTENT, Priority=3, CorrelId=b"corr-%d" % i)
        q.put(b"durable-%04d" % i, md, properties={"seq": i, "origin": "child"})
    print("buffered", qm.get_buffer_size(), sim.stats["puts"], flush=True)
    sys.stdin.read()  # until killed
    """
)


def test_messages_buffered_by_a_killed_process_are_delivered_by_the_next_one(
    sim_mq: MQTarget, tmp_path: Path
) -> None:
    mqi, c = sim_mq.mqi, sim_mq.C
    path = tmp_path / "mq-outbox.db"
    n = 400
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode().split()
        assert line == ["buffered", str(n), "0"], (line, child.stderr.read() if child.stderr else b"")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)

    left = open_buffer(path)  # the durable engine buffer_path= uses
    assert len(left) == n  # nothing lost with the process
    left.close()

    assert sim_mq.sim is not None
    sim_mq.sim.define_queue("DURABLE.Q")
    qm = ResilientWebSphereMQQueueManager(
        "QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)", mqi=mqi, buffer_path=path, reconnect_policy=FAST
    )
    try:
        assert qm.flush(10) is True
        assert qm.get_buffer_size() == 0 and qm.get_failed_messages() == []
    finally:
        qm.disconnect()

    reader = sim_mq.plain()
    q = mqi.Queue(reader, "DURABLE.Q", c.MQOO_INPUT_SHARED)
    for i in range(n):
        handle = mqi.MessageHandle(reader)
        md = mqi.MD()
        assert q.get(None, md, mqi.GMO(MsgHandle=handle.msg_handle)) == b"durable-%04d" % i
        assert md.CorrelId == (b"corr-%d" % i).ljust(24, b"\0")
        assert (md.Persistence, md.Priority) == (c.MQPER_PERSISTENT, 3)
        assert (handle.properties.get("seq"), handle.properties.get("origin")) == (i, "child")
    assert sim_mq.sim.depth("DURABLE.Q") == 0
