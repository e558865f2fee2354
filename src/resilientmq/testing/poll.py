"""Waiting in tests: poll a condition with a deadline instead of sleeping and hoping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["wait_until"]


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str | None = None
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; return whether it became true.

    With ``what``, a timeout raises ``AssertionError`` naming what was awaited instead of returning False.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: an interruptible, monotonic pause between polls
    while not predicate():
        if time.monotonic() >= deadline:
            if what is not None:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            return False
        pause.wait(interval)
    return True
