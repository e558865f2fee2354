"""The resilience kwargs: declared once, the same defaults and the same errors on every client."""

from __future__ import annotations

import pytest

from resilientmq import OverflowPolicy, ReconnectPolicy
from resilientmq.core.options import RESILIENCE_KWARGS, ResilienceOptions


def test_defaults_are_the_documented_ones() -> None:
    options = ResilienceOptions.from_kwargs({})
    assert options.reconnect_policy == ReconnectPolicy.from_seed_kwargs(10, 60)
    assert options.buffer_max_messages == 10_000
    assert (options.buffer_max_bytes, options.buffer_path) == (None, None)
    assert options.buffer_overflow is OverflowPolicy.BLOCK
    assert (options.buffer_block_timeout, options.buffer_fsync, options.drain_timeout) == (30.0, False, 30.0)


def test_an_unknown_keyword_is_refused_as_python_would_naming_the_class() -> None:
    with pytest.raises(TypeError, match="Producer\\(\\) got an unexpected keyword argument 'buffer_sise'"):
        ResilienceOptions.from_kwargs({"buffer_sise": 3}, owner="Producer")


def test_split_picks_ours_out_of_a_base_library_s_kwargs() -> None:
    options, rest = ResilienceOptions.split(
        {"acks": "all", "buffer_max_messages": 5, "linger_ms": 2}, defaults={"buffer_block_timeout": 60.0}
    )
    assert rest == {"acks": "all", "linger_ms": 2}
    assert options.buffer_max_messages == 5 and options.buffer_block_timeout == 60.0
    assert (
        ResilienceOptions.split({"buffer_block_timeout": 1.0}, defaults={"buffer_block_timeout": 60.0})[
            0
        ].buffer_block_timeout
        == 1.0
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"buffer_path": 3}, TypeError, "buffer_path must be a path or None, got int"),
        ({"drain_timeout": -1}, ValueError, "drain_timeout must be >= 0"),
        ({"buffer_max_bytes": 0}, ValueError, "buffer_max_bytes must be a positive int"),
        ({"buffer_fsync": "yes"}, TypeError, "buffer_fsync must be a bool"),
        ({"buffer_overflow": "spill"}, ValueError, "overflow policy must be one of"),
        ({"reconnect_tries": 2, "reconnect_policy": ReconnectPolicy()}, ValueError, "not both"),
    ],
)
def test_bad_values_get_an_error_naming_the_argument(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ResilienceOptions.from_kwargs(kwargs)


def test_the_declared_names_are_the_readme_s() -> None:
    assert {
        "reconnect_tries", "reconnect_interval_seconds", "reconnect_policy", "buffer_max_messages",
        "buffer_max_bytes", "buffer_path", "buffer_overflow", "buffer_block_timeout", "buffer_fsync",
        "drain_timeout",
    } == RESILIENCE_KWARGS  # fmt: skip
