"""Shared pytest configuration: the test bed's fixtures, and a summary of what the chaos tests counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest_plugins = ["resilientmq.testing.fixtures"]

_CHAOS_REPORTS: list[str] = []


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record what a fault-injection test counted; printed at the end of the run (pass or fail)."""

    def report(**counts: Any) -> None:
        line = " ".join(f"{k}={v}" for k, v in counts.items())
        _CHAOS_REPORTS.append(f"{request.node.nodeid}: {line}")
        for key, value in counts.items():
            request.node.user_properties.append((key, value))

    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak runs are left out unless the ``-m`` expression names them, so that ``-m "not rabbitmq"`` does
    not bring them back (a ``-m`` in ``addopts`` would be replaced by the command line's)."""
    if "soak" in (config.getoption("markexpr") or ""):
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _CHAOS_REPORTS:
        terminalreporter.section("chaos counts (lost must be 0; duplicates are at-least-once re-sends)")
        for line in _CHAOS_REPORTS:
            terminalreporter.write_line(line)
