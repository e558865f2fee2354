"""The adapter on IBM's real ``ibmmq`` Python layer (QueueManager, Queue, MD.pack(), PCF-free paths), with
only the C layer replaced by a bridge to the simulator: evidence that code tested on the simulator runs
unchanged on the real module. Runs in a process of its own (importing ibmmq is for good)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mqtarget import ibmmq_installed

SCRIPT = Path(__file__).with_name("real_layer_scenarios.py")
SCENARIOS = [
    "drop_in_types",
    "puts_across_outages",
    "gets_across_a_break",
    "unit_of_work_and_batch_replay",
    "permanent_errors_are_mqmierrors_too",
    "dynamic_queue_and_request_reply",
    "durable_subscription_resumes",
    "synchronous_puts_fill_the_md",
    "rfh2_matches_ibmmqs_class",
]


@pytest.mark.skipif(not ibmmq_installed(), reason="the ibmmq package is not installed")
def test_the_adapter_runs_on_ibms_own_ibmmq_classes() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("OK ")]
    assert passed == SCENARIOS, done.stdout + done.stderr
