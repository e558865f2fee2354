"""The durable outbox: an LMDB file.

A message is committed to the file before ``append`` returns, so ``kill -9`` of the process loses
nothing; the next buffer opened on the same path yields what was left, in order, and the failed list.
One process at a time owns a path (an advisory lock beside it, ``PATH.lock``). The file and the lock are
created ``0600`` whatever the umask: they hold message bodies. A new file is made whole beside the path
(``PATH.new``) and renamed into place, so a crash while creating it leaves nothing half-made.

Layout: one LMDB database whose data file is the path itself (``subdir=False``), keys sorted bytewise:

- ``b"\\x00resilientmq"``: magic, format version and the sequence high-water mark;
- ``b"f"`` + 8-byte ordinal: a failed message, in the order of failure;
- ``b"p"`` + 8-byte big-endian seq: a pending message. These are the last keys, so an append is an
  LMDB append (no search, full pages).

Every value starts with a CRC-32 of its key and the rest of the value. An existing file is checked
whole before LMDB opens it (its structure by ``_lmdbfile``, which reads with ``pread``, and every
record's checksum), so a damaged or foreign file is refused with ``BufferCorruptError`` and left as it
was, rather than crashing the process or yielding torn messages.

Why these LMDB settings: ``writemap`` makes a commit write through the map (about 1 µs for one message,
against 4 µs of ``pwrite`` calls); the file is preallocated (``posix_fallocate``) before the map may use
it, so a full disk shows as ``ENOSPC`` when the map has to grow (a clear error, and nothing accepted is
lost), never as a SIGBUS on a page of the map. The map grows on its own, keeping a reserve so that
confirmations can still free space on a full disk; pages freed by removals are reused, so a steady
stream keeps the file at the size its backlog needs. ``lock=False``: our own lock makes this process the
only user, and the buffer's lock orders every transaction.

``fsync=True`` opens it with LMDB's ``sync`` and ``metasync`` (the data, then the meta page, reach the
disk before a commit returns, so a power loss loses nothing either). Concurrent appenders share those
syncs: one commits the group while the others queue the next (group commit), and the sender's
removals ride along in the same commits. Without ``fsync`` a process crash loses nothing; an OS crash
or power loss can lose the latest messages or leave a file that is then refused as corrupt.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import json
import os
import stat
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from json import decoder as _json_decoder
from json import encoder as _json_encoder
from typing import Any, TypeVar

import lmdb

from resilientmq.core.errors import (
    BufferCorruptError,
    BufferFullError,
    BufferInUseError,
    ClientClosedError,
    ResilientMQError,
)

from . import _lmdbfile
from ._base import (
    DEFAULT_BLOCK_TIMEOUT,
    DEFAULT_MAX_MESSAGES,
    BoundedBuffer,
    Envelope,
    FailedMessage,
    NewMessage,
    OverflowPolicy,
    make_envelope,
    new_message_id,
)
from ._index import PendingIndex

__all__ = ["FORMAT_VERSION", "BufferFile", "FileVerdict", "LmdbBuffer", "read_buffer_file"]

FORMAT_VERSION = 1
_MAGIC = b"RMQB"
_META_KEY = b"\x00resilientmq"
_META = struct.Struct("<4sIQ16s")  # magic, format version, next seq, the file's identity
_KEY = struct.Struct(">cQ")  # prefix, seq (pending) or ordinal (failed)
_PENDING = b"p"
_FAILED = b"f"
_P, _F = _PENDING[0], _FAILED[0]
_CRC = struct.Struct("<I")
# A pending record: crc, created_at, len(id), len(destination), len(body); then id, destination, the
# headers as JSON (what is left) and the body.
_REC = struct.Struct("<IdIII")
_REC_LENS = struct.Struct("<dIII")
# A failed record: crc, seq, failed_at, len(reason), len(error type); then both, then the pending record.
_FREC = struct.Struct("<IQdII")
_FREC_HEAD = struct.Struct("<QdII")
_SEQ = struct.Struct(">Q")

_INITIAL_MAP = 1 << 20
_MAP_ALIGN = 1 << 20
_MAX_GROWTH_STEP = 1 << 30
# Room kept free in the map for removals: a full disk must not stop confirmations from freeing space.
_MIN_RESERVE = 256 << 10
_MAX_RESERVE = 16 << 20
_SLACK_PAGES = 64  # pages freed by the last transactions, not reusable yet
# Envelopes appended by this process are kept (up to these bounds) so that peek() need not read back
# what it has just been given: the sender usually reads right behind the producers.
_CACHE_MESSAGES = 4096
_CACHE_BYTES = 8 << 20
_NODE_OVERHEAD = 16
_LINGER = 0.001  # the longest a group commit waits for the threads of the previous one to join it

_crc32 = zlib.crc32
_pack_lens, _pack_key, _pack_crc = _REC_LENS.pack, _KEY.pack, _CRC.pack  # bound once: per message

T = TypeVar("T")


def _json_default(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _header_codec() -> tuple[Callable[[dict[str, Any]], bytes], Callable[[str], Any]]:
    """A compact JSON encoder built once (``json.dumps`` builds one per call: a microsecond a message)
    and the decoder's scanner (``json.loads`` adds its own checks around it)."""
    c_make_encoder = getattr(_json_encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        chunks = c_make_encoder(
            None, _json_default, _json_encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )

        def encode(headers: dict[str, Any]) -> bytes:
            return "".join(chunks(headers, 0)).encode()

    else:  # pragma: no cover - interpreters without the C accelerator
        slow = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode

        def encode(headers: dict[str, Any]) -> bytes:
            return slow(headers).encode()

    decoder = _json_decoder.JSONDecoder()
    scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]

    def decode(text: str) -> Any:
        return scan(text, 0)[0]

    return encode, decode


