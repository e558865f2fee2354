"""The resilientmq command without brokers: the buffer inspector's first form, argument handling, and what
the command imports before it needs to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resilientmq.cli import main
from resilientmq.cli.buffer import legacy_alias
from resilientmq.core.buffer import LmdbBuffer, NewMessage


def test_buffer_shows_pending_and_failed_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outbox.db"
    buf = LmdbBuffer(path)
    first = buf.append(NewMessage("/queue/a", b"one"))
    buf.append(NewMessage("/queue/a", b"two"))
    buf.fail([(first.seq, "forbidden")])
    buf.close()
    assert main(["buffer", str(path), "--failed"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"path": str(path), "pending": 1, "failed": 1}
    assert lines[1]["destination"] == "/queue/a" and lines[1]["bytes"] == 3
    assert lines[2]["reason"] == "forbidden"


def test_buffer_refuses_a_foreign_file_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database")
    assert main(["buffer", str(path)]) == 2
    assert "not a usable resilientmq buffer" in capsys.readouterr().err


# The demo on the MQ simulator (with its timeline) is in tests/cli/test_cli_demo.py.


def test_legacy_form_is_inspect_with_its_json_lines() -> None:
    assert legacy_alias(["buffer", "/x/outbox.db", "--failed"]) == [
        "buffer",
        "inspect",
        "--lines",
        "/x/outbox.db",
        "--failed",
    ]
    for argv in (["buffer", "inspect", "/x"], ["buffer", "--help"], ["demo", "/x"]):
        assert legacy_alias(argv) == argv


def test_the_command_loads_neither_the_test_kit_nor_a_client_library_until_needed(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from resilientmq.cli import main\n"
        f"code = main(['buffer', 'inspect', {str(tmp_path / 'none.db')!r}])\n"
        "heavy = sorted(m for m in ('resilientmq.testing', 'stomp', 'kafka', 'confluent_kafka', 'rich',\n"
        "    'matplotlib', 'prometheus_client', 'resilientmq.stomp') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split("\n")[0] == "5 []"  # no such file; nothing heavy imported


def test_help_names_every_command_and_demo_part(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(part in out for part in ("stomp", "kafka", "confluent", "mq", "--plot", "--messages"))
