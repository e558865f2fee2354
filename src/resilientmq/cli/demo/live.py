"""What the demo shows while it runs: a live table (rich) on a terminal, plain progress lines elsewhere
(CI logs, pipes), so the output reads well in both."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .driver import Sample

__all__ = ["Display", "LiveDisplay", "PlainDisplay", "make_display"]

PROGRESS_EVERY = 2.0  # seconds between two plain progress lines


class Display(Protocol):
    def note(self, text: str) -> None: ...

    def part_started(self, title: str, clients: Sequence[str], duration: float) -> None: ...

    def fault(self, t: float, label: str, *, started: bool) -> None: ...

    def update(self, t: float, phase: str, samples: Mapping[str, Sample], faults: Sequence[str]) -> None: ...

    def part_finished(self) -> None: ...


def make_display(live: bool | None = None) -> Display:
    """The live display when stdout is a terminal (or ``live`` says so) and rich is installed."""
    if live is None:
        live = sys.stdout.isatty()
    if live:
        try:
            return LiveDisplay()
        except ImportError:
            pass
    return PlainDisplay()


def _counts(s: Sample) -> str:
    parts = [f"sent {s.sent}"]
    if s.confirmed is not None:
        parts.append(f"confirmed {s.confirmed}")
    if s.buffered is not None:
        parts.append(f"buffered {s.buffered}")
    if s.failed:
        parts.append(f"refused {s.failed}")
    return " ".join(parts) + f" ({s.state})"


class PlainDisplay:
    """One line per fault and one progress line every two seconds, flushed at once."""

    def __init__(self) -> None:
        self._title = ""
        self._next = 0.0

    def note(self, text: str) -> None:
        print(text, flush=True)

    def part_started(self, title: str, clients: Sequence[str], duration: float) -> None:
        self._title = title
        self._next = 0.0
        print(f"{title}: {' and '.join(clients)}, side by side, for {duration:g} s", flush=True)

    def fault(self, t: float, label: str, *, started: bool) -> None:
        print(f"  {t:5.1f} s  fault {'begins' if started else 'over  '}: {label}", flush=True)

    def update(self, t: float, phase: str, samples: Mapping[str, Sample], faults: Sequence[str]) -> None:
        if t < self._next:
            return
        self._next = t + PROGRESS_EVERY
        for label, s in samples.items():
            print(f"  {t:5.1f} s  {label}: {_counts(s)}", flush=True)

    def part_finished(self) -> None:
        print(flush=True)


_STATE_STYLE = {
    "connected": "green",
    "up": "green",
    "connecting": "yellow",
    "reconnecting": "bold yellow",
    "down": "bold red",
    "failed": "bold red",
    "closed": "dim",
    "disconnected": "dim",
}


class LiveDisplay:
    """A rich ``Live`` table: per client sent, confirmed, buffered, refused and the connection state, the
    fault in progress and the ones before it."""

    def __init__(self) -> None:
        from rich.console import Console  # noqa: PLC0415 - rich is the optional 'demo' extra

        self._console = Console()
        self._live: Any = None
        self._title = ""
        self._duration = 0.0
        self._history: list[str] = []
        self._started = 0.0

    def note(self, text: str) -> None:
        self._console.print(text)

    def part_started(self, title: str, clients: Sequence[str], duration: float) -> None:
        from rich.live import Live  # noqa: PLC0415

        self._title, self._duration, self._history = title, duration, []
        self._started = time.monotonic()
        self._live = Live(console=self._console, refresh_per_second=8, transient=False)
        self._live.start()

    def fault(self, t: float, label: str, *, started: bool) -> None:
        if not started:
            self._history.append(f"{label} (over at {t:.1f} s)")

    def update(self, t: float, phase: str, samples: Mapping[str, Sample], faults: Sequence[str]) -> None:
        if self._live is not None:
            self._live.update(self._render(t, phase, samples, faults))

    def part_finished(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self, t: float, phase: str, samples: Mapping[str, Sample], faults: Sequence[str]) -> Any:
        from rich.console import Group  # noqa: PLC0415
        from rich.panel import Panel  # noqa: PLC0415
        from rich.progress_bar import ProgressBar  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        table = Table(expand=True, box=None, pad_edge=False)
        for name, justify in (
            ("client", "left"),
            ("state", "left"),
            ("sent", "right"),
            ("confirmed", "right"),
            ("buffered", "right"),
            ("refused", "right"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for label, s in samples.items():
            table.add_row(
                label,
                Text(s.state, style=_STATE_STYLE.get(s.state, "")),
                str(s.sent),
                "-" if s.confirmed is None else str(s.confirmed),
                "-" if s.buffered is None else str(s.buffered),
                Text(str(s.failed), style="red" if s.failed else ""),
            )
        now = Text("fault: ", style="bold")
        now.append(", ".join(faults) if faults else "none", style="bold red" if faults else "green")
        done = Text("before: " + ("; ".join(self._history) if self._history else "-"), style="dim")
        head = Table.grid(padding=(0, 2))
        head.add_row(
            Text(f"{phase} {t:5.1f} s of {self._duration:g} s"),
            ProgressBar(total=self._duration, completed=min(t, self._duration), width=40),
        )
        return Panel(Group(head, now, done, Text(""), table), title=self._title, expand=True)
