"""The outbox buffer's own cost: append + peek + remove per message, in memory and durable (LMDB).

    python benchmarks/bench_buffer.py [--messages 200000] [--rounds 5] [--fsync-messages 20000]

Rows (µs per message, 256-byte bodies, one small header, one message per append as ``send()`` does):
  1 thread     one thread appends; every 500 messages it peeks 500 and removes what it appended
  4 threads    four threads do that at once on one buffer
  outbox 1/4   the outbox's shape: 1 or 4 producer threads append while a sender thread peeks up to
               500 and removes them
  fsync        the durable buffer with fsync=True, outbox shape: every append reaches the disk before it
               returns; concurrent appenders (and the sender's removals) share a commit and its syncs
               (group commit), so the cost per message falls as threads are added
With more than one thread, CPython's GIL and the buffer's lock make threads take turns: those rows count
the thread switches in (the context switches per message are printed). References in the same run:
queue.Queue (put + get) in the outbox shape, and a bare py-lmdb put + commit per message (the floor for
"in the file before append returns"). The resident set with 100,000 messages buffered is measured in a
fresh process for each buffer. Each figure is the median of --rounds after a warm-up round, with the
range; ratios compare medians of this run. The machine's other load moves single runs by tens of
percent: read the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import lmdb

from resilientmq.core.buffer import BoundedBuffer, LmdbBuffer, MemoryBuffer, NewMessage

BODY = b"x" * 256
BATCH = 500
GOALS = {"memory": 3.0, "durable": 5.0}

Factory = Callable[[], BoundedBuffer]


def messages(n: int, tag: str = "") -> list[NewMessage]:
    return [NewMessage("/queue/bench", BODY, {"n": f"{tag}{i}"}) for i in range(n)]


SWITCHES: list[float] = []  # context switches per message of the last runs


def _timed(threads: list[threading.Thread], go: threading.Event, total: int) -> float:
    """Start ``threads``, let them ``go``; µs per message. Also records context switches per message."""
    for t in threads:
        t.start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    switches = after.ru_nvcsw + after.ru_nivcsw - usage.ru_nvcsw - usage.ru_nivcsw
    SWITCHES.append(switches / total)
    return elapsed / total * 1e6


def cycle(make: Factory, n: int, threads: int = 1) -> float:
    """``threads`` threads, each: append one message at a time; every BATCH messages, peek BATCH and
    remove the BATCH it appended."""
    per = n // threads
    shares = [messages(per, f"{t}-") for t in range(threads)]
    buf = make()
    go = threading.Event()

    def work(share: list[NewMessage]) -> None:
        append, peek, remove = buf.append, buf.peek, buf.remove
        mine: list[int] = []
        go.wait()
        for m in share:
            mine.append(append(m).seq)
            if len(mine) == BATCH:
                peek(mine[0] - 1, BATCH)
                remove(mine)
                mine = []
        remove(mine)

    workers = [threading.Thread(target=work, args=(s,)) for s in shares]
    try:
        result = _timed(workers, go, per * threads)
        assert len(buf) == 0, len(buf)
    finally:
        buf.close()
    return result


def threaded(make: Factory, n: int, producers: int) -> float:
    """``producers`` threads append their share; one sender thread peeks and removes until all are gone."""
    per = n // producers
    shares = [messages(per, f"{t}-") for t in range(producers)]
    total = per * producers
    buf = make()
    removed = 0
    go = threading.Event()

    def produce(share: list[NewMessage]) -> None:
        go.wait()
        append = buf.append
        for m in share:
            append(m)

    def send() -> None:
        nonlocal removed
        go.wait()
        cursor = 0
        idle = threading.Event()
        while removed < total:
            batch = buf.peek(cursor, BATCH)
            if not batch:
                idle.wait(0.0002)  # the real sender waits on a wake-up event; nothing to do yet
                continue
            cursor = batch[-1].seq
            removed += buf.remove([e.seq for e in batch])

    threads = [threading.Thread(target=produce, args=(s,)) for s in shares]
    threads.append(threading.Thread(target=send))
    try:
        return _timed(threads, go, total)
    finally:
        buf.close()


def queue_reference(n: int, producers: int) -> float:
    """The standard library's thread-safe queue in the outbox shape: put per message, one getter."""
    q: queue.Queue[NewMessage] = queue.Queue()
    per = n // producers
    shares = [messages(per, f"{t}-") for t in range(producers)]

    def produce(share: list[NewMessage]) -> None:
        for m in share:
            q.put(m)

    def consume() -> None:
        for _ in range(per * producers):
            q.get()

    threads = [threading.Thread(target=produce, args=(s,)) for s in shares]
    threads.append(threading.Thread(target=consume))
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - start) / (per * producers) * 1e6


def lmdb_reference(directory: str, n: int) -> float:
    """The floor for "in the file before append returns": one bare py-lmdb put + commit per message."""
    env = lmdb.open(
        os.path.join(directory, f"raw{time.monotonic_ns()}.mdb"),
        subdir=False,
        lock=False,
        writemap=True,
        sync=False,
        metasync=False,
        map_size=1 << 30,
    )
    value = b"x" * (len(BODY) + 80)
    start = time.perf_counter()
    for i in range(n):
        txn = env.begin(write=True)
        txn.put(i.to_bytes(8, "big"), value, append=True)
        txn.commit()
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed / n * 1e6