_encode_headers, _decode_headers = _header_codec()


class _Group:
    """Appends (and removals) waiting for one shared commit and its syncs (fsync=True)."""

    __slots__ = ("deletes", "done", "envelopes", "error", "items", "members", "nbytes")

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        self.envelopes: list[Envelope] = []
        self.deletes: list[int] = []
        self.members = 0  # appending threads waiting for it
        self.nbytes = 0
        self.done = False
        self.error: BaseException | None = None


class LmdbBuffer(BoundedBuffer):
    """A bounded outbox in an LMDB file; see the module docstring for the guarantees.

    The file is the truth; an index of the pending seqs is kept in memory, with the envelopes this
    process appended (up to a bound), so that ``peek`` costs what the memory buffer's does and only
    messages left by an earlier process are read back from the file. A file left with more pending
    messages than ``max_messages`` (or ``max_bytes``) is kept whole: appends wait (or raise, or drop)
    until it drains below the bound.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_messages: int = DEFAULT_MAX_MESSAGES,
        overflow: OverflowPolicy | str = OverflowPolicy.BLOCK,
        block_timeout: float | None = DEFAULT_BLOCK_TIMEOUT,
        *,
        fsync: bool = False,
        max_bytes: int | None = None,
    ) -> None:
        super().__init__(max_messages, overflow, block_timeout, max_bytes=max_bytes)
        self.path = os.fspath(path)
        self._fsync = fsync
        if os.path.isdir(self.path):
            raise ValueError(f"buffer_path {self.path!r} is a directory; give a file path")
        self._next_seq = 1
        self._next_failed = 1
        self._identity_bytes = uuid.UUID(self._identity).bytes  # a new file's; an existing one keeps its own
        self._budget = 0  # record bytes that may be written before the map's room is checked again
        # seq -> its envelope while cached, else its body length (the file holds the rest)
        self._pending: PendingIndex[Envelope | int] = PendingIndex()
        self._cached = self._cached_bytes = 0
        self._uncached = 0  # pending messages only in the file
        self._failed_snapshot: list[FailedMessage] | None = None
        self._committing = False  # a group commit is running with the lock released
        self._returning = 0  # threads of the last group commit not yet on their way out
        self._group = _Group()
        self._committed = threading.Condition(self._lock)
        self._lock_fd = _acquire_lock(self.path)
        self._fd = -1
        try:
            self._env = self._open()
        except BaseException:
            self._close_files()
            raise

    @property
    def fsync(self) -> bool:
        """Whether every append also reaches the disk (survives power loss) before it returns."""
        return self._fsync

    # -- opening ------------------------------------------------------------------------------------
    def _open(self) -> lmdb.Environment:
        path = self.path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._create()
        size = os.fstat(self._fd).st_size
        if not size:
            os.close(self._fd)  # an empty file holds nothing: make it a buffer
            self._fd = -1
            return self._create()
        scan = _check_file(path, self._fd, size)
        self._count = self._uncached = len(scan.pending)
        self._bytes, self._pending = scan.nbytes, scan.pending
        self._next_seq, self._next_failed = scan.next_seq, scan.next_failed
        self._identity_bytes = scan.identity
        self._identity = uuid.UUID(bytes=scan.identity).hex
        map_size = _align(size)
        env = self._open_env(path, map_size)
        try:
            _preallocate(self._fd, 0, map_size, path)
        except BaseException:
            env.close()
            raise
        return env

    def _create(self) -> lmdb.Environment:
        """A new file, made whole beside the path and renamed into place: a crash while creating it never
        leaves a half-made buffer at the path."""
        new = self.path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(new)  # a leftover of a crash while creating; ours, since we hold the lock
        fd, _created = _create_0600(new)
        try:
            env = self._open_env(new, _INITIAL_MAP)
            try:
                _preallocate(fd, 0, _INITIAL_MAP, self.path)
                with env.begin(write=True) as txn:
                    self._put_meta(txn)
                os.rename(new, self.path)
                if self._fsync:
                    _fsync_directory(self.path)
            except BaseException:
                env.close()
                raise
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(new)
            raise
        self._fd = fd
        return env

    def _open_env(self, path: str, map_size: int) -> lmdb.Environment:
        try:
            return lmdb.open(
                path,
                map_size=map_size,
                subdir=False,
                lock=False,
                writemap=True,
                sync=self._fsync,
                metasync=self._fsync,
                meminit=False,
                max_dbs=0,
                mode=0o600,
                lib_version=0,  # the LMDB 0.9 data format, which _lmdbfile reads
            )
        except lmdb.Error as exc:
            raise _storage_error(exc, self.path, "open") from exc

    # -- inserting ----------------------------------------------------------------------------------
    def _store_insert(self, messages: Sequence[NewMessage], now: float) -> list[Envelope]:
        seq = self._next_seq
        if len(messages) == 1 and not self._fsync:
            return [self._insert_one(messages[0], seq, now)]  # send()'s case, spared the lists
        items: list[tuple[bytes, bytes]] = []
        envelopes: list[Envelope] = []
        nbytes = 0
        for m in messages:
            k, value, e = _record(m, seq, now)
            items.append((k, value))
            envelopes.append(e)
            nbytes += len(value)
            seq += 1
        self._next_seq = seq  # a batch that fails to commit leaves a gap; seqs are never reused
        if self._fsync:
            self._group_insert(items, envelopes, nbytes)
            return envelopes
        self._budget -= nbytes + _NODE_OVERHEAD * len(items)
        if self._budget <= 0:
            self._ensure_room(nbytes, len(items), [])
        self._commit_items(items)
        self._index(envelopes)
        return envelopes

    def _insert_one(self, m: NewMessage, seq: int, now: float) -> Envelope:
        k, value, e = _record(m, seq, now)
        self._next_seq = seq + 1
        self._commit_one(k, value)
        self._keep(e)
        return e

    def _store_insert_one(
        self, destination: str, body: bytes, headers: Mapping[str, Any] | None, id: str, now: float
    ) -> Envelope:
        if self._fsync:  # group commit: through the lists
            return self._store_insert([NewMessage(destination, body, headers, id)], now)[0]
        seq = self._next_seq
        kept = dict(headers) if headers else {}
        k, value = _record_bytes(seq, id, destination, body, kept, now)
        self._next_seq = seq + 1
        self._commit_one(k, value)
        e = make_envelope(seq, id, destination, body, kept, now)
        self._keep(e)
        return e

    def _commit_one(self, k: bytes, value: bytes) -> None:
        """One record appended in its own transaction (the map grows first if need be)."""
        self._budget -= len(value) + _NODE_OVERHEAD
        if self._budget <= 0:
            self._ensure_room(len(value), 1, [])
        txn = self._env.begin(write=True)
        try:
            txn.put(k, value, append=True)
            txn.commit()
        except lmdb.Error:
            txn.abort()
            self._commit_items([(k, value)])  # the slow path: grows the map, or says what went wrong
        except BaseException:
            txn.abort()
            raise

    def _index(self, envelopes: list[Envelope]) -> None:
        for e in envelopes:
            self._keep(e)

    def _keep(self, e: Envelope) -> None:
        """Record a committed envelope in the in-memory index: itself while the cache has room, else
        its body length (it is read back from the file when peeked)."""
        if self._cached < _CACHE_MESSAGES and self._cached_bytes < _CACHE_BYTES:
            self._pending.add(e.seq, e)
            self._cached += 1
            self._cached_bytes += len(e.body)
        else:
            self._pending.add(e.seq, len(e.body))
            self._uncached += 1

    def _commit_items(self, items: list[tuple[bytes, bytes]]) -> None:
        """One transaction appending ``items``; the map grows and the commit is retried when it is full."""
        txn = self._env.begin(write=True)
        try:
            if len(items) == 1:
                txn.put(items[0][0], items[0][1], append=True)
            else:
                txn.cursor().putmulti(items, append=True)
            txn.commit()
        except lmdb.MapFullError:
            txn.abort()
            self._grow_when_full()
            self._write(lambda t: self._apply(t, items, []))
        except lmdb.Error as exc:
            txn.abort()
            raise _storage_error(exc, self.path, "append to") from exc
        except BaseException:
            txn.abort()
            raise

    def _apply(
        self, txn: lmdb.Transaction[bytes], items: list[tuple[bytes, bytes]], deletes: list[int]
    ) -> None:
        """Append ``items`` and delete the pending records of ``deletes`` (ascending seqs)."""
        if items:
            txn.cursor().putmulti(items, append=True)
        if not deletes:
            return
        # Runs of consecutive records go through one cursor: py-lmdb releases the GIL on every
        # Transaction.delete, and with other threads runnable each release can cost a thread switch.
        cursor, key = txn.cursor(), _KEY.pack
        i, n = 0, len(deletes)
        while i < n:
            if not cursor.set_key(key(_PENDING, deletes[i])):  # the index mirrors the file
                raise BufferCorruptError(f"buffer file {self.path!r}: message {deletes[i]} went missing")
            cursor.delete()
            i += 1
            while i < n and cursor.key() == key(_PENDING, deletes[i]):
                cursor.delete()
                i += 1
        self._put_meta(txn)

    def _group_insert(self, items: list[tuple[bytes, bytes]], envelopes: list[Envelope], nbytes: int) -> None:
        """Group commit: join the open group; one appender commits (and syncs) it with the lock released,
        while the others add to the next group and wait."""
        group = self._group
        group.items += items
        group.envelopes += envelopes
        group.nbytes += nbytes
        self._await(group, appending=True)
        if group.error is not None:
            raise _fresh(group.error)

    def _await(self, group: _Group, *, appending: bool) -> None:
        """Wait for ``group`` to be committed, committing it when no one else is.

        Just after a commit, the threads it held are on their way back, and most append again at once:
        a thread that would start the next commit then waits for them first (a millisecond at most),
        or every other commit would carry a single message.
        """
        group.members += appending
        led = lingered = False
        try:
            while not group.done:
                if self._committing:
                    self._committed.wait()
                elif self._returning and not lingered:
                    lingered = True
                    self._committed.wait(_LINGER)
                else:
                    led = True
                    self._lead(release=True, member=appending)
        finally:
            if appending and not led:
                if group.done:
                    self._returning = max(self._returning - 1, 0)
                    if not self._returning:
                        self._committed.notify_all()
                else:  # interrupted while waiting: it will not come back
                    group.members -= 1

    def _lead(self, *, release: bool, member: bool = False) -> None:
        group, self._group = self._group, _Group()
        self._committing = True
        try:
            if group.items:
                self._budget -= group.nbytes + _NODE_OVERHEAD * len(group.items)
                if self._budget <= 0:
                    self._ensure_room(group.nbytes, len(group.items), group.deletes)
            full = True
            if release:
                # Readers may run meanwhile (LMDB readers never block its writer, and the writer never
                # reuses a page the last committed snapshot needs); every other writer waits for us.
                self._lock.release()
                try:
                    full = self._try_commit(group)
                finally:
                    self._lock.acquire()
                if full:
                    self._grow_when_full()
            if full:
                self._write(lambda txn: self._apply(txn, group.items, group.deletes))
            self._index(group.envelopes)  # in seq order, whichever appender wakes first
        except BaseException as exc:
            group.error = exc
            self._group.deletes += group.deletes  # forgotten already: the next commit deletes them
        finally:
            self._committing = False
            group.done = True
            self._returning += group.members - member
            self._committed.notify_all()

    def _try_commit(self, group: _Group) -> bool:
        """The group's changes in one transaction; True when the map was full (nothing written)."""
        txn = self._env.begin(write=True)
        try:
            self._apply(txn, group.items, group.deletes)
            txn.commit()
        except lmdb.MapFullError:
            txn.abort()
            return True
        except lmdb.Error as exc:
            txn.abort()
            raise _storage_error(exc, self.path, "write to") from exc
        except BaseException:
            txn.abort()
            raise
        return False

    def _store_settle(self) -> None:
        if not self._fsync:
            return
        while self._committing:
            self._committed.wait()
        if self._group.items or self._group.deletes:
            self._lead(release=False)  # errors go to the group's appenders, not to this caller

    def _store_flush(self) -> None:
        # fsync=True: removals ride in the next group commit, sharing its syncs with the appends.
        if self._fsync and self._group.deletes:
            self._await(self._group, appending=False)

    # -- room in the map ----------------------------------------------------------------------------
    def _ensure_room(self, nbytes: int, records: int, deletes: list[int]) -> None:
        """Grow the map before an insert could fill it, keeping a reserve for removals.

        Checking costs a stat call, so callers run it only once the record bytes written since the last
        check (``_budget``) exhaust half of the room that check found. Removals not yet written (those
        riding in a group commit) are written first when the map looks full: the room they free counts,
        and they go through even if the appends cannot.
        """
        env = self._env
        need = 2 * (nbytes + _NODE_OVERHEAD * records)
        while True:
            stat = env.stat()
            used = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"] + _SLACK_PAGES
            used *= stat["psize"]
            map_size = env.info()["map_size"]
            if used + need + _reserve(map_size) <= map_size or not deletes:
                break
            self._write(lambda txn: self._apply(txn, [], deletes))
            deletes.clear()
        if used + need + _reserve(map_size) > map_size:
            map_size = self._grow(used + need + _reserve(map_size))
        self._budget = (map_size - _reserve(map_size) - used) // 2

    def _grow_when_full(self) -> None:
        # The estimate in _ensure_room was short (many half-empty pages, say): grow by a step.
        self._budget = 0
        self._grow(self._env.info()["map_size"] + 1)

    def _grow(self, at_least: int) -> int:
        """Double the map (by at most a GiB), or where the disk has no room for that, grow it by what is
        needed; either way the disk blocks are reserved first."""
        env = self._env
        current = env.info()["map_size"]
        new = _align(max(at_least, current + min(current, _MAX_GROWTH_STEP)))
        try:
            _preallocate(self._fd, current, new - current, self.path, growing_from=current)
        except BufferFullError:
            new = _align(at_least)
            if new >= current + min(current, _MAX_GROWTH_STEP):
                raise
            _preallocate(self._fd, current, new - current, self.path, growing_from=current)
        env.set_mapsize(new)
        return new

    def _write(self, fn: Callable[[lmdb.Transaction[bytes]], T]) -> T:
        """Run ``fn`` in a write transaction and commit; grow the map and retry when it is full."""
        for _attempt in range(8):
            txn = self._env.begin(write=True)
            try:
                result = fn(txn)
                txn.commit()
                return result
            except lmdb.MapFullError:
                txn.abort()
                self._grow_when_full()
            except lmdb.Error as exc:
                txn.abort()
                raise _storage_error(exc, self.path, "write to") from exc
            except BaseException:
                txn.abort()
                raise
        raise BufferFullError(f"buffer file {self.path!r}: the map stays full however it grows")

    # -- recovery copies of messages held outside (an adapter's write-through) ------------------------
    def keep_outside(
        self, destination: str, body: bytes, headers: Mapping[str, Any], now: float, id: str | None = None
    ) -> int:
        """Commit the recovery copy of a message that an adapter hands straight to its client library (its
        room held with :meth:`hold_outside`): it is in the file before this returns, so a crash loses
        nothing and the next buffer opened on this path yields it, in order; this one never peeks it.
        Returns its seq, for :meth:`forget_outside` once it is delivered."""
        with self._lock:
            if self._closed:
                raise ClientClosedError("the buffer is closed")
            if self._fsync:
                self._store_settle()  # a group commit may be running with the lock released
                self._check_open()
            seq = self._next_seq
            k, value = _record_bytes(
                seq, new_message_id() if id is None else id, destination, body, headers, now
            )
            self._next_seq = seq + 1
            self._commit_one(k, value)
            return seq

    def forget_outside(self, seqs: Sequence[int], *, release: bool = True) -> None:
        """Delete recovery copies kept with :meth:`keep_outside` (delivered, purged, or never handed over)
        in one transaction and, with ``release``, give back the room they held. After ``close()`` they stay
        in the file (the next owner sends them again: at least once)."""
        if not seqs:
            return
        ordered = sorted(seqs)
        with self._lock:
            if self._closed:
                return
            self._store_settle()
            if self._closed:
                return
            self._write(lambda txn: self._delete_kept(txn, ordered))
            if release:
                self._outside = max(0, self._outside - len(ordered))
                self._space.notify_all()

    def _delete_kept(self, txn: lmdb.Transaction[bytes], seqs: list[int]) -> None:
        # One cursor for runs of consecutive records (see _apply); a copy already gone is passed over.
        cursor, key = txn.cursor(), _KEY.pack
        for s in seqs:
            k = key(_PENDING, s)
            if cursor.key() == k or cursor.set_key(k):
                cursor.delete()
        self._put_meta(txn)

    # -- reading ------------------------------------------------------------------------------------
    def _store_peek(self, after_seq: int, limit: int) -> list[Envelope]:
        if self._uncached:
            return self._load(self._pending.seqs_after(after_seq, limit))
        return self._pending.values_after(after_seq, limit)  # type: ignore[return-value]  # all cached

    def _store_seqs(self, through: int) -> list[int]:
        return self._pending.seqs_through(through)

    def _store_get(self, seqs: Sequence[int]) -> list[Envelope]:
        return self._load([s for s in seqs if s in self._pending])

    def _load(self, seqs: list[int]) -> list[Envelope]:
        """The envelopes of pending ``seqs``, read back from the file where they are not cached."""
        get = self._pending.get
        out: list[Envelope] = []
        txn = None
        try:
            for s in seqs:
                v = get(s)
                if isinstance(v, Envelope):
                    out.append(v)
                    continue
                k = _KEY.pack(_PENDING, s)
                if txn is None:
                    txn = self._env.begin(buffers=True)
                    cursor = txn.cursor()
                    here = cursor.set_key(k)
                else:  # usually the next record: step there rather than search
                    here = (cursor.next() and cursor.key() == k) or cursor.set_key(k)
                if not here:  # cannot happen: the index mirrors the file
                    raise BufferCorruptError(f"buffer file {self.path!r}: pending message {s} went missing")
                e = _decode(s, cursor.value())
                out.append(e)
                if self._cached < _CACHE_MESSAGES and self._cached_bytes < _CACHE_BYTES:
                    self._pending.replace(s, e)
                    self._cached += 1
                    self._cached_bytes += len(e.body)
                    self._uncached -= 1
            return out
        finally:
            if txn is not None:
                txn.abort()

    def _store_failed(self) -> list[FailedMessage]:
        if self._failed_snapshot is not None:
            return list(self._failed_snapshot)
        txn = self._env.begin(buffers=True)
        try:
            cursor = txn.cursor()
            out: list[FailedMessage] = []
            if cursor.set_range(_FAILED):
                for k, v in cursor:
                    if k[0] != _F:
                        break
                    out.append(_decode_failed(v))
            return out
        finally:
            txn.abort()

    # -- removing -----------------------------------------------------------------------------------
    def _store_delete(self, seqs: Sequence[int]) -> tuple[int, int]:
        present = sorted(s for s in seqs if s in self._pending)
        if not present:
            return 0, 0
        if self._fsync:
            self._group.deletes += present  # committed by _store_flush, with the appends waiting
        else:
            self._write(lambda txn: self._apply(txn, [], present))
        return len(present), self._unindex(present)

    def _unindex(self, seqs: list[int]) -> int:
        """Drop seqs from the index; the body bytes they held."""
        freed = 0
        for _s, v in self._pending.pop_many(seqs):
            if isinstance(v, Envelope):
                freed += len(v.body)
                self._cached -= 1
                self._cached_bytes -= len(v.body)
            else:
                freed += v
                self._uncached -= 1
        return freed

    def _store_move_to_failed(self, records: Sequence[FailedMessage]) -> None:
        def move(txn: lmdb.Transaction[bytes]) -> int:
            ordinal = self._next_failed
            for r in records:
                e = r.envelope
                value = txn.pop(_KEY.pack(_PENDING, e.seq))
                record = value if value is not None else _encode_envelope(e)
                reason, error_type = r.reason.encode(), r.error_type.encode()
                head = _FREC_HEAD.pack(e.seq, r.failed_at, len(reason), len(error_type))
                payload = b"".join((head, reason, error_type, record))
                k = _KEY.pack(_FAILED, ordinal)
                txn.put(k, _CRC.pack(_crc32(payload, _crc32(k))) + payload)
                ordinal += 1
            self._put_meta(txn)
            return ordinal

        self._next_failed = self._write(move)
        self._unindex([r.envelope.seq for r in records])

    def _store_clear_failed(self) -> int:
        def clear(txn: lmdb.Transaction[bytes]) -> int:
            cursor = txn.cursor()
            n = 0
            if cursor.set_range(_FAILED):
                while cursor.key()[:1] == _FAILED:
                    cursor.delete()
                    n += 1
            return n

        return self._write(clear)

    def _store_requeue(self, records: Sequence[FailedMessage]) -> list[Envelope]:
        seqs = {r.envelope.seq for r in records}
        envelopes = []
        for r in records:
            e = r.envelope
            envelopes.append(
                make_envelope(self._next_seq, e.id, e.destination, e.body, e.headers, e.created_at)
            )
            self._next_seq += 1

        def requeue(txn: lmdb.Transaction[bytes]) -> None:
            self._delete_failed(txn, seqs)
            txn.cursor().putmulti([(_KEY.pack(_PENDING, e.seq), _encode_envelope(e)) for e in envelopes])
            self._put_meta(txn)

        self._write(requeue)
        self._index(envelopes)
        return envelopes

    def _store_discard_failed(self, records: Sequence[FailedMessage]) -> int:
        seqs = {r.envelope.seq for r in records}
        return self._write(lambda txn: self._delete_failed(txn, seqs))

    @staticmethod
    def _delete_failed(txn: lmdb.Transaction[bytes], seqs: set[int]) -> int:
        """Delete the failed records of the messages first accepted as ``seqs``; how many went."""
        cursor = txn.cursor()
        n = 0
        if cursor.set_range(_FAILED):
            while cursor.key()[:1] == _FAILED:
                if _FREC.unpack_from(cursor.value())[1] in seqs:
                    cursor.delete()  # the cursor is then on the next record
                    n += 1
                elif not cursor.next():
                    break
        return n

    def _store_take_seqs(self, n: int) -> int:
        seq = self._next_seq  # made durable by the meta record the failed records are written with
        self._next_seq += n
        return seq

    def _put_meta(self, txn: lmdb.Transaction[bytes]) -> None:
        # The high-water mark, so that seqs are not reused after everything was removed and reopened.
        txn.put(_META_KEY, _META.pack(_MAGIC, FORMAT_VERSION, self._next_seq, self._identity_bytes))

    # -- closing ------------------------------------------------------------------------------------
    def _store_close(self) -> None:
        # Keep the failed list readable after close without holding the file open.
        try:
            self._failed_snapshot = self._store_failed()
        finally:
            self._env.close()
            self._close_files()
            self._pending = PendingIndex()
            self._cached = self._cached_bytes = self._uncached = 0

    def _close_files(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)  # closing the lock's descriptor releases the lock
        self._fd = self._lock_fd = -1


