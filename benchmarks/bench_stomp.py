"""STOMP throughput: resilientmq against raw stomp.py, measured in the same run against one ActiveMQ.

    python benchmarks/bench_stomp.py [--messages 20000] [--rounds 3]

Rows (msg/s, persistent 256-byte messages, one producer thread):
  raw-disconnect   stomp.py sends, closed by a DISCONNECT receipt (fast, but nothing is confirmed per message)
  raw-receipt      stomp.py awaiting a RECEIPT for every message (confirmed, slow)
  ours-memory      ResilientActiveMQConnection: send() all, flush() until every message is confirmed
                   (with its ledger, the default on ActiveMQ: every transaction also records its batch)
  ours-no-ledger   the same with ledger=False: what the ledger costs is ours-memory / ours-no-ledger
  ours-durable     the same as ours-memory with buffer_path (LMDB outbox)
Each figure is the median of --rounds (after --warmup rounds that are not counted: the broker's JIT);
ratios compare medians from this run only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import stomp

from resilientmq.stomp import ResilientActiveMQConnection
from resilientmq.testing import ActiveMQBroker

BODY = "x" * 256


class _Receipts(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: set[str] = set()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        with self.cond:
            self.seen.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def wait(self, receipt: str, timeout: float = 120) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: receipt in self.seen, timeout):
                raise TimeoutError(f"no receipt {receipt}")


def raw_disconnect(hp: list[tuple[str, int]], n: int, queue: str) -> float:
    conn = stomp.Connection(hp)
    receipts = _Receipts()
    conn.set_listener("r", receipts)
    conn.connect(wait=True)
    start = time.perf_counter()
    for _ in range(n):
        conn.send(queue, BODY, headers={"persistent": "true"})
    conn.disconnect(receipt="bye")
    receipts.wait("bye")
    return n / (time.perf_counter() - start)


def raw_receipt(hp: list[tuple[str, int]], n: int, queue: str) -> float:
    conn = stomp.Connection(hp)
    receipts = _Receipts()
    conn.set_listener("r", receipts)
    conn.connect(wait=True)
    start = time.perf_counter()
    for i in range(n):
        conn.send(queue, BODY, headers={"persistent": "true", "receipt": f"r{i}"})
        receipts.wait(f"r{i}")
    elapsed = time.perf_counter() - start
    conn.disconnect()
    return n / elapsed


def ours(
    hp: list[tuple[str, int]], n: int, queue: str, buffer_path: str | None = None, *, ledger: bool = True
) -> float:
    conn = ResilientActiveMQConnection(
        hp, buffer_path=buffer_path, buffer_max_messages=max(n, 10_000), ledger=ledger
    )
    conn.connect(wait=True)
    start = time.perf_counter()
    for _ in range(n):
        conn.send(queue, BODY)
    if not conn.flush(timeout=300):
        raise RuntimeError(f"not every message was confirmed: {conn.stats()}")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def drain(hp: list[tuple[str, int]], queue: str, expected: int) -> int:
    """Consume what a row sent, so the broker's store does not grow across rows (and check the count)."""
    seen = threading.Semaphore(0)
    count = [0]

    class Counter(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: stomp.utils.Frame) -> None:
            count[0] += 1
            if count[0] == expected:
                seen.release()

    conn = stomp.Connection(hp)
    conn.set_listener("c", Counter())
    conn.connect(wait=True)
    conn.subscribe(queue, id="d", ack="auto")
    seen.acquire(timeout=120)
    conn.disconnect()
    return count[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--receipt-messages", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="rounds first run and not counted (JIT)")
    args = parser.parse_args()

    with ActiveMQBroker(heap="1g", fast_start=False) as broker, tempfile.TemporaryDirectory() as tmp:
        hp = broker.host_and_ports
        rows: dict[str, Callable[[str], float]] = {
            "raw-disconnect": lambda q: raw_disconnect(hp, args.messages, q),
            "raw-receipt": lambda q: raw_receipt(hp, args.receipt_messages, q),
            "ours-memory": lambda q: ours(hp, args.messages, q),
            "ours-no-ledger": lambda q: ours(hp, args.messages, q, ledger=False),
            "ours-durable": lambda q: ours(hp, args.messages, q, str(Path(tmp) / f"{q[7:]}.db")),
        }
        results: dict[str, list[float]] = {name: [] for name in rows}
        for r in range(args.warmup + args.rounds):
            for name, run in rows.items():  # interleaved, so machine noise hits every row alike
                queue = f"/queue/bench.{name}.{r}"
                rate = run(queue)
                if r >= args.warmup:
                    results[name].append(rate)
                expected = args.receipt_messages if name == "raw-receipt" else args.messages
                got = drain(hp, queue, expected)
                if got != expected:
                    raise RuntimeError(f"{name}: sent {expected}, consumed {got}")
        med = {name: statistics.median(v) for name, v in results.items()}

    print(f"\nActiveMQ STOMP, {args.messages} x 256 B persistent, median of {args.rounds} rounds\n")
    print(f"{'row':<16}{'msg/s':>10}   rounds")
    for name, values in results.items():
        print(f"{name:<16}{med[name]:>10.0f}   {', '.join(f'{v:.0f}' for v in values)}")
    print()
    print(f"ours-memory  / raw-disconnect = {med['ours-memory'] / med['raw-disconnect']:.2f}  (goal >= 0.8)")
    print(f"ours-memory  / raw-receipt    = {med['ours-memory'] / med['raw-receipt']:.1f}  (goal >= 10)")
    print(f"ours-durable / raw-disconnect = {med['ours-durable'] / med['raw-disconnect']:.2f}")
    print(f"ours-memory  / ours-no-ledger = {med['ours-memory'] / med['ours-no-ledger']:.2f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
