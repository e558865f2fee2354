"""IBM MQ put throughput on the MQI simulator: plain ibmmq-shaped puts against
ResilientWebSphereMQQueueManager, synchronous (the default) and pipelined (``async_puts=True``), in memory
and with ``buffer_path``.

    python benchmarks/bench_ibmmq.py [--messages 20000] [--rounds 3] [--size 256]

Rows (msg/s, one thread, --size bytes, persistent, outside syncpoint, every message on the queue at the end):
  plain              the simulator's own ibmmq-shaped API: Queue.put (the baseline: no adapter at all)
  ours-sync          ResilientQueue.put, synchronous while connected: MQPUT on the application's connection
  ours-sync-durable  the same with buffer_path (nothing is buffered while connected, so it costs nothing)
  ours-async         async_puts=True: every put goes through the outbox and the sender thread; then flush()
  ours-async-durable the same with buffer_path (each put is in the LMDB file before put() returns)
No queue manager can run here, so this measures the client side only: the simulator answers each MQPUT in
microseconds, where a real queue manager over TCP takes a round trip per synchronous put (that is what
async_puts buys back). Connections are made and queues opened before the clock starts. Each round runs
every row in turn on a fresh queue after a warm-up round; each figure is the median of --rounds, and the
ratios compare medians of this run only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resilientmq import FOREVER, ReconnectPolicy, ResilientWebSphereMQQueueManager
from resilientmq.testing import mqsim

WHERE = ("QM1", "DEV.APP.SVRCONN", "127.0.0.1(1414)")
POLICY = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=FOREVER)


def _count(sim: mqsim.Simulator, queue: str, n: int) -> None:
    if sim.depth(queue) != n:
        raise RuntimeError(f"{queue}: {sim.depth(queue)} messages on the queue, expected {n}")


def plain(sim: mqsim.Simulator, queue: str, n: int, body: bytes, workdir: Path) -> float:
    mqi, c = sim.mqi, sim.mqi.CMQC
    qm = mqi.connect(*WHERE)
    q = mqi.Queue(qm, queue, c.MQOO_OUTPUT)
    start = time.perf_counter()
    for _ in range(n):
        q.put(body, mqi.MD(Persistence=c.MQPER_PERSISTENT), mqi.PMO(Options=c.MQPMO_NO_SYNCPOINT))
    rate = n / (time.perf_counter() - start)
    q.close()
    qm.disconnect()
    return rate


def _ours(sim: mqsim.Simulator, queue: str, n: int, body: bytes, **kwargs: Any) -> float:
    mqi, c = sim.mqi, sim.mqi.CMQC
    qm = ResilientWebSphereMQQueueManager(
        *WHERE, mqi=mqi, reconnect_policy=POLICY, buffer_max_messages=max(n, 10_000), **kwargs
    )
    try:
        q = qm.open_queue(queue, c.MQOO_OUTPUT)
        start = time.perf_counter()
        for _ in range(n):
            q.put(body, mqi.MD(Persistence=c.MQPER_PERSISTENT), mqi.PMO(Options=c.MQPMO_NO_SYNCPOINT))
        if not qm.flush(600):
            raise RuntimeError("flush did not confirm every message")
        rate = n / (time.perf_counter() - start)
        q.close()
        return rate
    finally:
        qm.disconnect()


def ours_sync(sim: mqsim.Simulator, queue: str, n: int, body: bytes, workdir: Path) -> float:
    return _ours(sim, queue, n, body)


def ours_sync_durable(sim: mqsim.Simulator, queue: str, n: int, body: bytes, workdir: Path) -> float:
    return _ours(sim, queue, n, body, buffer_path=workdir / f"{queue}.db")


def ours_async(sim: mqsim.Simulator, queue: str, n: int, body: bytes, workdir: Path) -> float:
    return _ours(sim, queue, n, body, async_puts=True)


def ours_async_durable(sim: mqsim.Simulator, queue: str, n: int, body: bytes, workdir: Path) -> float:
    return _ours(sim, queue, n, body, async_puts=True, buffer_path=workdir / f"{queue}.db")


RUNS: dict[str, Callable[[mqsim.Simulator, str, int, bytes, Path], float]] = {
    "plain": plain,
    "ours-sync": ours_sync,
    "ours-sync-durable": ours_sync_durable,
    "ours-async": ours_async,
    "ours-async-durable": ours_async_durable,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    body = b"x" * args.size
    sim = mqsim.Simulator("QM1")
    rates: dict[str, list[float]] = {name: [] for name in RUNS}
    with tempfile.TemporaryDirectory(prefix="bench-ibmmq-") as tmp:
        for round_no in range(args.rounds + 1):  # round 0 warms up and is not counted
            for name, run in RUNS.items():
                queue = f"BENCH.{name.upper().replace('-', '.')}.{round_no}"
                sim.define_queue(queue, max_depth=args.messages * 2)
                rate = run(sim, queue, args.messages, body, Path(tmp))
                _count(sim, queue, args.messages)
                sim.delete_queue(queue)
                if round_no:
                    rates[name].append(rate)
                    print(f"round {round_no} {name:<19} {rate:>9,.0f} msg/s", flush=True)
    base = statistics.median(rates["plain"])
    print(f"\n{args.messages:,} x {args.size} B persistent puts on the MQ simulator, median of {args.rounds}")
    print(f"{'producer':<20}{'msg/s':>10}{'ratio':>8}  rounds")
    for name, values in rates.items():
        median = statistics.median(values)
        every = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:<20}{median:>10,.0f}{median / base:>8.2f}  {every}")


if __name__ == "__main__":
    main()