# -- records ----------------------------------------------------------------------------------------
def _record(m: NewMessage, seq: int, now: float) -> tuple[bytes, bytes, Envelope]:
    """The key and value of a pending record, and its envelope."""
    headers = dict(m.headers) if m.headers else {}
    k, value = _record_bytes(seq, m.id, m.destination, m.body, headers, now)
    return k, value, make_envelope(seq, m.id, m.destination, m.body, headers, now)


def _record_bytes(
    seq: int, id: str, destination: str, body: bytes, headers: Mapping[str, Any], now: float
) -> tuple[bytes, bytes]:
    """The key and value of a pending record."""
    if headers:
        try:
            hb = _encode_headers(headers if type(headers) is dict else dict(headers))
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"message headers must be JSON-serialisable for a durable buffer: {exc}") from exc
    else:
        hb = b""
    idb = id.encode()
    db = destination.encode()
    payload = b"".join((_pack_lens(now, len(idb), len(db), len(body)), idb, db, hb, body))
    k = _pack_key(_PENDING, seq)
    return k, _pack_crc(_crc32(payload, _crc32(k))) + payload


def _decode(seq: int, v: Any) -> Envelope:
    """An envelope from a pending record (``v`` is a memoryview into the map)."""
    _crc, created_at, id_len, dest_len, body_len = _REC.unpack_from(v)
    end = len(v)
    a = _REC.size
    b = a + id_len
    c = b + dest_len
    d = end - body_len
    return make_envelope(
        seq,
        str(v[a:b], "utf-8"),
        str(v[b:c], "utf-8"),
        bytes(v[d:end]),
        _decode_headers(str(v[c:d], "utf-8")) if d > c else {},
        created_at,
    )


