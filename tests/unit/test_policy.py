"""ReconnectPolicy: a pure value; no test here sleeps."""

from __future__ import annotations

import random

import pytest

from resilientmq import FOREVER, ReconnectPolicy
from resilientmq.core.policy import resolve_policy


class FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_exponential_backoff_is_capped() -> None:
    p = ReconnectPolicy(initial_delay=0.5, multiplier=2.0, max_delay=5.0, jitter=0.0)
    assert [p.next_delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_multiplier_one_is_a_fixed_interval() -> None:
    p = ReconnectPolicy(initial_delay=3.0, multiplier=1.0, max_delay=3.0, jitter=0.0)
    assert {p.next_delay(n) for n in range(1, 50)} == {3.0}


def test_jitter_spreads_within_bounds_and_is_pure_given_rng() -> None:
    p = ReconnectPolicy(initial_delay=10.0, multiplier=1.0, max_delay=20.0, jitter=0.2)
    assert p.next_delay(1, FixedRng(0.0)) == pytest.approx(8.0)
    assert p.next_delay(1, FixedRng(0.5)) == pytest.approx(10.0)
    assert p.next_delay(1, FixedRng(0.999999)) == pytest.approx(12.0, rel=1e-4)
    a = [p.next_delay(n, random.Random(7)) for n in range(1, 10)]
    b = [p.next_delay(n, random.Random(7)) for n in range(1, 10)]
    assert a == b


def test_jitter_never_exceeds_max_delay() -> None:
    p = ReconnectPolicy(initial_delay=1.0, multiplier=2.0, max_delay=4.0, jitter=0.5)
    assert max(p.next_delay(10, FixedRng(0.999999)) for _ in range(3)) <= 4.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    p = ReconnectPolicy(initial_delay=1.0, multiplier=10.0, max_delay=30.0, jitter=0.0)
    assert p.next_delay(10_000) == 30.0


def test_attempt_budgets() -> None:
    p = ReconnectPolicy(max_attempts=3, initial_connect_attempts=2)
    assert [p.allows(n) for n in (1, 3, 4)] == [True, True, False]
    assert [p.allows(n, initial=True) for n in (1, 2, 3)] == [True, True, False]
    forever = ReconnectPolicy(max_attempts=FOREVER, initial_connect_attempts=FOREVER)
    assert forever.allows(10**9) and forever.allows(10**9, initial=True)
    assert ReconnectPolicy(max_attempts=0).allows(1) is False


def test_delays_iterates_the_budget() -> None:
    p = ReconnectPolicy(initial_delay=1, multiplier=3, max_delay=100, jitter=0, max_attempts=4)
    assert list(p.delays()) == [1, 3, 9, 27]


def test_seed_kwargs_map_onto_a_capped_backoff() -> None:
    p = ReconnectPolicy.from_seed_kwargs(reconnect_tries=5, reconnect_interval_seconds=8)
    assert p.max_attempts == 5
    assert p.max_delay == 8
    assert p.initial_delay == 1.0
    short = ReconnectPolicy.from_seed_kwargs(reconnect_tries=-1, reconnect_interval_seconds=0.2)
    assert short.initial_delay == 0.2 and short.max_attempts == FOREVER


def test_defaults_follow_the_seed_kwargs() -> None:
    p = resolve_policy(None, None, None)
    assert (p.max_attempts, p.max_delay) == (10, 60.0)


def test_resolve_policy_accepts_a_full_policy_in_either_place() -> None:
    custom = ReconnectPolicy(initial_delay=0.1, max_delay=0.5)
    assert resolve_policy(custom, None, None) is custom
    assert resolve_policy(None, None, custom) is custom
    with pytest.raises(ValueError, match="not both"):
        resolve_policy(custom, 3, None)
    with pytest.raises(ValueError, match="not both"):
        resolve_policy(custom, None, custom)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"initial_delay": -1}, "initial_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"initial_delay": 5, "max_delay": 1}, "max_delay"),
        ({"jitter": 2}, "jitter"),
        ({"max_attempts": -2}, "max_attempts"),
        ({"initial_connect_attempts": 0}, "initial_connect_attempts"),
    ],
)
def test_invalid_policies_name_the_field(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReconnectPolicy(**kwargs)  # type: ignore[arg-type]


def test_seed_kwargs_type_errors() -> None:
    with pytest.raises(TypeError, match="reconnect_tries"):
        ReconnectPolicy.from_seed_kwargs(reconnect_tries="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reconnect_interval_seconds"):
        ReconnectPolicy.from_seed_kwargs(reconnect_interval_seconds="60")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reconnect_interval_seconds"):
        ReconnectPolicy.from_seed_kwargs(reconnect_interval_seconds=-1)
