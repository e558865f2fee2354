"""The user's callbacks, held until the user's own ``poll()``/``flush()`` runs them on the caller's thread.

librdkafka calls callbacks only from inside ``poll()``/``flush()``; our producer instances are polled by a
thread of their own (for our bookkeeping), so what the user is owed — delivery reports, ``error_cb``,
``stats_cb``, ``throttle_cb`` — is queued here and run by the facade's ``poll()``/``flush()``, in order.
A delivery report of a message without a callback is only counted: it keeps ``len(producer)`` above zero
until served, as librdkafka's own reports do.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Event", "UserEvents", "deadline_of"]

Event = tuple[Callable[..., Any], tuple[Any, ...], int]
"""(callback, its arguments, how many delivery reports it stands for)."""


class UserEvents:
    """A queue of callbacks owed to the user; thread-safe, served by whoever calls :meth:`serve`."""

    def __init__(self) -> None:
        # Read without the lock (is anything owed?) by the user's poll(); changed only under it.
        self.queue: deque[Event] = deque()
        self.silent = 0  # delivery reports without a callback, not yet served
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)

    def __len__(self) -> int:
        """Delivery reports not yet served (with or without a callback)."""
        return self.silent + sum(n for _, _, n in list(self.queue))

    def report(self, callback: Callable[..., Any], error: Any, message: Any) -> None:
        """A delivery report for one message with a callback."""
        with self._lock:
            self.queue.append((callback, (error, message), 1))
            self._ready.notify_all()

    def reports(self, events: list[Event], silent: int) -> None:
        """Many delivery reports at once (one batch's): ``silent`` of them without a callback."""
        with self._lock:
            self.queue.extend(events)
            self.silent += silent
            self._ready.notify_all()

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Any other callback (``error_cb``, ``stats_cb``, ``throttle_cb``)."""
        with self._lock:
            self.queue.append((callback, args, 0))
            self._ready.notify_all()

    def wake(self) -> None:
        """Wake waiters without an event (the outbox moved: a ``flush()`` re-checks)."""
        with self._lock:
            self._ready.notify_all()

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` (None: for ever) for something to serve; True if there is."""
        with self._lock:
            if not (self.queue or self.silent):
                self._ready.wait(timeout)
            return bool(self.queue or self.silent)

    def serve(self) -> int:
        """Run what is queued, oldest first, on the calling thread; return how many events were served.

        A callback that raises stops the serving and the exception propagates to the caller of ``poll()``,
        as with confluent-kafka; what is left is served by the next call.
        """
        waiting = self.queue
        served = 0
        if self.silent:
            with self._lock:
                if self.silent:
                    self.silent = 0
                    served = 1  # librdkafka counts a batch of reports as one event
        while waiting:
            try:
                callback, args, _ = waiting.popleft()
            except IndexError:
                break
            served += 1
            callback(*args)
        return served


def deadline_of(timeout: float | None) -> float | None:
    """confluent-kafka's timeouts: None or a negative number wait for ever."""
    if timeout is None or timeout < 0:
        return None
    return time.monotonic() + timeout