def _decode_failed(v: Any) -> FailedMessage:
    _crc, seq, failed_at, reason_len, type_len = _FREC.unpack_from(v)
    a = _FREC.size
    b = a + reason_len
    c = b + type_len
    return FailedMessage(_decode(seq, v[c:]), str(v[a:b], "utf-8"), str(v[b:c], "utf-8"), failed_at)


def _encode_envelope(e: Envelope) -> bytes:
    headers = dict(e.headers)
    hb = _encode_headers(headers) if headers else b""
    idb, db = e.id.encode(), e.destination.encode()
    payload = b"".join((_REC_LENS.pack(e.created_at, len(idb), len(db), len(e.body)), idb, db, hb, e.body))
    return _CRC.pack(_crc32(payload, _crc32(_KEY.pack(_PENDING, e.seq)))) + payload


def _check_crc(key: Any, v: Any, size: int) -> None:
    if len(v) < size or _CRC.unpack_from(v)[0] != _crc32(v[4:], _crc32(key)):
        raise ValueError("checksum mismatch")


def _check_pending(key: Any, v: Any) -> int:
    """The body length of a well-formed pending record; raises ValueError for anything else."""
    _check_crc(key, v, _REC.size)
    _crc, _created, id_len, dest_len, body_len = _REC.unpack_from(v)
    if _REC.size + id_len + dest_len + body_len > len(v):
        raise ValueError("lengths exceed the record")
    return int(body_len)


