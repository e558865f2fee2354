"""``resilientmq demo`` end to end: the MQ part on the simulator with --plot and --events, and a part on a
fake broker whose 'ours' loses a message (the demo must say so and exit non-zero)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from resilientmq.cli import main
from resilientmq.cli.demo import catalog

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_is_a_picture(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert 10_000 < len(data) < 300_000  # a real figure, small enough for the README
    pixels = matplotlib.image.imread(str(path))
    height, width = pixels.shape[:2]
    assert width >= 800 and height >= 200
    assert pixels.std() > 0.05  # not a blank canvas


def row(out: str, label: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(label))
    return line[len(label) :].split()


@pytest.fixture
def lossy(monkeypatch: pytest.MonkeyPatch) -> str:
    part = catalog.Part("lossy", "A fake broker", "lossy_part", "ReconnectPolicy")
    monkeypatch.setitem(catalog.PARTS, "lossy", part)
    return "lossy"


def test_demo_on_the_mq_simulator_loses_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, events = tmp_path / "timeline.png", tmp_path / "events.jsonl"
    assert (
        main(["demo", "--only", "mq", "--messages", "600", "--plot", str(png), "--events", str(events)]) == 0
    )
    out = capsys.readouterr().out
    ours = next(line for line in out.splitlines() if line.startswith("ResilientWebSphereMQQueueManager"))
    assert ours.split()[1:4] == ["600", "600", "0"]  # sent, received, lost
    assert "resilientmq lost nothing." in out
    # Not a terminal: plain progress lines, each fault as it begins and ends.
    assert "fault begins: queue manager stopped 2 s" in out and "fault over  : queue manager stopped" in out
    *_counts, outage, drain = row(out, "ResilientWebSphereMQQueueManager")
    assert float(outage) >= 1.0  # the queue manager was stopped for 2 s
    assert float(drain) < 5.0
    plain = row(out, "ibmmq QueueManager (plain, simulated)")
    assert int(plain[2]) > 0  # the plain client lost messages through the same faults
    assert_is_a_picture(png)
    assert f"timeline: {png}" in out
    records = [json.loads(line) for line in events.read_text().splitlines()]
    mine = [r for r in records if r["broker"] == "ibmmq"]
    kinds = [r["event"] for r in mine]
    assert "connection_lost" in kinds and "reconnected" in kinds
    assert all(r["client"] == "ibmmq:QM1" for r in mine)


def test_the_demo_says_when_ours_lost_a_message_and_exits_non_zero(
    lossy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "lossy.png"
    assert main(["demo", "--only", lossy, "--messages", "60", "--plot", str(png), "--no-live"]) == 1
    out = capsys.readouterr().out
    assert "resilientmq LOST MESSAGES: this is a bug." in out
    sent, received, lost, dups, _seconds, outage, _drain = row(out, "ours (fake, loses one)")
    assert (sent, received, lost, dups) == ("60", "59", "1", "0")
    assert 0.3 <= float(outage) <= 1.5
    plain = row(out, "plain (fake)")
    assert int(plain[2]) > 0
    assert "refused by the call or a callback, 0 never told" in out
    assert "raised" in out and "ConnectionError: not connected" in out
    assert_is_a_picture(png)


def test_the_live_display_renders_on_request(lossy: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--only", lossy, "--messages", "30", "--live"]) == 1
    out = capsys.readouterr().out
    assert "A fake broker" in out  # the live panel's title
    assert "fault" in out and "buffered" in out


def test_a_part_this_build_lacks_is_named_not_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(catalog.PARTS, "nope", catalog.Part("nope", "Nope", ".part_nope", "NoSuchClient"))
    assert main(["demo", "--only", "nope"]) == 0
    assert "[nope] not available in this build: NoSuchClient is not available" in capsys.readouterr().out
