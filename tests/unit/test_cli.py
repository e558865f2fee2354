"""The resilientmq command: the buffer inspector and the (simulated) MQ part of the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resilientmq.cli import main
from resilientmq.core.buffer import NewMessage, SqliteBuffer


def test_buffer_shows_pending_and_failed_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "outbox.db"
    buf = SqliteBuffer(path)
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


def test_demo_on_the_mq_simulator_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--only", "mq", "--messages", "600"]) == 0
    out = capsys.readouterr().out
    ours = next(line for line in out.splitlines() if line.startswith("ResilientWebSphereMQQueueManager"))
    assert ours.split()[1:4] == ["600", "600", "0"]  # sent, received, lost
    assert "resilientmq lost nothing." in out
