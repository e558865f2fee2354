"""The durable outbox: a SQLite file in WAL mode.

A message is committed to the file before ``append`` returns, so ``kill -9`` of the process loses
nothing; the next buffer opened on the same path yields what was left, in order. One process at a time
owns a path (an advisory lock beside the file), so two producers never deliver the same leftovers.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from resilientmq.core.errors import BufferCorruptError, BufferInUseError

from ._base import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_MAX_MESSAGES,
    BoundedBuffer,
    Envelope,
    FailedMessage,
    NewMessage,
    OverflowPolicy,
)

__all__ = ["SqliteBuffer"]

# PRAGMA application_id marks the file as ours ("RMQB"); user_version is the schema version.
APPLICATION_ID = 0x524D5142
SCHEMA_VERSION = 1
_CHUNK = 500  # stays under SQLite's bound-parameter limit

_SCHEMA = f"""
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, destination TEXT NOT NULL,
    body BLOB NOT NULL, headers TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE failed (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, destination TEXT NOT NULL,
    body BLOB NOT NULL, headers TEXT NOT NULL, created_at REAL NOT NULL,
    reason TEXT NOT NULL, error_type TEXT NOT NULL, failed_at REAL NOT NULL
);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""
_COLUMNS = "seq, id, destination, body, headers, created_at"
# One compact encoder: json.dumps(..., separators=...) builds a new encoder per call (~10 us per message).
_encode_json = json.JSONEncoder(separators=(",", ":")).encode
_NO_HEADERS = "{}"


class SqliteBuffer(BoundedBuffer):
    """A bounded outbox in a SQLite file; see the module docstring for the guarantees.

    ``fsync=True`` also survives power loss (``synchronous=FULL``) at the cost of one fsync per append;
    the default survives process crashes, which is what WAL with ``synchronous=NORMAL`` guarantees.
    A file left with more pending messages than ``max_messages`` is kept whole: appends wait (or raise,
    or drop) until it drains below the bound.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_messages: int = DEFAULT_MAX_MESSAGES,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
        *,
        fsync: bool = False,
    ) -> None:
        super().__init__(max_messages, overflow, block_timeout)
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise ValueError(f"buffer_path {self.path!r} is a directory; give a file path")
        self._lockfile = _acquire_lock(self.path)
        try:
            self._db = _open_database(self.path, fsync)
            row = self._db.execute("SELECT count(*), coalesce(max(seq), 0) FROM outbox").fetchone()
            failed_max = self._db.execute("SELECT coalesce(max(seq), 0) FROM failed").fetchone()[0]
        except BaseException:
            self._lockfile.close()
            raise
        self._count = int(row[0])
        self._next_seq = max(int(row[1]), int(failed_max)) + 1
        self._failed_snapshot: list[FailedMessage] | None = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _store_insert(self, messages: Sequence[NewMessage], now: float) -> list[Envelope]:
        rows = []
        out = []
        seq = self._next_seq
        for m in messages:
            headers = dict(m.headers)
            try:
                encoded = _encode_json(headers) if headers else _NO_HEADERS
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"message headers must be JSON-serialisable for a durable buffer: {exc}"
                ) from exc
            rows.append((seq, m.id, m.destination, m.body, encoded, now))
            out.append(Envelope(seq, m.id, m.destination, m.body, headers, now))
            seq += 1
        insert = f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        if len(rows) == 1:
            self._db.execute(insert, rows[0])  # one statement is its own transaction (autocommit)
        else:
            with self._transaction() as db:
                db.executemany(insert, rows)
        self._next_seq = seq
        return out

    def _store_peek(self, after_seq: int, limit: int) -> list[Envelope]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [_envelope(r) for r in rows]

    def _store_delete(self, seqs: Sequence[int]) -> int:
        removed = 0
        with self._transaction() as db:
            for chunk in _chunks(seqs):
                cur = db.execute(f"DELETE FROM outbox WHERE seq IN ({_marks(chunk)})", chunk)
                removed += cur.rowcount
        return removed

    def _store_get(self, seqs: Sequence[int]) -> list[Envelope]:
        out: list[Envelope] = []
        for chunk in _chunks(seqs):
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE seq IN ({_marks(chunk)}) ORDER BY seq", chunk
            ).fetchall()
            out.extend(_envelope(r) for r in rows)
        return out

    def _store_move_to_failed(self, records: Sequence[FailedMessage]) -> None:
        rows = [
            (
                r.envelope.seq,
                r.envelope.id,
                r.envelope.destination,
                r.envelope.body,
                _encode_json(dict(r.envelope.headers)),
                r.envelope.created_at,
                r.reason,
                r.error_type,
                r.failed_at,
            )
            for r in records
        ]
        with self._transaction() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO failed ({_COLUMNS}, reason, error_type, failed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany("DELETE FROM outbox WHERE seq = ?", [(r[0],) for r in rows])

    def _store_failed(self) -> list[FailedMessage]:
        if self._failed_snapshot is not None:
            return list(self._failed_snapshot)
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, reason, error_type, failed_at FROM failed ORDER BY failed_at, seq"
        ).fetchall()
        return [FailedMessage(_envelope(r[:6]), r[6], r[7], r[8]) for r in rows]

    def _store_clear_failed(self) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM failed").rowcount

    def _store_close(self) -> None:
        # Keep the failed list readable after close without holding the file open.
        self._failed_snapshot = self._store_failed()
        try:
            self._db.close()
        finally:
            self._lockfile.close()


def _acquire_lock(path: str) -> IO[str]:
    lockfile = open(path + ".lock", "a+")  # noqa: SIM115 - held open for the buffer's lifetime
    try:
        fcntl.flock(lockfile.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lockfile.close()
        raise BufferInUseError(
            f"buffer file {path!r} is in use by another client (lock {path + '.lock'!r} is held)"
        ) from None
    return lockfile


def _open_database(path: str, fsync: bool) -> sqlite3.Connection:
    """Open (creating if new) and validate a buffer file; anything not ours is a clear error."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a commit means on disk.
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        # The advisory lock already gives this process the file: holding SQLite's lock too spares every
        # transaction its lock/unlock system calls and keeps the WAL index in memory (no -shm file).
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and app_id == 0:
            db.executescript(_SCHEMA)
        elif app_id != APPLICATION_ID:
            raise BufferCorruptError(
                f"{path!r} is not a resilientmq buffer (a SQLite file with application_id {app_id:#x} "
                f"and tables {sorted(tables)}); refusing to use or overwrite it"
            )
        else:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION or not {"outbox", "failed"} <= tables:
                raise BufferCorruptError(
                    f"{path!r} is a resilientmq buffer of schema version {version}, this version reads "
                    f"{SCHEMA_VERSION}"
                )
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BufferCorruptError(f"{path!r} is corrupt: {check}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise BufferCorruptError(f"{path!r} cannot be put in WAL mode (journal_mode is {mode!r})")
        db.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
        return db
    except sqlite3.DatabaseError as exc:
        db.close()
        raise BufferCorruptError(f"{path!r} is not a usable resilientmq buffer: {exc}") from exc
    except BaseException:
        db.close()
        raise


def _envelope(row: Sequence[Any]) -> Envelope:
    headers = {} if row[4] == _NO_HEADERS else json.loads(row[4])
    return Envelope(int(row[0]), row[1], row[2], bytes(row[3]), headers, float(row[5]))


def _chunks(seqs: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(seqs), _CHUNK):
        yield list(seqs[i : i + _CHUNK])


def _marks(chunk: Sequence[int]) -> str:
    return ",".join("?" * len(chunk))
