"""Both buffers: order, bound, overflow policies, failed list; the durable one across kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from resilientmq import BufferCorruptError, BufferFullError, BufferInUseError, ClientClosedError
from resilientmq.core.buffer import BoundedBuffer, MemoryBuffer, NewMessage, SqliteBuffer

Factory = Callable[..., BoundedBuffer]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[BoundedBuffer] = []

    def factory(*args: object, **kwargs: object) -> BoundedBuffer:
        if request.param == "memory":
            b: BoundedBuffer = MemoryBuffer(*args, **kwargs)  # type: ignore[arg-type]
        else:
            b = SqliteBuffer(tmp_path / f"buf{len(made)}.db", *args, **kwargs)  # type: ignore[arg-type]
        made.append(b)
        return b

    yield factory
    for b in made:
        b.close()


def msg(i: int, dest: str = "/queue/a") -> NewMessage:
    return NewMessage(dest, f"m{i}".encode(), {"n": i})


def bodies(envs: list) -> list[bytes]:  # type: ignore[type-arg]
    return [e.body for e in envs]


def test_fifo_order_peek_and_out_of_order_removal(make: Factory) -> None:
    b = make(100)
    envs = [b.append(msg(i)) for i in range(10)]
    assert [e.seq for e in envs] == sorted(e.seq for e in envs)
    assert len(b) == 10
    assert bodies(b.peek(0, 3)) == [b"m0", b"m1", b"m2"]
    assert bodies(b.peek(envs[4].seq, 100)) == [f"m{i}".encode() for i in range(5, 10)]
    assert b.remove([envs[7].seq, envs[2].seq, 99999]) == 2
    assert b.remove([envs[7].seq]) == 0  # idempotent
    assert bodies(b.peek(0, 100)) == [f"m{i}".encode() for i in (0, 1, 3, 4, 5, 6, 8, 9)]
    assert len(b) == 8
    e = b.peek(0, 1)[0]
    assert e.headers == {"n": 0} and e.destination == "/queue/a" and len(e.id) == 32


def test_extend_is_atomic_and_ordered(make: Factory) -> None:
    b = make(5, "raise")
    b.extend([msg(i) for i in range(3)])
    with pytest.raises(BufferFullError, match="no room for 3 messages"):
        b.extend([msg(i) for i in range(3, 6)])
    assert bodies(b.peek()) == [b"m0", b"m1", b"m2"]
    with pytest.raises(BufferFullError, match="can never fit"):
        b.extend([msg(i) for i in range(6)])


def test_raise_policy(make: Factory) -> None:
    b = make(2, "raise")
    b.append(msg(0))
    b.append(msg(1))
    with pytest.raises(BufferFullError, match="2 of 2 messages pending"):
        b.append(msg(2))
    assert len(b) == 2


def test_block_policy_times_out_then_raises(make: Factory) -> None:
    b = make(1, "block", block_timeout=0.2)
    b.append(msg(0))
    started = time.monotonic()
    with pytest.raises(BufferFullError, match=r"waited 0\.2 s"):
        b.append(msg(1))
    assert time.monotonic() - started >= 0.19


def test_block_policy_resumes_when_room_appears(make: Factory) -> None:
    b = make(1, "block", block_timeout=10)
    first = b.append(msg(0))
    done = threading.Event()

    def producer() -> None:
        b.append(msg(1))
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.1)  # it is blocked on the full buffer
    b.remove([first.seq])
    assert done.wait(5)
    t.join()
    assert bodies(b.peek()) == [b"m1"]


def test_drop_oldest_counts_and_keeps_what_it_dropped(make: Factory) -> None:
    b = make(3, "drop_oldest")
    for i in range(5):
        b.append(msg(i))
    assert bodies(b.peek()) == [b"m2", b"m3", b"m4"]
    assert b.dropped_count == 2
    dropped = b.failed()
    assert [f.body for f in dropped] == [b"m0", b"m1"]
    assert all("drop_oldest" in f.reason and f.error_type == "BufferFullError" for f in dropped)


def test_fail_moves_messages_to_the_failed_list_with_reasons(make: Factory) -> None:
    b = make(10)
    envs = [b.append(msg(i)) for i in range(3)]
    records = b.fail([(envs[1].seq, ValueError("too big"))])
    assert [r.body for r in records] == [b"m1"]
    assert len(b) == 2
    failed = b.failed()
    assert len(failed) == 1 and failed[0].reason == "too big" and failed[0].error_type == "ValueError"
    assert b.clear_failed() == 1 and b.failed() == []


def test_closed_buffer_refuses_appends_and_wakes_blocked_ones(make: Factory) -> None:
    b = make(1, "block", block_timeout=30)
    b.append(msg(0))
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            b.append(msg(1))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=producer)
    t.start()
    assert not t.join(0.1) and t.is_alive()
    b.close()
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], ClientClosedError)
    with pytest.raises(ClientClosedError):
        b.append(msg(2))


def test_invalid_arguments(make: Factory) -> None:
    with pytest.raises(ValueError, match="buffer_max_messages"):
        make(0)
    with pytest.raises(ValueError, match="overflow policy must be one of"):
        make(10, "spill")


def test_sqlite_reopen_yields_leftovers_in_order_and_keeps_failures(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = SqliteBuffer(path, 100)
    envs = [b.append(msg(i)) for i in range(6)]
    b.remove([envs[0].seq, envs[3].seq])
    b.fail([(envs[5].seq, "rejected")])
    b.close()
    again = SqliteBuffer(path, 100)
    assert bodies(again.peek()) == [b"m1", b"m2", b"m4"]
    assert [f.body for f in again.failed()] == [b"m5"]
    new = again.append(msg(9))
    assert new.seq > envs[-1].seq  # sequence numbers are never reused
    again.close()


def test_sqlite_is_exclusive_to_one_owner(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = SqliteBuffer(path)
    with pytest.raises(BufferInUseError, match="in use"):
        SqliteBuffer(path)
    b.close()
    SqliteBuffer(path).close()


def test_sqlite_refuses_foreign_and_corrupt_files(tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('alice')")
    db.commit()
    db.close()
    with pytest.raises(BufferCorruptError, match="not a resilientmq buffer"):
        SqliteBuffer(foreign)
    check = sqlite3.connect(foreign)
    assert check.execute("SELECT name FROM users").fetchall() == [("alice",)]  # untouched
    check.close()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(BufferCorruptError, match="not a usable resilientmq buffer"):
        SqliteBuffer(garbage)
    assert garbage.read_bytes().startswith(b"this is not sqlite")

    with pytest.raises(ValueError, match="is a directory"):
        SqliteBuffer(tmp_path)


def test_sqlite_rejects_headers_it_cannot_store(tmp_path: Path) -> None:
    b = SqliteBuffer(tmp_path / "h.db")
    with pytest.raises(TypeError, match="JSON-serialisable"):
        b.append(NewMessage("/queue/a", b"x", {"bad": object()}))
    assert len(b) == 0
    b.close()


CHILD = textwrap.dedent(
    """
    import sys
    from resilientmq.core.buffer import NewMessage, SqliteBuffer
    b = SqliteBuffer(sys.argv[1], 1_000_000)
    i = 0
    while True:
        b.append(NewMessage("/queue/k", str(i).encode()))
        print(i, flush=True)  # printed only after append returned: the message is in the file
        i += 1
    """
)


def test_sqlite_survives_kill_9_of_an_appending_process(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    acknowledged = -1
    deadline = time.monotonic() + 30
    while acknowledged < 2000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    # Lines already in the pipe were also acknowledged before the kill.
    for line in proc.stdout.read().split():
        acknowledged = int(line)
    assert acknowledged >= 2000, "the child did not get going"

    b = SqliteBuffer(path, 1_000_000)
    got = [int(e.body) for e in b.peek(0, 10**7)]
    b.close()
    # Everything acknowledged is there, in order, without gaps; at most one more (appended, not printed).
    assert got[: acknowledged + 1] == list(range(acknowledged + 1))
    assert len(got) - (acknowledged + 1) in (0, 1)
