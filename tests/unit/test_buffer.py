"""Both buffers: order, the two bounds, overflow policies, failed list; the durable one across reopen.

The durable buffer's own guarantees (kill -9, corrupt files, modes, map growth, a full disk, group
commit) are in test_buffer_lmdb.py and test_buffer_crash.py; the model-based test in test_buffer_model.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from resilientmq import BufferCorruptError, BufferFullError, BufferInUseError, ClientClosedError
from resilientmq.core.buffer import BoundedBuffer, LmdbBuffer, MemoryBuffer, NewMessage, open_buffer

Factory = Callable[..., BoundedBuffer]


@pytest.fixture(params=["memory", "lmdb", "lmdb-fsync"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[BoundedBuffer] = []

    def factory(*args: object, **kwargs: object) -> BoundedBuffer:
        if request.param == "memory":
            b: BoundedBuffer = MemoryBuffer(*args, **kwargs)  # type: ignore[arg-type]
        else:
            fsync = request.param == "lmdb-fsync"
            b = LmdbBuffer(tmp_path / f"buf{len(made)}.db", *args, fsync=fsync, **kwargs)  # type: ignore[arg-type]
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


def test_durable_reopen_yields_leftovers_in_order_and_keeps_failures(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path, 100)
    envs = [b.append(msg(i)) for i in range(6)]
    b.remove([envs[0].seq, envs[3].seq])
    b.fail([(envs[5].seq, "rejected")])
    b.close()
    again = LmdbBuffer(path, 100)
    assert bodies(again.peek()) == [b"m1", b"m2", b"m4"]
    assert [f.body for f in again.failed()] == [b"m5"]
    new = again.append(msg(9))
    assert new.seq > envs[-1].seq  # sequence numbers are never reused
    again.close()


def test_durable_is_exclusive_to_one_owner(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path)
    with pytest.raises(BufferInUseError, match="in use"):
        LmdbBuffer(path)
    b.close()
    LmdbBuffer(path).close()


def test_durable_refuses_foreign_and_corrupt_files(tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('alice')")
    db.commit()
    db.close()
    with pytest.raises(BufferCorruptError, match="not a resilientmq buffer"):
        LmdbBuffer(foreign)
    check = sqlite3.connect(foreign)
    assert check.execute("SELECT name FROM users").fetchall() == [("alice",)]  # untouched
    check.close()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(BufferCorruptError, match="not a usable resilientmq buffer"):
        LmdbBuffer(garbage)
    assert garbage.read_bytes().startswith(b"this is not sqlite")

    with pytest.raises(ValueError, match="is a directory"):
        LmdbBuffer(tmp_path)


def test_durable_rejects_headers_it_cannot_store(tmp_path: Path) -> None:
    b = LmdbBuffer(tmp_path / "h.db")
    with pytest.raises(TypeError, match="JSON-serialisable"):
        b.append(NewMessage("/queue/a", b"x", {"bad": object()}))
    assert len(b) == 0
    b.close()


# -- the bytes bound (buffer_max_bytes), enforced as the message bound is ---------------------------
def big(i: int, size: int) -> NewMessage:
    return NewMessage("/queue/a", bytes([65 + i % 26]) * size, {"n": i})


def test_bytes_bound_raise_policy(make: Factory) -> None:
    b = make(100, "raise", max_bytes=100)
    b.append(big(0, 60))
    b.append(big(1, 40))
    assert (len(b), b.pending_bytes, b.max_bytes) == (2, 100, 100)
    with pytest.raises(
        BufferFullError, match=r"100 of 100 bytes pending \(buffer_max_bytes\), no room for a "
    ):
        b.append(big(2, 1))
    assert b.append(NewMessage("/queue/a", b"")).body == b""  # an empty body always fits the bytes
    with pytest.raises(BufferFullError, match="a message of 101 bytes can never fit a buffer of 100 bytes"):
        b.append(big(3, 101))
    with pytest.raises(BufferFullError, match="a batch of 2 messages of 120 bytes can never fit"):
        b.extend([big(4, 60), big(5, 60)])
    assert len(b) == 3 and b.pending_bytes == 100


def test_bytes_bound_is_given_back_by_remove_and_fail(make: Factory) -> None:
    b = make(100, "raise", max_bytes=100)
    first = b.append(big(0, 70))
    second = b.append(big(1, 30))
    assert b.remove([first.seq]) == 1 and b.pending_bytes == 30
    b.append(big(2, 70))
    b.fail([(second.seq, "refused")])
    assert b.pending_bytes == 70
    b.append(big(3, 30))
    assert [e.body[:1] for e in b.peek()] == [b"C", b"D"]


def test_bytes_bound_block_policy_waits_for_room(make: Factory) -> None:
    b = make(100, "block", block_timeout=0.2, max_bytes=100)
    first = b.append(big(0, 80))
    with pytest.raises(BufferFullError, match=r"80 of 100 bytes pending.*waited 0\.2 s"):
        b.append(big(1, 30))
    done = threading.Event()

    def producer() -> None:
        b.append(big(2, 30), timeout=10)
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.1)  # blocked on bytes, though one message more would fit the count
    b.remove([first.seq])
    assert done.wait(5)
    t.join()
    assert b.pending_bytes == 30


def test_bytes_bound_drop_oldest_drops_until_the_bytes_fit(make: Factory) -> None:
    b = make(100, "drop_oldest", max_bytes=100)
    for i in range(4):
        b.append(big(i, 25))
    b.append(big(4, 60))  # needs 60 of 100: the three oldest go
    assert [e.body[:1] for e in b.peek()] == [b"D", b"E"]
    assert b.dropped_count == 3 and b.pending_bytes == 85
    dropped = b.failed()
    assert [f.body[:1] for f in dropped] == [b"A", b"B", b"C"]
    assert all("100 bytes" in f.reason and f.error_type == "BufferFullError" for f in dropped)


def test_bytes_bound_wait_for_space(make: Factory) -> None:
    b = make(100, "raise", max_bytes=10)
    first = b.append(big(0, 10))
    assert b.wait_for_space(0.05) is False
    b.remove([first.seq])
    assert b.wait_for_space(0.05) is True


def test_invalid_bytes_bound(make: Factory) -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="buffer_max_bytes must be a positive int or None"):
            make(10, max_bytes=bad)


def test_open_buffer_picks_the_engine_and_passes_both_bounds(tmp_path: Path) -> None:
    mem = open_buffer(None, 5, "raise", max_bytes=50)
    assert isinstance(mem, MemoryBuffer) and (mem.max_messages, mem.max_bytes) == (5, 50)
    durable = open_buffer(tmp_path / "o.db", 7, "drop_oldest", 1.0, fsync=True, max_bytes=70)
    assert isinstance(durable, LmdbBuffer) and durable.fsync is True
    assert (durable.max_messages, durable.max_bytes, durable.overflow.value) == (7, 70, "drop_oldest")
    mem.close()
    durable.close()


# -- one message at a time, and room held for messages a client library keeps ----------------------------
def test_append_one_is_append_built_once(make: Factory, tmp_path: Path) -> None:
    b = make(3, "raise")
    first = b.append(msg(0))
    second = b.append_one("/queue/a", b"m1", {"n": 1}, id="fixed-id")
    third = b.append_one("/queue/b", b"m2")  # no headers, a fresh id
    assert [e.seq for e in (first, second, third)] == [first.seq, first.seq + 1, first.seq + 2]
    assert (second.id, second.headers, third.headers, third.destination) == (
        "fixed-id",
        {"n": 1},
        {},
        "/queue/b",
    )
    assert len(third.id) == 32 and third.id != first.id
    assert bodies(b.peek()) == [b"m0", b"m1", b"m2"]
    with pytest.raises(BufferFullError, match="3 of 3 messages pending"):
        b.append_one("/queue/a", b"m3")
    b.remove([first.seq])
    assert b.append_one("/queue/a", b"m4").seq == third.seq + 1


def test_append_one_minds_the_bytes_bound_and_a_closed_buffer(make: Factory) -> None:
    b = make(10, "raise", max_bytes=10)
    with pytest.raises(BufferFullError, match="can never fit"):
        b.append_one("/queue/a", b"x" * 11)
    b.append_one("/queue/a", b"x" * 6)
    with pytest.raises(BufferFullError, match="6 of 10 bytes pending"):
        b.append_one("/queue/a", b"x" * 6)
    b.close()
    with pytest.raises(ClientClosedError):
        b.append_one("/queue/a", b"x")


def test_room_held_outside_counts_against_the_bound(make: Factory) -> None:
    b = make(5, "raise")
    assert b.hold_outside(3) == 3 and b.outside == 3
    b.append(msg(0))
    b.append(msg(1))
    with pytest.raises(BufferFullError, match="5 of 5 messages pending"):
        b.append(msg(2))
    assert len(b) == 2  # what is held outside is not stored
    b.release_outside(1)
    b.append(msg(3))
    assert bodies(b.peek()) == [b"m0", b"m1", b"m3"] and b.outside == 2


def test_room_is_held_outside_only_while_nothing_is_stored_and_never_past_the_bound(make: Factory) -> None:
    b = make(5, "raise")
    stored = b.append(msg(0))
    assert b.hold_outside(4) == 0  # a message is stored: nothing may overtake it
    b.remove([stored.seq])
    assert b.hold_outside(4) == 4
    assert b.hold_outside(4) == 1  # the bound
    assert b.hold_outside(1) == 0
    assert make(5, max_bytes=100).hold_outside(1) == 0  # librdkafka's bytes are not counted
    b.close()
    assert b.hold_outside(1) == 0


def test_giving_back_room_held_outside_wakes_a_blocked_append(make: Factory) -> None:
    b = make(2, "block", block_timeout=10)
    assert b.hold_outside(2) == 2
    done = threading.Event()

    def producer() -> None:
        b.append(msg(0))
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.1)  # blocked: the room is held outside
    b.release_outside(1)
    assert done.wait(5)
    t.join()
    assert bodies(b.peek()) == [b"m0"] and b.outside == 1


def test_messages_held_outside_that_fail_go_to_the_failed_list_with_their_room(make: Factory) -> None:
    b = make(3, "raise")
    assert b.hold_outside(3) == 3
    (record,) = b.fail_outside([(msg(7), "refused for good")])
    assert (record.body, record.reason, record.error_type) == (b"m7", "refused for good", "str")
    assert len(b) == 0 and b.outside == 2
    assert [f.body for f in b.failed()] == [b"m7"]
    b.release_outside(2)
    assert b.append_one("/queue/a", b"later").seq > record.envelope.seq  # its seq is not reused
