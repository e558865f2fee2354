"""kill -9 of a process appending to a durable buffer, at random moments, a hundred times.

A small fork server (one Python process, started once) forks a child per round; the child opens the
buffer and appends as fast as it can, writing the number of every message whose append has returned to
a pipe. The test kills it with SIGKILL after a random number of those acknowledgements (so the kill lands
anywhere: in the middle of a commit, of a map growth, of the open itself), waits until the server has
reaped it, then opens the file: every acknowledged message is there, in order, whole; at most the one
batch in flight beyond them. It then confirms (removes) what it found, as a sender would, so the next
round reopens a file with freed pages to reuse.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from resilientmq.core.buffer import LmdbBuffer, NewMessage

SERVER = textwrap.dedent(
    """
    import os, sys
    from resilientmq.core.buffer import LmdbBuffer, NewMessage

    def body(j):
        return b"%d:" % j + b"x" * (j % 700)

    out = sys.stdout.fileno()
    for line in sys.stdin:
        path, start, fsync = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                buffer = LmdbBuffer(path, 10**7, fsync=fsync == "1")
                j = int(start)
                while True:
                    n = 1 + j % 3  # batches of one to three messages, one transaction each
                    buffer.extend([NewMessage("/queue/k", body(i), {"j": i}) for i in range(j, j + n)])
                    j += n
                    os.write(out, b"%d\\n" % (j - 1))  # every message up to j - 1 was appended
            finally:
                os._exit(1)
        os.write(out, b"pid %d\\n" % pid)
        os.waitpid(pid, 0)
        os.write(out, b"dead\\n")
    """
)


def body(j: int) -> bytes:
    return b"%d:" % j + b"x" * (j % 700)


def test_kill_9_at_random_moments_loses_nothing_acknowledged_and_never_yields_a_torn_message(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crash.db"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert server.stdin is not None and server.stdout is not None
    rng = random.Random(9)
    start, last_seq = 0, 0
    started = time.monotonic()
    try:
        for round_ in range(100):
            fsync = round_ % 10 == 9  # every tenth child commits with fsync (group commit path)
            wanted = rng.choice([0, 0, 1, 2, 5]) if fsync else rng.choice([0, 1, 3, 10, 50, 200, 600])
            server.stdin.write(f"{path} {start} {int(fsync)}\n".encode())
            server.stdin.flush()
            pid, acked = None, start - 1
            while True:  # until the child is known and has acknowledged `wanted` messages
                line = server.stdout.readline()
                assert line, "the fork server died"
                if line.startswith(b"pid "):
                    pid = int(line.split()[1])
                else:
                    acked = int(line)
                if pid is not None and acked - start + 1 >= wanted:
                    break
            os.kill(pid, signal.SIGKILL)
            for line in iter(server.stdout.readline, b"dead\n"):  # acknowledged before it died
                assert line, "the fork server died"
                acked = int(line)

            buffer = LmdbBuffer(path, 10**7)
            found = buffer.peek(0, 10**7)
            numbers = [e.headers["j"] for e in found]
            assert numbers == list(range(start, start + len(numbers))), f"round {round_}: gap or disorder"
            assert len(numbers) >= acked - start + 1, f"round {round_}: acknowledged messages lost"
            assert len(numbers) - (acked - start + 1) <= 3  # at most the batch whose append had not returned
            for e in found:  # nothing torn: every field as the child wrote it
                assert e.body == body(e.headers["j"]) and e.destination == "/queue/k" and len(e.id) == 32
            seqs = [e.seq for e in found]
            assert seqs == sorted(seqs) and (not seqs or seqs[0] > last_seq)  # never reused after a crash
            last_seq = seqs[-1] if seqs else last_seq
            assert buffer.remove(seqs) == len(seqs)  # delivered: the next child reuses the freed pages
            buffer.close()
            start += len(numbers)
    finally:
        server.stdin.close()
        server.wait(30)
    assert start > 5000, "the children did not get going"
    assert time.monotonic() - started < 120


CHILD = textwrap.dedent(
    """
    import sys
    from resilientmq.core.buffer import LmdbBuffer, NewMessage
    b = LmdbBuffer(sys.argv[1], 1_000_000)
    i = 0
    while True:
        b.append(NewMessage("/queue/k", str(i).encode()))
        print(i, flush=True)  # printed only after append returned: the message is in the file
        i += 1
    """
)


def test_durable_survives_kill_9_of_an_appending_process(tmp_path: Path) -> None:
    # The same, end to end from a freshly started interpreter (no fork server).
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

    b = LmdbBuffer(path, 1_000_000)
    got = [int(e.body) for e in b.peek(0, 10**7)]
    b.close()
    # Everything acknowledged is there, in order, without gaps; at most one more (appended, not printed).
    assert got[: acknowledged + 1] == list(range(acknowledged + 1))
    assert len(got) - (acknowledged + 1) in (0, 1)


def test_a_crash_while_creating_the_file_leaves_it_absent_or_whole(tmp_path: Path) -> None:
    # The file is made beside the path and renamed into place: a leftover ".new" is cleared up.
    path = tmp_path / "out.db"
    (tmp_path / "out.db.new").write_bytes(b"half-made")
    b = LmdbBuffer(path)
    b.append(NewMessage("/queue/k", b"x"))
    b.close()
    assert sorted(os.listdir(tmp_path)) == ["out.db", "out.db.lock"]


REMOVER = textwrap.dedent(
    """
    import os, signal, sys
    from resilientmq.core.buffer import LmdbBuffer, NewMessage
    b = LmdbBuffer(sys.argv[1], fsync=sys.argv[2] == "1")
    envs = b.extend([NewMessage("/queue/k", b"%d" % i) for i in range(10)])
    b.remove([e.seq for e in envs[:5]])
    b.fail([(envs[5].seq, "refused")])
    os.kill(os.getpid(), signal.SIGKILL)  # at once: no close, nothing else written
    """
)


@pytest.mark.parametrize("fsync", [False, True])
def test_removals_and_failures_are_in_the_file_when_they_return(tmp_path: Path, fsync: bool) -> None:
    path = tmp_path / "out.db"
    done = subprocess.run(
        [sys.executable, "-c", REMOVER, str(path), str(int(fsync))],
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL
    b = LmdbBuffer(path)
    assert [int(e.body) for e in b.peek()] == [6, 7, 8, 9]
    assert [(f.body, f.reason) for f in b.failed()] == [(b"5", "refused")]
    b.close()


KEEPER = textwrap.dedent(
    """
    import sys, time
    from resilientmq.core.buffer import LmdbBuffer
    b = LmdbBuffer(sys.argv[1], 10_000_000)
    b.hold_outside(10_000_000)
    i = 0
    while True:
        seq = b.keep_outside("/queue/k", str(i).encode(), {}, time.time())
        if i % 2:
            b.forget_outside([seq])  # every other one delivered: its copy goes
        print(i, flush=True)  # printed only after the copy was committed (and, for odd ones, deleted)
        i += 1
    """
)


def test_recovery_copies_survive_kill_9_of_a_process_keeping_them(tmp_path: Path) -> None:
    """The write-through's promise: a copy kept before produce() returned is in the file after kill -9."""
    path = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", KEEPER, str(path)],
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
    for line in proc.stdout.read().split():
        acknowledged = int(line)
    assert acknowledged >= 2000, "the child did not get going"

    b = LmdbBuffer(path, 10_000_000)
    got = [int(e.body) for e in b.peek(0, 10**7)]
    b.close()
    kept = list(range(0, acknowledged + 1, 2))  # the even ones were never forgotten
    assert got[: len(kept)] == kept
    assert len(got) - len(kept) in (0, 1)  # at most the copy committed but not yet printed
