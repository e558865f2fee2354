"""A producer with a durable outbox, for the buffer tool's tests: run as ``python buffer_child.py PATH``.

On the MQ simulator (in this process): two messages, buffered while the queue manager is stopped, to a
queue it then refuses (they fail for good, with MQ's reason); then the queue manager stops again and five
more are accepted into the outbox, three text bodies to DEMO.A and two binary ones to DEMO.B. It prints
``ready`` and waits to be killed (-9).
"""

from __future__ import annotations

import sys
import threading

from resilientmq import ReconnectPolicy, ResilientWebSphereMQQueueManager
from resilientmq.testing import mqsim, wait_until


def main(path: str) -> None:
    sim = mqsim.Simulator(queue_manager_name="QM1")
    mqi = sim.mqi
    for queue in ("DEMO.A", "DEMO.B", "DEMO.DENIED"):
        sim.define_queue(queue)
    sim.deny("DEMO.DENIED")
    qm = ResilientWebSphereMQQueueManager(
        "QM1",
        "DEV.APP.SVRCONN",
        "127.0.0.1(1414)",
        mqi=mqi,
        buffer_path=path,
        reconnect_policy=ReconnectPolicy(initial_delay=0.05, max_delay=0.1, max_attempts=-1),
    )
    sim.stop()
    for i in range(2):
        qm.put1("DEMO.DENIED", f"refused {i}".encode(), mqi.MD())
    sim.start()
    wait_until(lambda: len(qm.get_failed_messages()) == 2, timeout=10, what="the two refusals")
    sim.stop()
    for i in range(3):
        qm.put1("DEMO.A", f"order {i}".encode(), mqi.MD())
    for i in range(2):
        qm.put1("DEMO.B", bytes([0xFF, 0x00, i]), mqi.MD())
    print("ready", flush=True)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main(sys.argv[1])
