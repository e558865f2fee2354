"""The durable buffer's own guarantees: reopen, one owner, refused files left as they were, 0600 files,
a map that grows and reuses what removals free, a full disk, and group commit with fsync=True."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest

from resilientmq import BufferCorruptError, BufferFullError, BufferInUseError, ClientClosedError
from resilientmq.core.buffer import Envelope, LmdbBuffer, MemoryBuffer, NewMessage
from resilientmq.testing import wait_until


def msg(i: int, size: int = 0, **headers: Any) -> NewMessage:
    body = str(i).encode() if not size else bytes([48 + i % 10]) * size
    return NewMessage("/queue/d", body, {"i": i, **headers})


def bodies(envs: list[Envelope]) -> list[bytes]:
    return [e.body for e in envs]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- reopen ------------------------------------------------------------------------------------------
def test_reopen_yields_everything_left_with_its_fields_and_the_failed_list(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path, 100, "drop_oldest", max_bytes=10_000)
    envs = [b.append(NewMessage(f"/queue/{i % 3}", bytes([i]) * 50, {"i": i, "s": "é", "l": [1, None]}))
            for i in range(12)]  # fmt: skip
    b.remove([envs[0].seq, envs[5].seq])
    b.fail([(envs[7].seq, ValueError("too big")), (envs[3].seq, "rejected by the broker")])
    b.close()
    again = LmdbBuffer(path, 100, "drop_oldest", max_bytes=10_000)
    left = again.peek(0, 100)
    assert left == [e for e in envs if e.seq not in {envs[i].seq for i in (0, 3, 5, 7)}]  # every field
    assert (len(again), again.pending_bytes) == (8, 400)
    failed = again.failed()
    assert [(f.envelope, f.reason, f.error_type) for f in failed] == [
        (envs[3], "rejected by the broker", "str"),
        (envs[7], "too big", "ValueError"),
    ]
    assert again.append(msg(99)).seq == envs[-1].seq + 1
    again.close()


def test_sequence_numbers_are_never_reused_even_when_everything_was_removed(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path)
    last = [b.append(msg(i)) for i in range(5)][-1]
    b.remove(range(1, last.seq + 1))
    b.close()
    again = LmdbBuffer(path)
    assert len(again) == 0
    assert again.append(msg(5)).seq == last.seq + 1
    again.close()


def test_a_file_left_over_the_bound_is_kept_whole(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path, 100)
    for i in range(10):
        b.append(msg(i))
    b.close()
    small = LmdbBuffer(path, 4, "raise")
    assert len(small) == 10 and len(small.peek(0, 100)) == 10
    with pytest.raises(BufferFullError, match="10 of 4 messages pending"):
        small.append(msg(10))
    small.remove([e.seq for e in small.peek(0, 7)])
    small.append(msg(10))
    assert bodies(small.peek()) == [b"7", b"8", b"9", b"10"]
    small.close()


def test_messages_read_back_from_the_file_after_the_cache_is_full(tmp_path: Path) -> None:
    # More than the envelope cache holds: the rest is decoded from the file, the same as what was given.
    b = LmdbBuffer(tmp_path / "out.db", 20_000)
    envs = b.extend([msg(i, 300) for i in range(6000)])
    assert b.peek(0, 10_000) == envs
    b.remove([e.seq for e in envs[:3000]])
    assert b.peek(0, 10_000) == envs[3000:]
    assert b.pending_bytes == 3000 * 300
    b.close()


# -- one owner ---------------------------------------------------------------------------------------
def test_another_process_cannot_open_a_path_in_use(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path)
    code = (
        "import sys\nfrom resilientmq.core.buffer import LmdbBuffer\n"
        "from resilientmq import BufferInUseError\n"
        "try:\n    LmdbBuffer(sys.argv[1])\nexcept BufferInUseError as e:\n    print('in use:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.startswith("in use:") and "lock" in out.stdout, out.stderr
    with pytest.raises(BufferInUseError):
        LmdbBuffer(path)  # nor a second buffer in this process
    b.close()
    LmdbBuffer(path).close()


# -- files created 0600 ------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_the_file_and_its_lock_are_created_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        b = LmdbBuffer(tmp_path / "out.db")
        b.append(msg(1))
        b.close()
    finally:
        os.umask(old)
    assert sorted(os.listdir(tmp_path)) == ["out.db", "out.db.lock"]
    for name in ("out.db", "out.db.lock"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    again = LmdbBuffer(tmp_path / "out.db")  # and the owner can still write it
    assert bodies(again.peek()) == [b"1"]
    again.close()


# -- refused files, left byte for byte ---------------------------------------------------------------
def _sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('alice')")
    db.commit()
    db.close()


def _foreign_lmdb(path: Path) -> None:
    env = lmdb.open(str(path), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(b"user:1", b"alice")
    env.close()


def _ours(path: Path, n: int = 50) -> None:
    b = LmdbBuffer(path)
    b.extend([msg(i, 100) for i in range(n)])
    b.close()


def _truncated(path: Path) -> None:
    _ours(path, 3000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data.rstrip(b"\0")) // 2])


def _flipped_body(path: Path) -> None:
    _ours(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"7" * 100) + 50
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _future_format(path: Path) -> None:
    _ours(path)
    env = lmdb.open(str(path), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        meta = bytearray(txn.get(b"\x00resilientmq"))
        meta[4] = 9
        txn.put(b"\x00resilientmq", bytes(meta))
    env.close()


REFUSED: dict[str, tuple[Callable[[Path], None], str]] = {
    "sqlite database": (_sqlite, "not a resilientmq buffer: it is a SQLite file"),
    "garbage": (lambda p: p.write_bytes(b"this is not lmdb at all" * 500), "not a usable resilientmq buffer"),
    "short garbage": (lambda p: p.write_bytes(b"0123456789"), "not a usable resilientmq buffer"),
    "another application's lmdb": (_foreign_lmdb, "an LMDB file but not a resilientmq buffer"),
    "truncated buffer": (_truncated, "truncated buffer file|corrupt buffer file"),
    "flipped bit in a body": (_flipped_body, "corrupt buffer file: record .*checksum mismatch"),
    "a newer format": (_future_format, "of format 9; this version reads format 1"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_corrupt_or_foreign_files_are_refused_and_left_untouched(tmp_path: Path, case: str) -> None:
    make, error = REFUSED[case]
    path = tmp_path / "file.db"
    make(path)
    before = digest(path), path.stat().st_size
    with pytest.raises(BufferCorruptError, match=error):
        LmdbBuffer(path)
    assert (digest(path), path.stat().st_size) == before
    with pytest.raises(BufferCorruptError):  # the lock was let go: the same answer, not "in use"
        LmdbBuffer(path)
    assert sorted(os.listdir(tmp_path)) == ["file.db", "file.db.lock"]


def test_random_damage_is_refused_or_changes_nothing_and_never_crashes(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    b = LmdbBuffer(source, 10_000)
    b.extend([msg(i, 40) for i in range(600)])
    b.remove(list(range(1, 200)))
    b.fail([(300, "refused")])
    b.close()
    reference = LmdbBuffer(source, 10_000)
    expected = reference.peek(0, 10_000), [(f.envelope, f.reason) for f in reference.failed()]
    reference.close()
    data = source.read_bytes()
    used = len(data.rstrip(b"\0"))
    rng = random.Random(20261122)
    refused = 0
    for _ in range(150):
        damaged = bytearray(data)
        for _flip in range(rng.choice([1, 1, 3, 20])):
            damaged[rng.randrange(used)] ^= 1 << rng.randrange(8)
        path = tmp_path / "damaged.db"
        path.write_bytes(bytes(damaged))
        try:
            c = LmdbBuffer(path, 10_000)
        except BufferCorruptError:
            refused += 1
            continue
        got = c.peek(0, 10_000), [(f.envelope, f.reason) for f in c.failed()]
        c.close()
        assert got == expected  # damage in free pages only: nothing torn, nothing changed
    assert refused > 50


@pytest.mark.parametrize("body_size", [100, 20_000])  # a value in its leaf page, and one on overflow pages
def test_a_damaged_value_size_is_refused_and_does_not_crash_the_process(
    tmp_path: Path, body_size: int
) -> None:
    # LMDB trusts a node's size: mapped, a huge one makes it read past the end of the file (SIGBUS).
    path = tmp_path / "out.db"
    b = LmdbBuffer(path)
    b.extend([msg(i, body_size) for i in range(3)])
    b.close()
    data = bytearray(path.read_bytes())
    at = data.index(b"p" + (2).to_bytes(8, "big")) - 8  # the node header before the key of seq 2
    data[at : at + 4] = b"\xff\xff\xff\x7f"  # its data size: ~2 GB
    path.write_bytes(bytes(data))
    code = (
        "import sys\nfrom resilientmq import BufferCorruptError\n"
        "from resilientmq.core.buffer import LmdbBuffer\n"
        "try:\n    LmdbBuffer(sys.argv[1])\nexcept BufferCorruptError as e:\n    print('refused:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"the process died ({out.returncode}): {out.stderr}"
    assert out.stdout.startswith("refused:") and ("does not fit" in out.stdout or "too short" in out.stdout)


# -- the map grows, and freed pages are reused -------------------------------------------------------
def test_the_map_grows_with_a_backlog_and_a_steady_stream_does_not_grow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path, 100_000)
    initial = path.stat().st_size
    envs = b.extend([msg(i, 1000) for i in range(8000)])  # ~8 MB: several times the first map
    assert path.stat().st_size > 8 * initial
    b.remove([e.seq for e in envs])
    # A steady stream after it: appends one at a time, confirmed in batches of 1000.
    size_after_backlog = path.stat().st_size
    for round_ in range(40):
        batch = [b.append(msg(round_ * 1000 + i, 1000)) for i in range(1000)]
        b.remove([e.seq for e in batch])
    assert path.stat().st_size == size_after_backlog  # 40 MB went through without growing the file
    b.close()

    fresh = tmp_path / "steady.db"
    s = LmdbBuffer(fresh, 10_000)
    first = fresh.stat().st_size
    window: list[Envelope] = []
    for i in range(30_000):
        window.append(s.append(msg(i, 500)))
        if len(window) == 200:
            s.remove([e.seq for e in window])
            window = []
    assert fresh.stat().st_size == first  # 15 MB through a 1 MB file
    s.close()


# -- a full disk --------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs under tmp_path (skipped where mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


@pytest.mark.parametrize("fsync", [False, True])
def test_a_full_disk_raises_a_clear_error_loses_nothing_and_sending_resumes(
    small_disk: Path, fsync: bool
) -> None:
    path = small_disk / "out.db"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (2 << 20))  # half of the disk is gone already
    b = LmdbBuffer(path, 1_000_000, fsync=fsync)
    accepted: list[Envelope] = []
    with pytest.raises(BufferFullError) as raised:
        for i in range(100_000):
            accepted.append(b.append(msg(i, 200)))
    message = str(raised.value)
    assert str(path) in message and "no space left" in message and "nothing accepted is lost" in message
    assert len(accepted) > 1000
    assert b.peek(0, 10**6) == accepted and len(b) == len(accepted)
    with pytest.raises(BufferFullError, match="no space left"):  # still full: still refused, cleanly
        b.append(msg(-1))

    # Confirmations still go through on a full disk (the map keeps a reserve for them) and make room.
    confirmed = accepted[:500]
    assert b.remove([e.seq for e in confirmed]) == 500
    more = [b.append(msg(10**6 + i, 200)) for i in range(300)]

    filler.unlink()  # space is back: the map grows again
    later = [b.append(msg(2 * 10**6 + i, 200)) for i in range(5000)]
    b.close()
    again = LmdbBuffer(path, 1_000_000)
    assert again.peek(0, 10**6) == accepted[500:] + more + later
    again.close()


def test_a_full_disk_at_creation_leaves_no_file_behind(small_disk: Path) -> None:
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    path = small_disk / "out.db"
    with pytest.raises((BufferFullError, OSError)) as raised:
        LmdbBuffer(path)
    assert str(path) in str(raised.value) or isinstance(raised.value, OSError)
    assert not path.exists()


# -- fsync=True: group commit -----------------------------------------------------------------------
def test_fsync_appends_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sync.db"
    b = LmdbBuffer(path, fsync=True)
    envs = [b.append(msg(i)) for i in range(20)]
    b.remove([envs[0].seq])
    b.fail([(envs[1].seq, "nope")])
    b.close()
    again = LmdbBuffer(path, fsync=True)
    assert again.peek() == envs[2:] and [f.body for f in again.failed()] == [b"1"]
    again.close()


class _Gate:
    """Holds every commit of appends (and counts them) until released: the racy point made deterministic."""

    def __init__(self, buf: LmdbBuffer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.commits: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        original = buf._try_commit

        def gated(group: Any) -> bool:
            self.commits.append(len(group.items))
            self.entered.set()
            assert self.release.wait(10)
            return original(group)

        monkeypatch.setattr(buf, "_try_commit", gated)


def test_fsync_concurrent_appenders_share_one_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = LmdbBuffer(tmp_path / "group.db", fsync=True)
    gate = _Gate(b, monkeypatch)
    results: dict[int, Envelope] = {}

    def producer(i: int) -> None:
        results[i] = b.append(msg(i))

    first = threading.Thread(target=producer, args=(0,))
    first.start()
    assert gate.entered.wait(10)  # the first append is committing (and syncing) with the lock released
    others = [threading.Thread(target=producer, args=(i,)) for i in range(1, 6)]
    for t in others:
        t.start()
    wait_until(lambda: len(b) == 6, what="five more appends waiting for the next commit")
    assert b.peek() == []  # nothing is visible before its commit
    gate.release.set()
    for t in [first, *others]:
        t.join(10)
    assert gate.commits == [1, 5]  # six appends, two commits (two rounds of syncs)
    assert b.peek() == sorted(results.values(), key=lambda e: e.seq)
    b.close()


def test_fsync_a_failed_group_commit_fails_every_append_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = LmdbBuffer(tmp_path / "group.db", fsync=True)
    kept = b.append(msg(0))
    gate = _Gate(b, monkeypatch)
    errors: list[BaseException] = []

    def producer(i: int) -> None:
        try:
            b.append(msg(i))
        except BaseException as exc:
            errors.append(exc)

    leader = threading.Thread(target=producer, args=(1,))
    leader.start()
    assert gate.entered.wait(10)
    followers = [threading.Thread(target=producer, args=(i,)) for i in range(2, 5)]
    for t in followers:
        t.start()
    wait_until(lambda: len(b) == 5, what="three appends waiting")

    def no_space(group: Any) -> bool:
        raise BufferFullError(f"no space left for the buffer file {b.path!r}")

    monkeypatch.setattr(b, "_try_commit", no_space)  # the followers' commit fails
    gate.release.set()
    for t in [leader, *followers]:
        t.join(10)
    assert len(errors) == 3 and all(isinstance(e, BufferFullError) for e in errors)
    assert len({id(e) for e in errors}) == 3  # each appender raises its own exception object
    assert len(b) == 2 and bodies(b.peek()) == [kept.body, b"1"]
    b.close()


def test_fsync_many_threads_and_a_sender_lose_nothing_and_keep_each_threads_order(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    b = LmdbBuffer(path, 100_000, fsync=True)
    per, threads = 150, 6
    delivered: list[bytes] = []
    done = threading.Event()

    def producer(t: int) -> None:
        for i in range(per):
            b.append(NewMessage("/queue/d", f"{t}-{i}".encode()))

    def sender() -> None:
        cursor = 0
        pause = threading.Event()
        while not (done.is_set() and len(b) == 0):
            batch = b.peek(cursor, 50)
            if not batch:
                pause.wait(0.001)
                continue
            delivered.extend(e.body for e in batch)
            cursor = batch[-1].seq
            b.remove([e.seq for e in batch[::2]])  # out of order, in two steps
            b.remove([e.seq for e in batch[1::2]])

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    s = threading.Thread(target=sender)
    s.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    done.set()
    s.join(60)
    assert len(delivered) == per * threads and len(set(delivered)) == per * threads
    for t in range(threads):
        mine = [d for d in delivered if d.startswith(f"{t}-".encode())]
        assert mine == [f"{t}-{i}".encode() for i in range(per)]
    b.close()
    assert len(LmdbBuffer(path)) == 0


def test_close_while_a_group_commit_runs_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "close.db"
    b = LmdbBuffer(path, fsync=True)
    gate = _Gate(b, monkeypatch)
    out: list[Envelope] = []
    t = threading.Thread(target=lambda: out.append(b.append(msg(1))))
    t.start()
    assert gate.entered.wait(10)
    closer = threading.Thread(target=b.close)
    closer.start()
    assert not wait_until(lambda: not closer.is_alive(), timeout=0.2)  # close waits for the commit
    gate.release.set()
    t.join(10)
    closer.join(10)
    assert len(out) == 1
    with pytest.raises(ClientClosedError):
        b.append(msg(2))
    again = LmdbBuffer(path)
    assert again.peek() == out
    again.close()


def test_the_identity_of_a_durable_outbox_outlives_the_process(tmp_path: Path) -> None:
    first = LmdbBuffer(tmp_path / "id.rmq")
    identity = first.identity
    first.close()
    again = LmdbBuffer(tmp_path / "id.rmq")
    assert again.identity == identity and len(identity) == 32
    again.close()
    other = LmdbBuffer(tmp_path / "other.rmq")
    assert other.identity != identity
    other.close()
    assert MemoryBuffer().identity != MemoryBuffer().identity


# -- recovery copies of messages a client library holds (an adapter's write-through) --------------------
def test_kept_copies_are_never_peeked_and_are_what_the_next_owner_finds(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path, 10)
    assert b.hold_outside(4) == 4
    seqs = [b.keep_outside("/queue/k", b"kept-%d" % i, {"k": "v"} if i else {}, 1000.0 + i) for i in range(4)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert len(b) == 0 and b.peek() == []  # in the file only: the sender never sees them
    b.forget_outside([seqs[1], seqs[3]])  # delivered: their copies go, and their room
    assert b.outside == 2
    b.close()
    again = LmdbBuffer(path, 10)
    found = again.peek()
    assert [(e.seq, e.body, e.headers, e.created_at) for e in found] == [
        (seqs[0], b"kept-0", {}, 1000.0),
        (seqs[2], b"kept-2", {"k": "v"}, 1002.0),
    ]
    assert again.append(NewMessage("/queue/k", b"after")).seq > seqs[3]  # seqs are not reused
    again.close()


def test_a_copy_forgotten_unsent_keeps_its_room_and_a_failed_copy_moves_to_the_failed_list(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.db"
    b = LmdbBuffer(path, 10)
    assert b.hold_outside(2) == 2
    unsent = b.keep_outside("/queue/k", b"unsent", {}, 1.0)
    b.forget_outside([unsent], release=False)  # the client library refused it: the room stays held
    assert b.outside == 2
    refused = b.keep_outside("/queue/k", b"refused", {}, 2.0)
    (record,) = b.fail_outside([(NewMessage("/queue/k", b"refused"), "no such partition")], [refused])
    assert record.envelope.seq == refused and b.outside == 1
    b.forget_outside([unsent, unsent])  # a copy already gone is passed over
    b.close()
    again = LmdbBuffer(path, 10)
    assert again.peek() == []
    assert [(f.body, f.reason) for f in again.failed()] == [(b"refused", "no such partition")]
    again.close()
