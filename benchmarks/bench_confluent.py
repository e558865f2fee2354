"""confluent-kafka throughput: ReconnectAwareConfluentProducer against raw confluent_kafka.Producer, same run.

    python benchmarks/bench_confluent.py [--messages 100000] [--rounds 3] [--size 256] [--profile ROW]

Rows (msg/s and the client's CPU per message, one producing thread, ``acks=all``, values of --size bytes, no
key, ``produce()`` + ``poll(0)`` per message, then ``flush()`` until every message is acknowledged):
  raw               confluent_kafka.Producer, no delivery callback (a full queue: poll(0.01) and produce
                    again, as its docs say)
  raw-callback      the same with an on_delivery callback per message: what an application that checks
                    delivery runs
  ours-memory       ReconnectAwareConfluentProducer with the default in-memory outbox (10,000 messages:
                    produce() waits while librdkafka holds that many, as it would in production)
  ours-memory-cb    the same with the on_delivery callback
  ours-durable      the same with buffer_path (each message's copy is in the LMDB file before produce()
                    returns), no callback
  ours-durable-cb   with buffer_path and the on_delivery callback
CPU per message is this process's CPU time (every thread: ours, librdkafka's) over the messages; the broker
runs in its own process. The split by thread (producing thread, our other Python threads, librdkafka's) is
read from /proc (schedstat). Each producer is built and the topic's metadata fetched before the clock
starts. A warm-up round is not counted; every round then runs the rows in turn on fresh topics; each figure
is the median of --rounds, and ratios compare medians of this run only, against both raw rows.
``--profile ROW`` runs that row once more under cProfile (the producing thread) and prints where the time
goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from resilientmq.confluent import ReconnectAwareConfluentProducer
from resilientmq.testing import TansuBroker

GOALS = {"ours-memory": 0.8, "ours-durable": 0.7}
BASES = ("raw", "raw-callback")


class Row:
    """One row's figures of one round."""

    def __init__(self, rate: float, cpu: float, threads: dict[str, float]) -> None:
        self.rate = rate
        self.cpu = cpu
        self.threads = threads


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """Each thread's group (the producing thread, our Python threads, librdkafka's threads) and CPU seconds,
    from its /proc schedstat (nanoseconds on a CPU)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                seconds = int(f.read().split()[0]) / 1e9
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError, IndexError):
            continue
        name = names.get(int(tid), comm)
        if name == "MainThread":
            group = "producing thread"
        elif comm.startswith("rdk:"):
            group = "librdkafka"
        else:
            group = "our threads"
        out[int(tid)] = (group, seconds)
    return out


def _split(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per group between two snapshots (threads that ended meanwhile are not seen)."""
    out: dict[str, float] = {}
    for tid, (group, seconds) in after.items():
        out[group] = out.get(group, 0.0) + seconds - before.get(tid, (group, 0.0))[1]
    return out


def _timed(producer: Any, topic: str, n: int, value: bytes, callback: Any) -> Row:
    """n produce() + poll(0), then flush(): the row's figures."""
    producer.produce(topic, value)
    if producer.flush(30) != 0:  # topic created, metadata known
        raise RuntimeError("the warm-up message was not delivered")
    produce, poll = producer.produce, producer.poll
    threads, cpu, start = _thread_cpu(), _cpu(), time.perf_counter()
    if callback is None:
        for _ in range(n):
            while True:
                try:
                    produce(topic, value)
                    break
                except BufferError:
                    poll(0.01)
            poll(0)
    else:
        for _ in range(n):
            while True:
                try:
                    produce(topic, value, on_delivery=callback)
                    break
                except BufferError:
                    poll(0.01)
            poll(0)
    if producer.flush(600) != 0:
        raise RuntimeError("flush did not deliver every message")
    elapsed, used = time.perf_counter() - start, _cpu() - cpu
    split = {group: seconds / n for group, seconds in _split(threads, _thread_cpu()).items()}
    return Row(n / elapsed, used / n, split)