# -- files ------------------------------------------------------------------------------------------
@dataclass
class _Scan:
    """What an existing file holds, found by checking every record."""

    pending: PendingIndex[Envelope | int] = field(default_factory=PendingIndex)
    nbytes: int = 0
    next_seq: int = 1
    next_failed: int = 1
    identity: bytes = b""


class _ForeignFileError(BufferCorruptError):
    """The file is not a resilientmq buffer at all (another application's, or a format this version does
    not read), as opposed to a damaged one: :func:`read_buffer_file` tells the two apart."""


def _check_file(path: str, fd: int, size: int) -> _Scan:
    """Validate an existing file by reading it (a foreign or damaged file is never written to, and is
    read with ``pread``, not mapped: see ``_lmdbfile``)."""
    if os.pread(fd, 16, 0).startswith(b"SQLite format 3\x00"):
        raise _ForeignFileError(
            f"{path!r} is not a resilientmq buffer: it is a SQLite file (an outbox of an earlier "
            "resilientmq version, or another application's database); refusing to use or overwrite it"
        )
    scan = _Scan()
    try:
        found = _lmdbfile.records(fd, size)
        first = next(found, None)
        if first is None or first[0] != _META_KEY:
            raise _ForeignFileError(
                f"{path!r} is an LMDB file but not a resilientmq buffer (no {_META_KEY!r} record); "
                "refusing to use or overwrite it"
            )
        meta = first[1]
        if len(meta) != _META.size or meta[:4] != _MAGIC:
            raise _ForeignFileError(f"{path!r} is not a resilientmq buffer (a foreign {_META_KEY!r} record)")
        _magic, version, scan.next_seq, scan.identity = _META.unpack(meta)
        if version != FORMAT_VERSION:
            raise _ForeignFileError(
                f"{path!r} is a resilientmq buffer of format {version}; this version reads format "
                f"{FORMAT_VERSION}"
            )
        for key, value in found:
            try:
                _check_record(scan, key, value)
            except ValueError as exc:
                raise BufferCorruptError(
                    f"{path!r} is a corrupt buffer file: record {key!r}: {exc}; refusing to use it"
                ) from None
    except _lmdbfile.NotLmdb as exc:
        raise _ForeignFileError(
            f"{path!r} is not a usable resilientmq buffer (not an LMDB file: {exc}); refusing to use "
            "or overwrite it"
        ) from None
    except _lmdbfile.DamagedFile as exc:
        raise BufferCorruptError(f"{path!r} is a corrupt buffer file: {exc}; refusing to use it") from None
    return scan


