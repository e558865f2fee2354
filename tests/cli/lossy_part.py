"""A demo part on a broker of dicts, for the CLI tests: its 'ours' client loses one message on purpose
(so the demo must exit non-zero), and both clients go through one outage."""

from __future__ import annotations

import threading

from resilientmq.cli.demo.driver import DemoClient, PartRun, Step

LOST = 3  # the index ours drops


def run(ctx: PartRun) -> None:
    lock = threading.Lock()
    received: dict[str, list[bytes]] = {"plain": [], "ours": []}
    outbox: list[bytes] = []
    down = threading.Event()

    def plain_send(_i: int, body: bytes) -> None:
        if down.is_set():
            raise ConnectionError("not connected")
        with lock:
            received["plain"].append(body)

    def ours_send(i: int, body: bytes) -> None:
        with lock:
            if i == LOST:
                return  # accepted, never delivered: the bug this part exists to show
            (outbox if down.is_set() else received["ours"]).append(body)

    def deliver() -> None:
        with lock:
            received["ours"].extend(outbox)
            outbox.clear()

    plain = DemoClient(
        "plain (fake)",
        ours=False,
        destination="plain",
        send=plain_send,
        state=lambda: "down" if down.is_set() else "up",
        finish=lambda: None,
    )
    mine = DemoClient(
        "ours (fake, loses one)",
        ours=True,
        destination="ours",
        send=ours_send,
        state=lambda: "reconnecting" if down.is_set() else "connected",
        finish=deliver,
        confirmed=lambda: len(received["ours"]),
        buffered=lambda: len(outbox),
    )

    def outage() -> None:
        down.set()
        mine.on_connection_lost(ConnectionError("fake outage"))

    def back() -> None:
        down.clear()
        mine.on_reconnected("fake:1")
        deliver()

    ctx.stream([plain, mine], [Step(0.3, "fake outage 0.5 s", outage, 0.5, back)], duration=1.2)
    ctx.tally(plain, received["plain"])
    ctx.tally(mine, received["ours"])
