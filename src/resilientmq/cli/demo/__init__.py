"""``resilientmq demo``: a plain client and ours send through the same broker outages, side by side, and
an independent consumer counts what arrived.

The parts (one per client library) are listed in :mod:`.catalog`, each in a module of its own that builds
its broker, its two clients and its fault script; :mod:`.driver` paces the sends, injects the faults,
samples both clients and tallies; :mod:`.live` shows it while it runs and :mod:`.plot` draws the timeline.
This package's ``__init__`` imports nothing heavy: ``resilientmq --help`` must not start the test kit.
"""

from __future__ import annotations

from collections.abc import Sequence

from .catalog import PARTS, default_parts

__all__ = ["PARTS", "default_parts", "run"]


def run(
    messages: int,
    parts: Sequence[str],
    *,
    plot: str | None = None,
    events: str | None = None,
    live: bool | None = None,
) -> int:
    """Run the chosen parts and print the tally; 1 if ours lost anything (2 for a bad invocation)."""
    from .driver import run_demo  # noqa: PLC0415 - it loads the test kit and the brokers' libraries

    return run_demo(messages, parts, plot=plot, events=events, live=live)
