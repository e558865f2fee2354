"""``--plot FILE.png``: the demo's timeline (matplotlib, Agg backend).

One row per part and one panel per client, the plain client beside ours: send and confirm rates
(msg/s), ours' buffer depth, the plain client's lost messages (told, and silent) as they were sent; every
fault shaded and labelled.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .driver import ClientResult, Fault, PartResult, Sample

__all__ = ["check_available", "draw"]

RATE_WINDOW = 0.5  # seconds each rate point averages over
DPI = 80
_SEND, _CONFIRM, _BUFFER, _REFUSED, _SILENT = "#1f77b4", "#2ca02c", "#ff7f0e", "#d62728", "#7f0000"
_FAULT = "#888888"


def check_available() -> str | None:
    """Why a plot cannot be drawn here, or None."""
    try:
        import matplotlib  # noqa: PLC0415, F401
    except ImportError as exc:
        return f"{exc} (pip install 'resilientmq[demo]')"
    return None


def draw(results: Sequence[PartResult], path: str) -> None:
    """Draw the timeline of ``results`` into the PNG file ``path``."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # no display needed, and no GUI toolkit imported
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    rows = len(results)
    cols = max(len(r.clients) for r in results)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 2.9 * rows + 0.9), squeeze=False)
    try:
        for row, result in zip(axes, results, strict=False):
            end = max([result.duration, *(s.t for c in result.clients for s in c.samples[-1:])])
            for ax, client in zip(row, _plain_first(result.clients), strict=False):
                _panel(ax, client, result, end)
            row[0].set_ylabel(f"{result.title}\nmsg/s", fontsize=9)
        day = datetime.date.today().isoformat()
        fig.suptitle(
            f"resilientmq demo ({day}): the same faults hit a plain client (left) and ours (right)",
            fontsize=12,
        )
        legend = [
            Line2D([], [], color=_SEND, lw=1.5, label="send()/put() returned (msg/s)"),
            Line2D([], [], color=_CONFIRM, lw=1.5, label="confirmed by the broker (msg/s)"),
            Patch(color=_BUFFER, alpha=0.35, label="ours: buffered (right axis)"),
            Line2D(
                [], [], color=_REFUSED, lw=1.5, label="plain: lost, the application was told (right axis)"
            ),
            Line2D([], [], color=_SILENT, lw=1.5, label="plain: lost, never told (right axis)"),
            Patch(color=_FAULT, alpha=0.3, label="fault"),
        ]
        fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.55 / (2.9 * rows + 0.9), 1, 1 - 0.35 / (2.9 * rows + 0.9)))
        fig.savefig(path, dpi=DPI, format="png", metadata={"Software": "resilientmq demo"})
    finally:
        plt.close(fig)
    _shrink(path)


def _shrink(path: str) -> None:
    """Re-save with a palette of 128 colours: a third of the size, no visible change for line art (the
    README carries the picture)."""
    try:
        from PIL import Image  # noqa: PLC0415 - Pillow comes with matplotlib
    except ImportError:  # pragma: no cover
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128)
    small.save(path, format="PNG", optimize=True)


def _plain_first(clients: Sequence[ClientResult]) -> list[ClientResult]:
    return sorted(clients, key=lambda c: c.ours)


def _rates(samples: Sequence[Sample], key: str) -> tuple[list[float], list[float]]:
    """(times, msg/s) of a cumulative counter, each rate averaged over the last RATE_WINDOW seconds."""
    ts: list[float] = []
    rates: list[float] = []
    j = 0
    for s in samples:
        value = getattr(s, key)
        if value is None:
            continue
        while samples[j].t < s.t - RATE_WINDOW:
            j += 1
        first = samples[j]
        then = getattr(first, key)
        if s.t > first.t and then is not None:
            ts.append(s.t)
            rates.append((value - then) / (s.t - first.t))
    return ts, rates


def _shade(ax: Any, faults: Sequence[Fault], end: float) -> None:
    top = ax.get_ylim()[1]
    for k, f in enumerate(faults):
        stop = f.end if f.end is not None else end
        stop = max(stop, f.start + end / 150)  # an instant fault (a reset) still shows
        ax.axvspan(f.start, stop, color=_FAULT, alpha=0.2, lw=0)
        late = f.start > 0.5 * end  # labelled leftwards from its end, so that it is not cut at the edge
        ax.text(
            stop if late else f.start,
            top * (0.98 - 0.085 * (k % 3)),
            f"{f.label} " if late else f" {f.label}",
            fontsize=7,
            va="top",
            ha="right" if late else "left",
            color="#333333",
            clip_on=True,
        )


def _panel(ax: Any, c: ClientResult, result: PartResult, end: float) -> None:
    t, sent = _rates(c.samples, "sent")
    ax.plot(t, sent, color=_SEND, lw=1.2)
    t2, confirmed = _rates(c.samples, "confirmed")
    if confirmed:
        ax.plot(t2, confirmed, color=_CONFIRM, lw=1.2)
    pace = c.sent / max(result.duration, 0.1)
    top = pace * 2.2  # room above the steady rate for the fault labels; bursts are marked, not scaled to
    ax.set_xlim(0, end)
    ax.set_ylim(0, top)
    peak = max(confirmed, default=0.0)
    if peak > top * 0.8:
        at = t2[confirmed.index(peak)]
        late = at > 0.75 * end
        ax.annotate(
            f"peak {peak:,.0f} msg/s",
            xy=(at, top * 0.55),
            xytext=(-4 if late else 4, 0),
            textcoords="offset points",
            fontsize=7,
            color=_CONFIRM,
            va="center",
            ha="right" if late else "left",
        )
    ax.set_xlabel("seconds", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25)
    right = ax.twinx()
    right.tick_params(labelsize=7)
    if c.ours:
        times = [s.t for s in c.samples]
        depth = [s.buffered or 0 for s in c.samples]
        right.fill_between(times, depth, color=_BUFFER, alpha=0.35, lw=0)
        right.set_ylim(0, max([*depth, 1]) * 1.45)
        right.set_ylabel("buffered", color=_BUFFER, fontsize=8)
    else:
        _losses(right, c)
    _shade(ax, result.faults, end)
    verdict = "lost nothing" if c.lost == 0 else f"lost {c.lost}"
    extra = f", {c.duplicates} duplicate(s)" if c.duplicates else ""
    if c.ours and c.longest_outage is not None:
        extra += f"; longest outage {c.longest_outage:.1f} s"
        if c.drain is not None:
            extra += f", drained {c.drain:.1f} s after"
    if not c.ours and c.lost:
        extra += f" ({c.refused} told, {c.silent} never told)"
    ax.set_title(
        f"{c.label}\nsent {c.sent}, received {c.received}, {verdict}{extra}",
        fontsize=8.5,
        color="#1a7f1a" if c.lost == 0 else "#b00000",
    )


def _losses(ax: Any, c: ClientResult) -> None:
    """The plain client's lost messages, cumulative, by the time each was sent: those the application
    was told of (the call raised, a callback said so) and those lost silently."""
    top = 1
    for times, color in ((c.refused_at, _REFUSED), (c.silent_at, _SILENT)):
        if times:
            ax.step([0.0, *times], range(len(times) + 1), where="post", color=color, lw=1.4)
            top = max(top, len(times))
    ax.set_ylim(0, top * 1.45)
    ax.set_ylabel("lost messages", color=_REFUSED, fontsize=8)
