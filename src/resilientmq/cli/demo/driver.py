"""The demo's engine: paced sends from both clients of a part, the part's faults on a schedule, a sample
of both clients every tenth of a second, and the tally from what an independent consumer received.

A part (see :mod:`.catalog`) builds its broker and two :class:`DemoClient` objects, then calls
:meth:`PartRun.stream` with its fault script and :meth:`PartRun.tally` with what arrived.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .catalog import PARTS, Part, default_parts
from .live import Display, make_display

__all__ = [
    "ClientResult",
    "DemoClient",
    "Fault",
    "PartResult",
    "PartRun",
    "Sample",
    "Step",
    "ours",
    "run_demo",
]

SAMPLE_INTERVAL = 0.1
FINISH_TIMEOUT = 90.0  # how long ours may take to deliver what it holds after the stream


@dataclass
class Fault:
    """One injected fault, as it happened (seconds since the stream started)."""

    label: str
    start: float
    end: float | None = None  # None while it lasts


@dataclass(frozen=True)
class Step:
    """One fault of a part's script: ``begin()`` at ``at`` seconds (or as soon as the previous step is over),
    then ``end()`` after ``hold`` seconds."""

    at: float
    label: str
    begin: Callable[[], object]
    hold: float = 0.0
    end: Callable[[], object] | None = None


@dataclass(frozen=True)
class Sample:
    t: float
    sent: int
    """``send()``/``put()`` calls that returned."""
    failed: int
    """Messages the application was told failed (the call raised, or a callback said so later)."""
    confirmed: int | None
    """Confirmed by the broker, where the client can tell (None: the plain STOMP client cannot)."""
    buffered: int | None
    state: str


class DemoClient:
    """One of a part's two clients: how to send message ``i``, what it can tell of itself, how to finish.

    ``send(i, body)`` raises when the client refuses the message at once; a failure reported later (a
    Kafka future, a delivery callback) is marked with :meth:`mark_failed`, a later confirmation with
    :meth:`mark_confirmed`.
    """

    def __init__(
        self,
        label: str,
        *,
        ours: bool,
        destination: str,
        send: Callable[[int, bytes], object],
        state: Callable[[], str],
        finish: Callable[[], object],
        confirmed: Callable[[], int] | None = None,
        buffered: Callable[[], int] | None = None,
        counts_confirmations: bool = False,
    ) -> None:
        self.label = label
        self.ours = ours
        self.destination = destination
        self._send = send
        self._state = state
        self._finish = finish
        self._confirmed = confirmed
        self._buffered = buffered
        self._counts_confirmations = counts_confirmations
        self._lock = threading.Lock()
        self.sent_ok = 0
        self.failed: set[int] = set()
        self.errors: collections.Counter[str] = collections.Counter()  # what send() raised, how often
        self.confirmations = 0
        self.outages: list[list[float | None]] = []  # [lost at, back at] relative to the stream's start
        self.t0 = time.monotonic()
        self.finished_at: float | None = None

    def send(self, i: int, body: bytes) -> None:
        try:
            self._send(i, body)
        except Exception as exc:  # a plain client raises once its connection is gone: that message is lost
            self.mark_failed(i)
            with self._lock:
                self.errors[(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:160]] += 1
        else:
            with self._lock:
                self.sent_ok += 1

    def mark_failed(self, i: int) -> None:
        with self._lock:
            self.failed.add(i)

    def mark_confirmed(self) -> None:
        with self._lock:
            self.confirmations += 1

    def sample(self, t: float) -> Sample:
        try:
            state = self._state()
        except Exception:
            state = "?"
        confirmed = self._confirmed() if self._confirmed is not None else None
        if confirmed is None and self._counts_confirmations:
            confirmed = self.confirmations
        with self._lock:
            sent, failed = self.sent_ok, len(self.failed)
        buffered = self._buffered() if self._buffered is not None else None
        return Sample(t, sent, failed, confirmed, buffered, state)

    def finish(self) -> None:
        try:
            self._finish()
        finally:
            self.finished_at = time.monotonic() - self.t0

    # -- our clients' reconnect listener: when each outage began and ended -------------------------
    def on_connection_lost(self, error: BaseException | None) -> None:
        self.outages.append([time.monotonic() - self.t0, None])

    def on_reconnected(self, endpoint: Any) -> None:
        if self.outages and self.outages[-1][1] is None:
            self.outages[-1][1] = time.monotonic() - self.t0


def ours(
    label: str,
    client: Any,
    destination: str,
    send: Callable[[int, bytes], object],
    finish: Callable[[], object],
) -> DemoClient:
    """A :class:`DemoClient` for one of our clients: what it tells comes from the shared resilience API
    (``stats()``, ``get_buffer_size()``, ``connection_state``, ``add_reconnect_listener``)."""
    demo = DemoClient(
        label,
        ours=True,
        destination=destination,
        send=send,
        state=lambda: str(client.connection_state.value),
        finish=finish,
        confirmed=lambda: int(client.stats()["confirmed"]),
        buffered=lambda: int(client.get_buffer_size()),
    )
    client.add_reconnect_listener(demo)
    return demo


@dataclass
class ClientResult:
    label: str
    ours: bool
    sent: int
    received: int
    lost: int
    duplicates: int
    seconds: float
    refused: int
    """Lost messages the application was told about (the call raised, or a callback said so)."""
    silent: int
    """Lost messages the application was never told of (the call returned as if all was well, and no
    callback said otherwise)."""
    refused_at: list[float]
    """When (seconds since the stream started) each refused lost message was sent."""
    silent_at: list[float]
    """When each message lost without a word was sent."""
    samples: list[Sample]
    errors: list[tuple[str, int]] = field(default_factory=list)
    """What the calls raised most often, with counts."""
    longest_outage: float | None = None
    drain: float | None = None
    """From the reconnect that ended the longest outage until the outbox was back to its level before."""


@dataclass
class PartResult:
    key: str
    title: str
    duration: float
    faults: list[Fault]
    clients: list[ClientResult] = field(default_factory=list)

    @property
    def fault_summary(self) -> str:
        return ", ".join(f.label for f in self.faults)


class PartRun:
    """What a part's ``run`` is handed: the message count, the display, and the stream and tally steps."""

    def __init__(self, part: Part, messages: int, display: Display) -> None:
        self.part = part
        self.messages = messages
        self.display = display
        self.result = PartResult(part.key, part.title, 0.0, [])
        self._samples: dict[str, list[Sample]] = {}
        self._sent_at: dict[str, list[float]] = {}
        self._clients: dict[str, DemoClient] = {}
        self._faults_lock = threading.Lock()

    def note(self, text: str) -> None:
        self.display.note(f"[{self.part.key}] {text}")

    def body(self, client: DemoClient, i: int) -> bytes:
        return f"{client.destination}|{i}".encode()

    def stream(self, clients: Sequence[DemoClient], script: Sequence[Step], duration: float) -> None:
        """Send ``messages`` from each client, evenly over ``duration`` seconds, while ``script`` runs; then
        let each client finish (ours: deliver all it holds) and keep sampling until they have."""
        self.result.duration = duration
        t0 = time.monotonic()
        for c in clients:
            c.t0 = t0
            self._clients[c.label] = c
            self._samples[c.label] = []
            self._sent_at[c.label] = [0.0] * self.messages
        threads = [
            threading.Thread(
                target=self._send_all, args=(c, t0, duration), name=f"demo-{c.label}", daemon=True
            )
            for c in clients
        ]
        threads.append(
            threading.Thread(target=self._inject, args=(script, t0), name="demo-faults", daemon=True)
        )
        self.display.part_started(self.part.title, [c.label for c in clients], duration)
        try:
            for t in threads:
                t.start()
            self._sample_while(threads, t0, "sending")
            finishers = [threading.Thread(target=c.finish, daemon=True) for c in clients]
            for t in finishers:
                t.start()
            self._sample_while(finishers, t0, "delivering", limit=FINISH_TIMEOUT)
        finally:
            self.display.part_finished()

    def tally(self, client: DemoClient, received: Sequence[bytes | str]) -> None:
        """Count what the independent consumer received for ``client``."""
        got: set[int] = set()
        prefix = f"{client.destination}|"
        for r in received:
            text = r.decode() if isinstance(r, bytes) else r
            if text.startswith(prefix):
                with contextlib.suppress(ValueError):
                    got.add(int(text[len(prefix) :]))
        unique = len(set(received))
        lost = [i for i in range(self.messages) if i not in got]
        refused = [i for i in lost if i in client.failed]
        silent = [i for i in lost if i not in client.failed]
        samples = self._samples[client.label]
        sent_at = self._sent_at[client.label]
        result = ClientResult(
            label=client.label,
            ours=client.ours,
            sent=self.messages,
            received=unique,
            lost=self.messages - unique,
            duplicates=len(received) - unique,
            seconds=client.finished_at if client.finished_at is not None else float("nan"),
            refused=len(refused),
            silent=len(silent),
            refused_at=sorted(sent_at[i] for i in refused),
            silent_at=sorted(sent_at[i] for i in silent),
            samples=samples,
            errors=client.errors.most_common(3),
        )
        if client.ours:
            result.longest_outage, result.drain = _outage_and_drain(
                client.outages, samples, self.messages / max(self.result.duration, 0.1)
            )
        self.result.clients.append(result)

    # -- the threads ---------------------------------------------------------------------------------
    def _send_all(self, client: DemoClient, t0: float, duration: float) -> None:
        n = self.messages
        interval = duration / n
        sent_at = self._sent_at[client.label]
        pause = threading.Event()  # never set: a monotonic, interruptible pause
        i = 0
        while i < n:
            now = time.monotonic() - t0
            due = min(n, int(now / interval) + 1)
            while i < due:  # behind schedule (a call blocked): catch up at once
                sent_at[i] = time.monotonic() - t0
                client.send(i, self.body(client, i))
                i += 1
            if i < n:
                pause.wait(max(0.002, i * interval - (time.monotonic() - t0)))

    def _inject(self, script: Sequence[Step], t0: float) -> None:
        pause = threading.Event()
        for step in script:
            pause.wait(max(0.0, step.at - (time.monotonic() - t0)))
            fault = Fault(step.label, time.monotonic() - t0)
            with self._faults_lock:
                self.result.faults.append(fault)
            self.display.fault(fault.start, step.label, started=True)
            try:
                step.begin()
                if step.hold:
                    pause.wait(step.hold)
                if step.end is not None:
                    step.end()
            except Exception as exc:
                self.note(f"fault {step.label!r} raised {exc!r}; going on")
            fault.end = time.monotonic() - t0
            self.display.fault(fault.end, step.label, started=False)

    def _sample_while(
        self, threads: Sequence[threading.Thread], t0: float, phase: str, limit: float = 0
    ) -> None:
        deadline = time.monotonic() + limit if limit else None
        pause = threading.Event()
        while any(t.is_alive() for t in threads):
            if deadline is not None and time.monotonic() > deadline:
                self.note(f"still {phase} after {limit:g} s; tallying what arrived")
                break
            self._sample(t0, phase)
            pause.wait(SAMPLE_INTERVAL)
        self._sample(t0, phase)

    def _sample(self, t0: float, phase: str) -> None:
        t = time.monotonic() - t0
        now = {}
        for label, client in self._clients.items():
            s = client.sample(t)
            self._samples[label].append(s)
            now[label] = s
        with self._faults_lock:
            active = [f.label for f in self.result.faults if f.end is None]
        self.display.update(t, phase, now, active)