class Counted:
    """The application's delivery callback: counts what was delivered."""

    def __init__(self) -> None:
        self.delivered = 0

    def __call__(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += 1


def _raw(callback: bool) -> Callable[[str, str, int, bytes, Path], Row]:
    def run(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> Row:
        producer = Producer({"bootstrap.servers": servers, "acks": "all"})
        return _timed(producer, topic, n, value, Counted() if callback else None)

    return run


def _ours(durable: bool, callback: bool) -> Callable[[str, str, int, bytes, Path], Row]:
    def run(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> Row:
        extra: dict[str, Any] = {"buffer_path": workdir / f"{topic}.db"} if durable else {}
        producer = ReconnectAwareConfluentProducer({"bootstrap.servers": servers, "acks": "all"}, **extra)
        try:
            return _timed(producer, topic, n, value, Counted() if callback else None)
        finally:
            producer.close()

    return run


RUNS: dict[str, Callable[[str, str, int, bytes, Path], Row]] = {
    "raw": _raw(False),
    "raw-callback": _raw(True),
    "ours-memory": _ours(False, False),
    "ours-memory-cb": _ours(False, True),
    "ours-durable": _ours(True, False),
    "ours-durable-cb": _ours(True, True),
}


def profile(name: str, servers: str, n: int, value: bytes, workdir: Path) -> None:
    """Run one row under cProfile (the producing thread's Python frames only)."""
    profiler = cProfile.Profile()
    profiler.enable()
    row = RUNS[name](servers, f"bench-profile-{time.monotonic_ns()}", n, value, workdir)
    profiler.disable()
    print(
        f"\nprofile of {name} (producing thread only): {row.rate:,.0f} msg/s, {row.cpu * 1e6:.2f} us CPU/msg"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--profile", choices=sorted(RUNS), default=None)
    args = parser.parse_args()
    value = b"x" * args.size
    rows: dict[str, list[Row]] = {name: [] for name in RUNS}
    with tempfile.TemporaryDirectory(prefix="bench-confluent-") as tmp, TansuBroker() as broker:
        for round_no in range(args.rounds + 1):
            for name, run in RUNS.items():
                row = run(
                    broker.bootstrap_servers, f"bench-{name}-{round_no}", args.messages, value, Path(tmp)
                )
                label = "warm-up" if round_no == 0 else f"round {round_no}"
                print(
                    f"{label:<8} {name:<16} {row.rate:>10,.0f} msg/s {row.cpu * 1e6:>6.2f} us CPU/msg",
                    flush=True,
                )
                if round_no:
                    rows[name].append(row)
        if args.profile:
            profile(args.profile, broker.bootstrap_servers, args.messages, value, Path(tmp))
    rates = {name: statistics.median(r.rate for r in values) for name, values in rows.items()}
    print(
        f"\n{args.messages:,} x {args.size} B, acks=all, median of {args.rounds} round(s) after a warm-up, "
        "one tansu broker (memory storage)"
    )
    print(
        f"{'producer':<17}{'msg/s':>10}{'/raw':>7}{'/raw-cb':>9}{'goal':>7}{'CPU/msg':>10}"
        f"{'producing':>11}{'ours':>7}{'rdkafka':>9}  rounds (msg/s)"
    )
    for name, values in rows.items():
        median = rates[name]
        goal = GOALS.get(name)
        goal_text = f">={goal:.1f}" if goal else ""
        every = ", ".join(f"{r.rate:,.0f}" for r in values)
        cpu_us = statistics.median(r.cpu for r in values) * 1e6

        def split(group: str, values: list[Row] = values) -> float:
            return statistics.median(r.threads.get(group, 0.0) for r in values) * 1e6

        print(
            f"{name:<17}{median:>10,.0f}{median / rates['raw']:>7.2f}{median / rates['raw-callback']:>9.2f}"
            f"{goal_text:>7}{cpu_us:>8.2f}us{split('producing thread'):>9.2f}us{split('our threads'):>5.2f}us"
            f"{split('librdkafka'):>7.2f}us  {every}"
        )
    print("(CPU per message: the whole process; then by thread: the producing one, our others, librdkafka's)")


if __name__ == "__main__":
    main()
