"""confluent-kafka throughput: ReconnectAwareConfluentProducer against raw confluent_kafka.Producer, same run.

    python benchmarks/bench_confluent.py [--messages 100000] [--rounds 3] [--size 256] [--profile ROW]

Rows (msg/s and the client's CPU per message, one producing thread, ``acks=all``, values of --size bytes, no
key, ``produce()`` + ``poll(0)`` per message, then ``flush()`` until every message is acknowledged):
  raw            confluent_kafka.Producer (a full queue: poll(0.01) and produce again, as its docs say)
  ours-memory    ReconnectAwareConfluentProducer with the default in-memory outbox (10,000 messages:
                 produce() blocks while it is full, as it would in production)
  ours-durable   the same with buffer_path (the LMDB outbox: every produce() is in the file first)
CPU per message is this process's CPU time (every thread: ours, librdkafka's) over the messages; the broker
runs in its own process. Each producer is built and the topic's metadata fetched before the clock starts. A
warm-up round is not counted; every round then runs the rows in turn on fresh topics; each figure is the
median of --rounds, and ratios compare medians of this run only. ``--profile ours-memory`` runs that row
once more under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from resilientmq.confluent import ReconnectAwareConfluentProducer
from resilientmq.testing import TansuBroker

GOALS = {"ours-memory": 0.8, "ours-durable": 0.7}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(producer: Any, topic: str, n: int, value: bytes) -> tuple[float, float]:
    """(messages per second, CPU seconds per message) for n produce() + poll(0), then flush()."""
    producer.produce(topic, value)
    if producer.flush(30) != 0:  # topic created, metadata known
        raise RuntimeError("the warm-up message was not delivered")
    produce, poll = producer.produce, producer.poll
    cpu, start = _cpu(), time.perf_counter()
    for _ in range(n):
        while True:
            try:
                produce(topic, value)
                break
            except BufferError:
                poll(0.01)
        poll(0)
    if producer.flush(600) != 0:
        raise RuntimeError("flush did not deliver every message")
    elapsed, used = time.perf_counter() - start, _cpu() - cpu
    return n / elapsed, used / n


def raw(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> tuple[float, float]:
    producer = Producer({"bootstrap.servers": servers, "acks": "all"})
    return _timed(producer, topic, n, value)


def ours_memory(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> tuple[float, float]:
    producer = ReconnectAwareConfluentProducer({"bootstrap.servers": servers, "acks": "all"})
    try:
        return _timed(producer, topic, n, value)
    finally:
        producer.close()


def ours_durable(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> tuple[float, float]:
    path = workdir / f"{topic}.db"
    producer = ReconnectAwareConfluentProducer(
        {"bootstrap.servers": servers, "acks": "all"}, buffer_path=path
    )
    try:
        return _timed(producer, topic, n, value)
    finally:
        producer.close()


RUNS: dict[str, Callable[[str, str, int, bytes, Path], tuple[float, float]]] = {
    "raw": raw,
    "ours-memory": ours_memory,
    "ours-durable": ours_durable,
}


def profile(name: str, servers: str, n: int, value: bytes, workdir: Path) -> None:
    """Run one row under cProfile (every thread's Python frames are not seen: the caller's only)."""
    profiler = cProfile.Profile()
    profiler.enable()
    rate, cpu = RUNS[name](servers, f"bench-profile-{time.monotonic_ns()}", n, value, workdir)
    profiler.disable()
    print(f"\nprofile of {name} (producing thread only): {rate:,.0f} msg/s, {cpu * 1e6:.2f} us CPU/msg")
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
    rates: dict[str, list[float]] = {name: [] for name in RUNS}
    cpus: dict[str, list[float]] = {name: [] for name in RUNS}
    with tempfile.TemporaryDirectory(prefix="bench-confluent-") as tmp, TansuBroker() as broker:
        for round_no in range(args.rounds + 1):
            for name, run in RUNS.items():
                rate, cpu = run(
                    broker.bootstrap_servers, f"bench-{name}-{round_no}", args.messages, value, Path(tmp)
                )
                label = "warm-up" if round_no == 0 else f"round {round_no}"
                print(f"{label:<8} {name:<13} {rate:>10,.0f} msg/s {cpu * 1e6:>6.2f} us CPU/msg", flush=True)
                if round_no:
                    rates[name].append(rate)
                    cpus[name].append(cpu)
        if args.profile:
            profile(args.profile, broker.bootstrap_servers, args.messages, value, Path(tmp))
    base = statistics.median(rates["raw"])
    print(
        f"\n{args.messages:,} x {args.size} B, acks=all, median of {args.rounds} round(s) after a warm-up, "
        "one tansu broker (memory storage)"
    )
    print(f"{'producer':<14}{'msg/s':>10}{'ratio':>8}{'goal':>7}{'CPU/msg':>10}  rounds (msg/s)")
    for name, values in rates.items():
        median = statistics.median(values)
        goal = GOALS.get(name)
        goal_text = f">={goal:.1f}" if goal else ""
        every = ", ".join(f"{v:,.0f}" for v in values)
        cpu_us = statistics.median(cpus[name]) * 1e6
        print(f"{name:<14}{median:>10,.0f}{median / base:>8.2f}{goal_text:>7}{cpu_us:>8.2f}us  {every}")


if __name__ == "__main__":
    main()