def _outage_and_drain(
    outages: Sequence[Sequence[float | None]], samples: Sequence[Sample], rate: float
) -> tuple[float | None, float | None]:
    """The longest outage, and how long after its reconnect the outbox took to be back to its level
    before the outage (at least a tenth of a second of traffic: what is always in flight)."""
    closed = [(lost, back) for lost, back in outages if lost is not None and back is not None]
    if not closed:
        return None, None
    lost, back = max(closed, key=lambda o: o[1] - o[0])
    before = [s.buffered or 0 for s in samples if lost - 1.0 <= s.t < lost]
    level = max([*before, rate * 0.1, 1.0])
    drained = next((s.t for s in samples if s.t >= back and (s.buffered or 0) <= level), None)
    return back - lost, None if drained is None else drained - back


# -- the whole demo ---------------------------------------------------------------------------------
def run_demo(
    messages: int,
    parts: Sequence[str],
    *,
    plot: str | None = None,
    events: str | None = None,
    live: bool | None = None,
) -> int:
    """Run the chosen parts, print the tally (and draw the timeline).

    0 when ours lost nothing; 1 when it lost anything; 3 when a part could not run (a broker that would
    not start); 2 for a bad invocation.
    """
    if messages < 1:
        print("resilientmq demo: --messages must be at least 1")
        return 2
    if plot is not None:
        from .plot import check_available  # noqa: PLC0415 - matplotlib only when a plot is asked for

        problem = check_available()
        if problem:
            print(f"resilientmq demo: --plot needs matplotlib: {problem}")
            return 2
    display = make_display(live)
    chosen = list(parts) or default_parts()
    results: list[PartResult] = []
    broken: list[str] = []
    with _quiet_libraries(), _event_log(events):
        for key in chosen:
            part = PARTS[key]
            missing = part.missing()
            if missing:
                display.note(f"[{key}] not available in this build: {missing}")
                continue
            run = PartRun(part, messages, display)
            try:
                importlib.import_module(part.module, __package__).run(run)
            except Exception as exc:  # a broker that would not start, say: tell, and go on with the rest
                display.note(f"[{key}] could not run: {type(exc).__name__}: {exc}")
                broken.append(key)
                continue
            results.append(run.result)
    _print_tally(results)
    if plot is not None and results:
        from .plot import draw  # noqa: PLC0415

        draw(results, plot)
        print(f"timeline: {plot}")
    ok = all(c.lost == 0 for r in results for c in r.clients if c.ours)
    print("\nresilientmq lost nothing." if ok else "\nresilientmq LOST MESSAGES: this is a bug.")
    if broken:
        print(f"not run: {', '.join(broken)} (see above)")
    return 1 if not ok else 3 if broken else 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print_tally(results: Sequence[PartResult]) -> None:
    print()
    print(
        f"{'client':<44}{'sent':>7}{'received':>10}{'lost':>7}{'dups':>7}{'seconds':>9}"
        f"{'outage':>8}{'drain':>7}"
    )
    for r in results:
        for c in r.clients:
            print(
                f"{c.label:<44}{c.sent:>7}{c.received:>10}{c.lost:>7}{c.duplicates:>7}{c.seconds:>9.1f}"
                f"{_fmt(c.longest_outage):>8}{_fmt(c.drain):>7}"
            )
        print(f"  faults: {r.fault_summary}")
        for c in r.clients:
            if not c.ours and c.lost:
                print(f"  {c.label}: {c.refused} refused by the call or a callback, {c.silent} never told")
            for error, count in c.errors:
                print(f"  {c.label} raised {count} x {error}")
    print(
        "\noutage: the longest time our client was without a connection (s); drain: from that reconnect "
        "until its outbox was back to its level before (s)"
    )


_NOISY = ("stomp.py", "kafka", "resilientmq")


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """The plain clients' tracebacks are the expected failure, not news; our own warnings are the story
    the display tells. Restored afterwards (the demo may run inside a test process)."""
    saved = {name: logging.getLogger(name).level for name in _NOISY}
    handler: logging.Handler | None = None
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("  %(name)s: %(message)s"))
        handler.setLevel(logging.ERROR)
        root.addHandler(handler)
    for name in ("stomp.py", "kafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("resilientmq").setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        if handler is not None:
            root.removeHandler(handler)


@contextlib.contextmanager
def _event_log(path: str | None) -> Iterator[None]:
    """``--events FILE``: our clients' structured events as JSON lines."""
    if path is None:
        yield
        return
    from resilientmq.core.telemetry import LOGGER_PREFIX, JsonFormatter  # noqa: PLC0415

    logger = logging.getLogger(LOGGER_PREFIX)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    saved = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
        handler.close()
