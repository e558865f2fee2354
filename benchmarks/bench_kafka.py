"""Kafka throughput: ReconnectAwareKafkaProducer against raw kafka-python, in the same run against one tansu.

    python benchmarks/bench_kafka.py [--messages 50000] [--rounds 3] [--size 256]

Rows (msg/s, one producer thread, acks='all', values of --size bytes, no key, send() of every record then
flush() until every record is acknowledged):
  raw             kafka.KafkaProducer
  ours-memory     ReconnectAwareKafkaProducer with the default in-memory buffer (10,000 records: send()
                  blocks while it is full, as it would in production)
  ours-durable    the same with buffer_path (a durable outbox: every send() is in the file first)
  ours-16k        ours-memory with kafka-python's default batch_size (16 KiB; ours defaults to 256 KiB)
  raw-256k        raw with ours' default batch_size: with these two rows, like is compared with like
The producer is built and the topic's metadata fetched before the clock starts. Every round runs the three
in turn on fresh topics; each figure is the median of --rounds, ratios compare medians of this run only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from resilientmq.kafka import ReconnectAwareKafkaProducer
from resilientmq.testing import TansuBroker

GOALS = {"ours-memory": 0.8, "ours-durable": 0.6}


def _timed(producer: Any, topic: str, n: int, value: bytes) -> float:
    producer.send(topic, value).get(30)  # topic created, metadata known
    start = time.perf_counter()
    for _ in range(n):
        producer.send(topic, value)
    if producer.flush(timeout=600) is False:
        raise RuntimeError("flush did not confirm every record")
    return n / (time.perf_counter() - start)


def raw(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> float:
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    try:
        return _timed(producer, topic, n, value)
    finally:
        producer.close()


def ours_memory(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> float:
    producer = ReconnectAwareKafkaProducer(bootstrap_servers=servers, acks="all")
    try:
        return _timed(producer, topic, n, value)
    finally:
        producer.close()


def ours_durable(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> float:
    producer = ReconnectAwareKafkaProducer(
        bootstrap_servers=servers, acks="all", buffer_path=workdir / f"{topic}.db"
    )
    try:
        return _timed(producer, topic, n, value)
    finally:
        producer.close()


def ours_16k(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> float:
    producer = ReconnectAwareKafkaProducer(bootstrap_servers=servers, acks="all", batch_size=16384)
    try:
        return _timed(producer, topic, n, value)
    finally:
        producer.close()


def raw_256k(servers: str, topic: str, n: int, value: bytes, workdir: Path) -> float:
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", batch_size=256 * 1024)
    try:
        return _timed(producer, topic, n, value)
    finally:
        producer.close()


RUNS: dict[str, Callable[[str, str, int, bytes, Path], float]] = {
    "raw": raw,
    "ours-memory": ours_memory,
    "ours-durable": ours_durable,
    "ours-16k": ours_16k,
    "raw-256k": raw_256k,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    value = b"x" * args.size
    rates: dict[str, list[float]] = {name: [] for name in RUNS}
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp, TansuBroker() as broker:
        for round_no in range(1, args.rounds + 1):
            for name, run in RUNS.items():
                topic = f"bench-{name}-{round_no}"
                rate = run(broker.bootstrap_servers, topic, args.messages, value, Path(tmp))
                rates[name].append(rate)
                print(f"round {round_no} {name:<13} {rate:>9,.0f} msg/s", flush=True)
    base = statistics.median(rates["raw"])
    print(
        f"\n{args.messages:,} x {args.size} B, acks='all', median of {args.rounds} round(s), one tansu broker"
    )
    print(f"{'producer':<14}{'msg/s':>10}{'ratio':>8}{'goal':>7}  rounds")
    for name, values in rates.items():
        median = statistics.median(values)
        goal = GOALS.get(name)
        goal_text = f">={goal:.1f}" if goal else ""
        every = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:<14}{median:>10,.0f}{median / base:>8.2f}{goal_text:>7}  {every}")


if __name__ == "__main__":
    main()
