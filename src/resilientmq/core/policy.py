"""The reconnect policy: a value, with a pure ``next_delay``.

Modelled on urllib3's ``Retry`` and tenacity's wait strategies: the policy only computes; the
supervisor does the waiting (interruptibly), so the policy can be tested without a clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FOREVER", "ReconnectPolicy", "resolve_policy"]

FOREVER = -1
"""``max_attempts`` / ``initial_connect_attempts`` value meaning: never give up."""

DEFAULT_RECONNECT_TRIES = 10
DEFAULT_RECONNECT_INTERVAL_SECONDS = 60.0


class _Random(Protocol):
    def random(self) -> float: ...


@dataclass(frozen=True)
class ReconnectPolicy:
    """How often and how long to try to (re)connect.

    The wait before attempt ``n`` (1-based) is ``initial_delay * multiplier ** (n - 1)``, capped at
    ``max_delay``, then spread by ``±jitter`` (a fraction) so that many clients do not reconnect in
    lock-step. ``multiplier=1.0`` gives a fixed interval.

    ``max_attempts`` bounds the attempts after a connection that was up is lost; ``initial_connect_attempts``
    bounds the attempts of the first ``connect()``. Either may be ``FOREVER`` (-1).
    """

    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = DEFAULT_RECONNECT_INTERVAL_SECONDS
    jitter: float = 0.1
    max_attempts: int = DEFAULT_RECONNECT_TRIES
    initial_connect_attempts: int = 3

    def __post_init__(self) -> None:
        if self.initial_delay < 0:
            raise ValueError(f"initial_delay must be >= 0, got {self.initial_delay!r}")
        if self.multiplier < 1.0:
            raise ValueError(f"multiplier must be >= 1.0, got {self.multiplier!r}")
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay!r}) must be >= initial_delay ({self.initial_delay!r})"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")
        if self.max_attempts < FOREVER:
            raise ValueError(f"max_attempts must be >= 0 or -1 (forever), got {self.max_attempts!r}")
        if self.initial_connect_attempts == 0 or self.initial_connect_attempts < FOREVER:
            raise ValueError(
                "initial_connect_attempts must be >= 1 or -1 (forever), "
                f"got {self.initial_connect_attempts!r}"
            )

    @classmethod
    def from_seed_kwargs(
        cls,
        reconnect_tries: int = DEFAULT_RECONNECT_TRIES,
        reconnect_interval_seconds: float = DEFAULT_RECONNECT_INTERVAL_SECONDS,
    ) -> ReconnectPolicy:
        """The policy meant by the classic ``reconnect_tries`` / ``reconnect_interval_seconds`` kwargs.

        ``reconnect_interval_seconds`` is the longest wait between two attempts: waits start at one
        second (or the interval, if shorter) and double up to it, so a short outage is bridged quickly
        while a long one is not hammered.
        """
        if not isinstance(reconnect_tries, int) or isinstance(reconnect_tries, bool):
            raise TypeError(f"reconnect_tries must be an int, got {type(reconnect_tries).__name__}")
        if not isinstance(reconnect_interval_seconds, (int, float)) or isinstance(
            reconnect_interval_seconds, bool
        ):
            raise TypeError(
                "reconnect_interval_seconds must be a number, "
                f"got {type(reconnect_interval_seconds).__name__}"
            )
        if reconnect_interval_seconds < 0:
            raise ValueError(f"reconnect_interval_seconds must be >= 0, got {reconnect_interval_seconds!r}")
        interval = float(reconnect_interval_seconds)
        return cls(
            initial_delay=min(1.0, interval),
            multiplier=2.0,
            max_delay=interval,
            max_attempts=reconnect_tries,
        )

    def next_delay(self, attempt: int, rng: _Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based). Pure when ``rng`` is given."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt!r}")
        # Cap the exponent before multiplying so a long outage cannot overflow the float.
        exponent = min(attempt - 1, 64)
        base = min(self.max_delay, self.initial_delay * self.multiplier**exponent)
        if self.jitter == 0 or base == 0:
            return base
        spread = (rng or random).random() * 2.0 - 1.0
        return max(0.0, min(self.max_delay, base * (1.0 + self.jitter * spread)))

    def allows(self, attempt: int, *, initial: bool = False) -> bool:
        """True when attempt ``attempt`` (1-based) is within the budget."""
        limit = self.initial_connect_attempts if initial else self.max_attempts
        return limit == FOREVER or attempt <= limit

    def delays(self, rng: _Random | None = None, *, initial: bool = False) -> Iterator[float]:
        """The waits before each allowed attempt, in order (infinite when the budget is ``FOREVER``)."""
        attempt = 1
        while self.allows(attempt, initial=initial):
            yield self.next_delay(attempt, rng)
            attempt += 1


def resolve_policy(
    reconnect_policy: ReconnectPolicy | None,
    reconnect_tries: int | None,
    reconnect_interval_seconds: float | ReconnectPolicy | None,
) -> ReconnectPolicy:
    """The policy an adapter's kwargs ask for; giving a full policy and the seed kwargs is an error.

    A ``ReconnectPolicy`` is accepted in place of ``reconnect_interval_seconds`` too, so seed-style call
    sites can upgrade without renaming the argument.
    """
    if isinstance(reconnect_interval_seconds, ReconnectPolicy):
        if reconnect_policy is not None:
            raise ValueError("give either reconnect_policy or reconnect_interval_seconds, not both")
        reconnect_policy, reconnect_interval_seconds = reconnect_interval_seconds, None
    if reconnect_policy is not None:
        if not isinstance(reconnect_policy, ReconnectPolicy):
            raise TypeError(
                f"reconnect_policy must be a ReconnectPolicy, got {type(reconnect_policy).__name__}"
            )
        if reconnect_tries is not None or reconnect_interval_seconds is not None:
            raise ValueError(
                "give either reconnect_policy or reconnect_tries/reconnect_interval_seconds, not both"
            )
        return reconnect_policy
    return ReconnectPolicy.from_seed_kwargs(
        DEFAULT_RECONNECT_TRIES if reconnect_tries is None else reconnect_tries,
        DEFAULT_RECONNECT_INTERVAL_SECONDS
        if reconnect_interval_seconds is None
        else reconnect_interval_seconds,
    )
