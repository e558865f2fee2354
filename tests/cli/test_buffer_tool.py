"""``resilientmq buffer inspect|export|replay|purge`` on a file left by a producer killed with -9, and on
files it must refuse (in use, foreign, damaged, bad paths) without changing a byte of them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest

from resilientmq.cli import buffer as tool
from resilientmq.cli import main
from resilientmq.core.buffer import LmdbBuffer, NewMessage

CHILD = Path(__file__).with_name("buffer_child.py")
REASON = "MQ reason 2035 (MQRC_NOT_AUTHORIZED)"


def start_producer(path: Path) -> subprocess.Popen[str]:
    """The child producer, once it has said 'ready' (its outbox file then holds 5 pending, 2 failed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # blocks until ready (or the child died: then it is empty)
    assert line.strip() == "ready", f"the producer did not start (exit {child.poll()})"
    return child


@pytest.fixture(scope="module")
def killed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file left by a producer killed with -9 (made once; each test works on a copy)."""
    path = tmp_path_factory.mktemp("killed") / "outbox.db"
    child = start_producer(path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    return path


@pytest.fixture
def left(killed_file: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "outbox.db"
    copy.write_bytes(killed_file.read_bytes())
    return copy


class Untouched:
    """The file's bytes, its size and mtime, and the directory listing: taken before, compared after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.before = self.take()

    def take(self) -> tuple[Any, ...]:
        if not self.path.exists():
            return (None, sorted(os.listdir(self.path.parent)))
        st = self.path.stat()
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return (digest, st.st_size, st.st_mtime_ns, sorted(os.listdir(self.path.parent)))

    def check(self) -> None:
        assert self.take() == self.before, f"{self.path} was changed"


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is None:
        code = main(["buffer", *argv])
    else:
        args = _parse(["buffer", *argv])
        code = tool.run(args, stdin=FakeTerminal(stdin))
    out = capsys.readouterr()
    return code, out.out, out.err


def _parse(argv: list[str]) -> Any:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    tool.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def contents(path: Path) -> tuple[list[Any], list[Any]]:
    buffer = LmdbBuffer(path)
    try:
        return buffer.peek(0, 1000), buffer.failed()
    finally:
        buffer.close()


# -- inspect and export ---------------------------------------------------------------------------
def test_inspect_tells_counts_per_destination_ages_and_why_messages_failed(
    left: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = Untouched(left)
    code, out, _err = run(capsys, "inspect", str(left))
    assert code == tool.EXIT_OK
    assert "5 pending (" in out and "2 failed" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("DEMO.")}
    assert lines["DEMO.A"][1:4] == ["3", str(3 * len("order 0")), "0"]  # pending, bytes, failed
    assert lines["DEMO.B"][1:4] == ["2", "6", "0"]
    assert lines["DEMO.DENIED"][1:4] == ["0", "0", "2"]
    assert out.count(REASON) == 2 and "DestinationError" in out
    assert "oldest pending" in out
    same.check()

    code, out, _err = run(capsys, "inspect", str(left), "--json", "--pending")
    doc = json.loads(out)
    assert (doc["pending"], doc["failed"]) == (5, 2)
    assert doc["destinations"]["DEMO.A"]["pending"] == 3 and doc["destinations"]["DEMO.DENIED"]["failed"] == 2
    assert 0 <= doc["newest_age_seconds"] <= doc["oldest_age_seconds"] < 600
    assert [m["destination"] for m in doc["pending_messages"]] == ["DEMO.A"] * 3 + ["DEMO.B"] * 2
    assert all(REASON in m["reason"] for m in doc["failed_messages"])
    assert list(doc["failure_reasons"].values()) == [2]
    same.check()


def test_export_writes_every_message_as_json_lines_with_binary_bodies_in_base64(
    left: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "exports" / "failed.jsonl"
    target.parent.mkdir()
    same = Untouched(left)
    code, out, _err = run(capsys, "export", str(left))
    assert code == tool.EXIT_OK
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["state"] for r in records] == ["pending"] * 5 + ["failed"] * 2
    text = [r for r in records if r["destination"] == "DEMO.A"]
    assert [r["body"] for r in text] == ["order 0", "order 1", "order 2"]
    binary = [r for r in records if r["destination"] == "DEMO.B"]
    assert [base64.b64decode(r["body_base64"]) for r in binary] == [b"\xff\x00\x00", b"\xff\x00\x01"]
    assert all("body" not in r for r in binary)
    failed = [r for r in records if r["state"] == "failed"]
    assert all(REASON in r["reason"] and r["error_type"] == "DestinationError" for r in failed)
    assert {"seq", "id", "headers", "created_at", "failed_at"} <= set(failed[0])
    assert len({r["id"] for r in records}) == 7

    assert run(capsys, "export", str(left), "--failed", "-o", str(target))[0] == tool.EXIT_OK
    assert [json.loads(line)["state"] for line in target.read_text().splitlines()] == ["failed", "failed"]
    same.check()


def test_the_first_version_s_form_still_prints_its_json_lines(
    left: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = Untouched(left)
    code, out, _err = run(capsys, str(left), "--failed")
    assert code == tool.EXIT_OK
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {"path": str(left), "pending": 5, "failed": 2}
    assert [line["destination"] for line in lines[1:6]] == ["DEMO.A"] * 3 + ["DEMO.B"] * 2
    assert all(REASON in line["reason"] for line in lines[6:])
    same.check()


# -- replay and purge -----------------------------------------------------------------------------
def test_replay_moves_failed_messages_back_into_the_outbox_by_id_destination_or_all(
    left: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pending, failed = contents(left)
    first, second = failed
    assert run(capsys, "replay", str(left), "--id", "no-such-id")[0] == tool.EXIT_DECLINED
    code, out, _err = run(capsys, "replay", str(left), "--id", first.id, "--dry-run")
    assert code == tool.EXIT_OK and "would move" in out and first.id in out
    assert len(contents(left)[1]) == 2  # a dry run moves nothing

    code, out, _err = run(capsys, "replay", str(left), "--id", first.id)
    assert code == tool.EXIT_OK and "1 message(s) will be sent" in out
    pending, still_failed = contents(left)
    assert [f.id for f in still_failed] == [second.id]
    assert [e.id for e in pending][-1] == first.id  # at the end of the outbox, with its id
    assert pending[-1].body == first.body and pending[-1].destination == "DEMO.DENIED"
    assert pending[-1].seq > max(e.seq for e in pending[:-1])

    assert run(capsys, "replay", str(left), "--destination", "DEMO.A")[0] == tool.EXIT_DECLINED
    assert run(capsys, "replay", str(left))[0] == tool.EXIT_OK  # all that is left
    pending, still_failed = contents(left)
    assert still_failed == [] and len(pending) == 7


def test_purge_asks_first_and_deletes_only_what_was_chosen(
    left: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = Untouched(left)
    # No terminal to ask on, and no --yes: refused.
    code, _out, err = run(capsys, "purge", str(left))
    assert code == tool.EXIT_DECLINED and "--yes" in err
    code, out, _err = run(capsys, "purge", str(left), stdin="n\n")
    assert code == tool.EXIT_DECLINED and "Delete 2 failed message(s)" in out and "nothing deleted" in out
    assert run(capsys, "purge", str(left), "--all", "--dry-run")[0] == tool.EXIT_OK
    same.check()

    code, out, _err = run(capsys, "purge", str(left), stdin="y\n")
    assert code == tool.EXIT_OK and "deleted 2 failed and 0 pending" in out
    pending, failed = contents(left)
    assert failed == [] and len(pending) == 5

    code, out, _err = run(capsys, "purge", str(left), "--pending", "--destination", "DEMO.B", "--yes")
    assert code == tool.EXIT_OK and "deleted 0 failed and 2 pending" in out
    pending, _failed = contents(left)
    assert [e.destination for e in pending] == ["DEMO.A"] * 3
    assert run(capsys, "purge", str(left), "--yes")[0] == tool.EXIT_DECLINED  # no failed one left


# -- what must be refused, untouched ---------------------------------------------------------------
def test_a_file_in_use_by_a_running_client_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "live.db"
    child = start_producer(path)
    try:
        same = Untouched(path)
        for argv in (["inspect"], ["export"], ["replay"], ["purge", "--yes"], []):
            code, _out, err = run(capsys, *argv[:1], str(path), *argv[1:])
            assert code == tool.EXIT_IN_USE, argv
            assert "in use by a running client" in err and f"pid {child.pid}" in err
        same.check()
    finally:
        child.kill()
        child.wait(10)
    assert run(capsys, "inspect", str(path))[0] == tool.EXIT_OK  # the lock died with its process


def _sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("create table t (x)")


def _other_lmdb(path: Path) -> None:
    env = lmdb.open(str(path), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(b"someone", b"else's data")
    env.close()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_text("not a database"), "not a usable resilientmq buffer"),
        (_sqlite, "SQLite"),
        (_other_lmdb, "not a resilientmq buffer"),
    ],
    ids=["text", "sqlite", "another-lmdb"],
)
def test_a_foreign_file_is_refused_and_left_as_it_was(
    make: Any, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.db"
    make(path)
    same = Untouched(path)
    for argv in (["inspect"], ["export"], ["replay"], ["purge", "--yes"]):
        code, _out, err = run(capsys, argv[0], str(path), *argv[1:])
        assert code == tool.EXIT_FOREIGN, argv
        assert words in err
    same.check()  # no byte changed, and no PATH.lock left beside it


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: 2 * 4096 + 100])  # the two meta pages, and a torn piece of the data


def _flipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(b"order 1")
    data[at] ^= 0x01  # one bit of a message body: its checksum no longer holds
    path.write_bytes(bytes(data))


@pytest.fixture
def small_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "small.db"
    buffer = LmdbBuffer(path)
    buffer.extend([NewMessage("DEMO.A", f"order {i}".encode()) for i in range(3)])
    buffer.close()
    yield path


@pytest.mark.parametrize("damage", [_truncated, _flipped], ids=["truncated", "bit-flipped"])
def test_a_damaged_file_is_refused_and_left_as_it_was(
    damage: Any, small_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage(small_file)
    same = Untouched(small_file)
    for argv in (["inspect"], ["export"], ["replay"], ["purge", "--all", "--yes"]):
        code, _out, err = run(capsys, argv[0], str(small_file), *argv[1:])
        assert code == tool.EXIT_DAMAGED, argv
        assert "damaged" in err or "corrupt" in err or "truncated" in err
    same.check()


def test_bad_paths_get_their_own_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "outbox.db"
    code, _out, err = run(capsys, "inspect", str(missing))
    assert code == tool.EXIT_NO_FILE and "no such file" in err
    assert not missing.parent.exists()  # nothing created on the way
    code, _out, err = run(capsys, "inspect", str(tmp_path))
    assert code == tool.EXIT_NO_FILE and "not a regular file" in err
    if os.geteuid() != 0:  # root reads whatever the mode says
        unreadable = tmp_path / "secret.db"
        unreadable.write_bytes(b"x")
        unreadable.chmod(0)
        assert run(capsys, "inspect", str(unreadable))[0] == tool.EXIT_NO_FILE


# -- the buffer API the tool stands on -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["memory", "lmdb"])
def test_failed_messages_go_back_into_the_outbox_or_away_on_both_buffers(kind: str, tmp_path: Path) -> None:
    from resilientmq.core.buffer import MemoryBuffer  # noqa: PLC0415

    path = tmp_path / "api.db"

    def make() -> Any:
        return MemoryBuffer(10) if kind == "memory" else LmdbBuffer(path, 10)

    buffer = make()
    a, b, c = buffer.extend([NewMessage("q", body, {"h": 1}) for body in (b"a", b"bb", b"ccc")])
    buffer.fail([(a.seq, "forbidden"), (c.seq, "too big")])
    assert (len(buffer), buffer.pending_bytes) == (1, 2)
    (moved,) = buffer.requeue_failed(lambda r: r.reason == "too big")
    assert (moved.id, moved.body, dict(moved.headers), moved.created_at) == (
        c.id,
        b"ccc",
        {"h": 1},
        c.created_at,
    )
    assert moved.seq > c.seq
    assert [e.id for e in buffer.peek()] == [b.id, c.id]
    assert (len(buffer), buffer.pending_bytes) == (2, 5)
    assert [r.id for r in buffer.failed()] == [a.id]
    assert buffer.requeue_failed(lambda r: False) == []
    assert buffer.discard_failed() == 1 and buffer.failed() == []
    assert buffer.remove([moved.seq]) == 1
    if kind == "lmdb":  # what the tool changed is in the file
        buffer.close()
        buffer = make()
        assert [e.id for e in buffer.peek()] == [b.id] and buffer.failed() == []
        assert buffer.append(NewMessage("q", b"d")).seq > moved.seq  # seqs never reused
    buffer.close()