def measure(rounds: int, fn: Callable[[], float]) -> tuple[float, float, float, float]:
    """(median, lowest, highest, median context switches per message) of ``rounds`` runs after a
    warm-up run that is not counted."""
    fn()
    SWITCHES.clear()
    runs = [fn() for _ in range(rounds)]
    return statistics.median(runs), min(runs), max(runs), statistics.median(SWITCHES or [0.0])


def rss_with_backlog(kind: str, n: int = 100_000) -> dict[str, int]:
    """Run in a fresh process: kB of resident memory before and after ``n`` messages are buffered."""

    def status() -> dict[str, int]:
        out = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
        return out

    with tempfile.TemporaryDirectory() as tmp:
        before = status()
        buf: BoundedBuffer = MemoryBuffer(n) if kind == "memory" else LmdbBuffer(Path(tmp) / "rss.db", n)
        for i in range(n):  # each body its own object, kept only by the buffer (as after send() returns)
            buf.append(NewMessage("/queue/bench", b"%08d" % i + BODY[8:], {"n": str(i)}))
        after = status()
        size = os.path.getsize(Path(tmp) / "rss.db") if kind != "memory" else 0
        buf.close()
    return {
        **{f"{k}_delta": after[k] - before[k] for k in after},
        "VmRSS": after["VmRSS"],
        "file_kb": size // 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--fsync-messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss", choices=["memory", "durable"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss:
        print(json.dumps(rss_with_backlog(args.rss)))
        return 0

    tmp = tempfile.TemporaryDirectory()
    counter = iter(range(10**9))

    def durable(fsync: bool = False) -> Factory:
        return lambda: LmdbBuffer(Path(tmp.name) / f"b{next(counter)}.db", 10**7, fsync=fsync)

    def memory() -> BoundedBuffer:
        return MemoryBuffer(10**7)

    n, r = args.messages, args.rounds
    shapes: dict[str, Callable[[Factory], float]] = {
        "1 thread": lambda make: cycle(make, n, 1),
        "4 threads": lambda make: cycle(make, n, 4),
        "outbox 1": lambda make: threaded(make, n, 1),
        "outbox 4": lambda make: threaded(make, n, 4),
    }
    rows: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    for shape, run in shapes.items():  # memory and durable interleaved, so both see the same machine
        for kind, make in (("memory", memory), ("durable", durable())):
            rows[(kind, shape)] = measure(r, lambda run=run, make=make: run(make))
    references = {
        "queue.Queue put + get, outbox 1": measure(r, lambda: queue_reference(n, 1))[0],
        "queue.Queue put + get, outbox 4": measure(r, lambda: queue_reference(n, 4))[0],
        "bare py-lmdb put + commit": measure(r, lambda: lmdb_reference(tmp.name, n))[0],
    }
    fsync_rows = {
        producers: measure(r, lambda p=producers: threaded(durable(True), args.fsync_messages, p))[0]
        for producers in (1, 2, 4, 8)
    }

    print(f"buffer cost per message (append + peek + remove), {n} messages of {len(BODY)} B")
    print(f"median of {r} runs (lowest-highest); goal: memory <= 3 us, durable <= 5 us")
    print(f"{'':11}{'memory':>22}{'durable':>24}{'ratio':>7}   context switches per message")
    for shape in shapes:
        mem, mem_lo, mem_hi, mem_cs = rows[("memory", shape)]
        dur, dur_lo, dur_hi, dur_cs = rows[("durable", shape)]
        ok = "met" if mem <= GOALS["memory"] and dur <= GOALS["durable"] else "MISSED"
        print(
            f"{shape:11}{mem:>7.2f} us ({mem_lo:.2f}-{mem_hi:.2f}){dur:>9.2f} us ({dur_lo:.2f}-{dur_hi:.2f})"
            f"{dur / mem:>7.2f}   {ok:7}{mem_cs:.2f} / {dur_cs:.2f}"
        )
    print("\nreferences, same run: " + "; ".join(f"{k} {v:.2f} us" for k, v in references.items()))
    print(f"\ndurable with fsync=True (group commit), outbox shape, {args.fsync_messages} messages")
    base = fsync_rows[1]
    for producers, cost in fsync_rows.items():
        print(f"{producers} producers {cost:>8.1f}us per message  ({base / cost:.1f}x the one-producer rate)")
    print("\nresident set with 100,000 messages of 256 B buffered (a fresh process for each buffer)")
    for kind in ("memory", "durable"):
        out = subprocess.run(
            [sys.executable, __file__, "--rss", kind], capture_output=True, text=True, check=True
        ).stdout
        rss = json.loads(out)
        file = f", file {rss['file_kb'] / 1024:.0f} MiB on disk" if rss["file_kb"] else ""
        anon, mapped = rss["RssAnon_delta"] / 1024, rss["RssFile_delta"] / 1024
        print(
            f"{kind:10}+{rss['VmRSS_delta'] / 1024:.1f} MiB (anonymous +{anon:.1f} MiB, "
            f"file pages mapped +{mapped:.1f} MiB{file})"
        )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