def _check_record(scan: _Scan, key: bytes, value: bytes) -> None:
    if len(key) != _KEY.size or key[0] not in (_P, _F):
        raise ValueError("a key that is not ours")
    number = _SEQ.unpack_from(key, 1)[0]
    if key[0] == _P:
        body_len = _check_pending(key, value)
        scan.pending.add(number, body_len)
        scan.nbytes += body_len
        scan.next_seq = max(scan.next_seq, number + 1)
    else:
        _check_crc(key, value, _FREC.size)
        _crc, seq, _at, reason_len, type_len = _FREC.unpack_from(value)
        _check_pending(_KEY.pack(_PENDING, seq), value[_FREC.size + reason_len + type_len :])
        scan.next_seq = max(scan.next_seq, seq + 1)
        scan.next_failed = number + 1


def _create_0600(path: str) -> tuple[int, bool]:
    """Open ``path`` read-write, creating it ``0600`` (whatever the umask) if it does not exist."""
    flags = os.O_RDWR | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return os.open(path, flags), False
    os.fchmod(fd, 0o600)  # the umask can only have taken bits away; it may have taken the owner's
    return fd, True


def _fsync_directory(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _acquire_lock(path: str) -> int:
    lock_path = path + ".lock"
    fd, _created = _create_0600(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BufferInUseError(
            f"buffer file {path!r} is in use by another client (lock {lock_path!r} is held)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _preallocate(fd: int, offset: int, length: int, path: str, *, growing_from: int | None = None) -> None:
    """Reserve disk blocks for a range of the map before LMDB may write there through it."""
    if length <= 0:
        return
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            what = (
                f"it must grow from {growing_from} to {offset + length} bytes to take more messages"
                if growing_from is not None
                else f"it needs {offset + length} bytes"
            )
            raise BufferFullError(
                f"no space left for the buffer file {path!r}: {what} ({exc.strerror}); nothing accepted "
                "is lost, and appends resume once there is room"
            ) from exc
        raise


def _storage_error(exc: lmdb.Error, path: str, action: str) -> ResilientMQError | OSError:
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.PanicError, lmdb.InvalidError)):
        return BufferCorruptError(f"buffer file {path!r} is corrupt ({exc})")
    code = getattr(exc, "code", 0)
    if code in (errno.ENOSPC, errno.EDQUOT):
        if action == "open":
            return BufferFullError(f"no space left on the device to create the buffer file {path!r} ({exc})")
        return BufferFullError(
            f"no space left for the buffer file {path!r} ({exc}); nothing accepted is lost, and appends "
            "resume once there is room"
        )
    return OSError(code or errno.EIO, f"cannot {action} the buffer file {path!r}: {exc}")


def _fresh(error: BaseException) -> BaseException:
    """A copy of a group's error for each appender (one instance raised in many threads would share a
    traceback); our own errors carry only a message."""
    if isinstance(error, ResilientMQError):
        copy = type(error)(str(error))
        copy.__cause__ = error.__cause__
        return copy
    return error


def _reserve(map_size: int) -> int:
    return min(max(_MIN_RESERVE, map_size // 8), _MAX_RESERVE)


def _align(size: int) -> int:
    return -(-size // _MAP_ALIGN) * _MAP_ALIGN


# -- reading a file no client holds: resilientmq buffer ---------------------------------------------
class FileVerdict(str, enum.Enum):
    """What :func:`read_buffer_file` found at a path."""

    OK = "ok"
    """A resilientmq buffer (or an empty file): its messages are in the report."""
    MISSING = "missing"
    NOT_A_FILE = "not a file"
    UNREADABLE = "unreadable"
    FOREIGN = "foreign"
    """Not a resilientmq buffer: another application's file, or a format this version does not read."""
    DAMAGED = "damaged"
    """A resilientmq buffer whose structure or checksums are broken."""
    IN_USE = "in use"
    """A running client holds the file (its lock)."""


@dataclass(frozen=True)
class BufferFile:
    """What a buffer file holds, read without changing it; ``message`` says why when it could not be."""

    path: str
    verdict: FileVerdict
    message: str = ""
    pending: list[Envelope] = field(default_factory=list)
    failed: list[FailedMessage] = field(default_factory=list)
    file_bytes: int = 0
    holder_pid: int | None = None
    """The pid of the process holding the file, when Linux's ``/proc/locks`` tells it."""


def read_buffer_file(path: str | os.PathLike[str]) -> BufferFile:
    """Everything a durable outbox file holds, read as a client would check it, but without writing a
    byte, creating the lock or mapping the file: for tools that look into a file no client has open.

    The lock is taken shared while the file is read (a few milliseconds), so that no client starts
    writing meanwhile; a file whose lock a client holds is reported ``IN_USE``, unread.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return BufferFile(path, FileVerdict.MISSING, f"no such file: {path!r}")
    except OSError as exc:
        return BufferFile(path, FileVerdict.UNREADABLE, f"cannot read {path!r}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return BufferFile(path, FileVerdict.NOT_A_FILE, f"{path!r} is not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return BufferFile(path, FileVerdict.UNREADABLE, f"cannot read {path!r}: {exc.strerror}")
    try:
        with _shared_lock(path) as holder:
            if holder is not None:
                pid = holder or None
                who = f" (pid {pid})" if pid else ""
                return BufferFile(
                    path,
                    FileVerdict.IN_USE,
                    f"{path!r} is in use by a running client{who}: its lock {path + '.lock'!r} is held",
                    holder_pid=pid,
                )
            return _read_unlocked(path, fd)
    finally:
        os.close(fd)


def _read_unlocked(path: str, fd: int) -> BufferFile:
    size = os.fstat(fd).st_size
    if not size:
        return BufferFile(path, FileVerdict.OK, "an empty file: it holds nothing")
    try:
        _check_file(path, fd, size)
        pending: list[Envelope] = []
        failed: list[FailedMessage] = []
        for key, value in _lmdbfile.records(fd, size):
            if key[:1] == _PENDING and len(key) == _KEY.size:
                pending.append(_decode(_SEQ.unpack_from(key, 1)[0], value))
            elif key[:1] == _FAILED:
                failed.append(_decode_failed(value))
    except _ForeignFileError as exc:
        return BufferFile(path, FileVerdict.FOREIGN, str(exc), file_bytes=size)
    except (BufferCorruptError, _lmdbfile.DamagedFile, _lmdbfile.NotLmdb) as exc:
        return BufferFile(path, FileVerdict.DAMAGED, str(exc), file_bytes=size)
    return BufferFile(path, FileVerdict.OK, "", pending, failed, size)


@contextlib.contextmanager
def _shared_lock(path: str) -> Any:
    """Hold ``PATH.lock`` shared while reading; yields None when free, else the holder's pid (0 when
    unknown). A missing lock file means no client: it is not created."""
    try:
        lfd = os.open(path + ".lock", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(lfd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield _lock_holder(lfd)
            return
        yield None
    finally:
        os.close(lfd)  # releases our shared lock


def _lock_holder(fd: int) -> int:
    """The pid holding an flock on ``fd``'s file, from ``/proc/locks`` (0 when it cannot be told)."""
    st = os.fstat(fd)
    try:
        with open("/proc/locks", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters are marked "->"
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if int(inode) == st.st_ino and os.makedev(int(major, 16), int(minor, 16)) == st.st_dev:
                return int(fields[4])
        except ValueError:
            continue
    return 0
