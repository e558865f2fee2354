"""Reading an LMDB 0.9 data file with ``pread``, never through a memory map, to check it before LMDB opens it.

LMDB trusts its pages: a damaged size or page number in a file makes it (and py-lmdb, which touches every
page of a value it returns) read past the end of the map, and the process dies of SIGBUS. So an existing
buffer file is walked here first, with every offset, size and page number checked against the file, the
branch keys checked against the keys below them (so LMDB's searches find what the walk found), and the
free list checked against the pages in use (so LMDB never hands out a live page). Only a file that passes
is opened with LMDB.

The format (``lmdb.h``/``mdb.c`` of LMDB 0.9, data version 1, 64-bit little-endian; a file written
elsewhere is refused as not LMDB): pages 0 and 1 are meta pages, the one with the higher transaction id
is current; each page starts with a 16-byte header (page number, pad, flags, lower/upper bound, or the
page count of an overflow run); a branch or leaf page holds an array of node offsets after its header; a
node is 8 bytes (data size or child page number, flags, key size) followed by its key and, in a leaf,
its data or the number of the first of the overflow pages holding it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

__all__ = ["DamagedFile", "NotLmdb", "records"]

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
_PAGE = struct.Struct("<QHHHH")  # pgno, pad, flags, lower, upper
_OVERFLOW_PAGES = struct.Struct("<I")  # overlaps lower/upper in an overflow page's header
_HEADER = _PAGE.size
_META = struct.Struct("<IIQQ")  # magic, version, address, mapsize
_DB = struct.Struct("<IHHQQQQQ")  # pad (page size in the free DB's), flags, depth, branch, leaf, overflow,
# entries, root
_META_TAIL = struct.Struct("<QQ")  # last page, txnid
_NODE = struct.Struct("<HHHH")  # lo, hi, flags, key size
_PGNO = struct.Struct("<Q")
_P_BRANCH, _P_LEAF, _P_OVERFLOW, _P_META = 0x01, 0x02, 0x04, 0x08
_F_BIGDATA, _F_SUBDATA, _F_DUPDATA = 0x01, 0x02, 0x04
_SORTING_FLAGS = 0x02 | 0x04 | 0x10 | 0x20 | 0x40  # reverse keys, dupsort, dupfixed, integer/reverse dups
_INVALID = 2**64 - 1
_MAX_DEPTH = 32
_MAX_KEY = 511


class NotLmdb(Exception):
    """The file is not an LMDB 0.9 data file."""


class DamagedFile(Exception):
    """The file is an LMDB data file whose structure is broken."""


class _File:
    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.psize = 0
        self.next_pgno = 0
        self.seen: set[int] = set()
        self.integer_keys = False

    def order(self, key: bytes) -> bytes:
        """``key`` in a form that sorts bytewise as the tree is sorted."""
        if not self.integer_keys:
            return key
        if len(key) != 8:
            raise DamagedFile("an integer key that is not 8 bytes")
        return key[::-1]  # little-endian on the machines LMDB files are written on here

    def page(self, pgno: int, count: int = 1) -> bytes:
        if not 2 <= pgno < self.next_pgno or pgno + count > self.next_pgno:
            raise DamagedFile(f"page {pgno} (+{count}) is outside the file's {self.next_pgno} pages")
        for p in range(pgno, pgno + count):
            if p in self.seen:
                raise DamagedFile(f"page {p} is used twice")
            self.seen.add(p)
        data = os.pread(self.fd, self.psize * count, pgno * self.psize)
        if len(data) != self.psize * count:
            raise DamagedFile(f"page {pgno} is past the end of the file")
        if _PAGE.unpack_from(data)[0] != pgno:
            raise DamagedFile(f"page {pgno} carries another page's number")
        return data


def records(fd: int, size: int) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of the main database, in key order, after the file's structure is checked.

    Raises :class:`NotLmdb` or :class:`DamagedFile`; reads nothing past the end of the file.
    """
    f = _File(fd, size)
    meta = _current_meta(fd, size)
    f.psize, (free_db, main_db), last_pg = meta
    f.next_pgno = last_pg + 1
    if f.next_pgno * f.psize > size:
        raise DamagedFile(f"the file is truncated: {size} bytes, its last page is {last_pg}")
    free_pages: list[int] = []
    for _key, value in _tree(f, free_db, integer_keys=True):
        if len(value) < 8 or len(value) % 8:
            raise DamagedFile("a free-list record has a broken length")
        count = _PGNO.unpack_from(value)[0]
        if count != len(value) // 8 - 1:
            raise DamagedFile("a free-list record has a broken count")
        free_pages.extend(struct.unpack_from(f"<{count}Q", value, 8))
    yield from _tree(f, main_db, integer_keys=False)
    for p in free_pages:
        if not 2 <= p < f.next_pgno or p in f.seen:
            raise DamagedFile(f"free page {p} is outside the file or in use")


def _current_meta(fd: int, size: int) -> tuple[int, tuple[tuple[int, ...], tuple[int, ...]], int]:
    head = os.pread(fd, _HEADER + _META.size + 2 * _DB.size + _META_TAIL.size, 0)
    if len(head) < _HEADER + _META.size or _META.unpack_from(head, _HEADER)[0] != MAGIC:
        raise NotLmdb("no LMDB meta page")
    metas = []
    psize = _DB.unpack_from(head, _HEADER + _META.size)[0]
    if psize < 512 or psize & (psize - 1) or psize > 65536 or 2 * psize > size:
        raise DamagedFile(f"a page size of {psize}")
    for n in (0, 1):
        page = os.pread(fd, psize, n * psize)
        if len(page) != psize:
            raise DamagedFile("the meta pages are cut short")
        pgno, _pad, flags, _lower, _upper = _PAGE.unpack_from(page)
        magic, version, _address, _mapsize = _META.unpack_from(page, _HEADER)
        if magic != MAGIC or pgno != n or not flags & _P_META:
            raise DamagedFile(f"meta page {n} is broken")
        if version != DATA_VERSION:
            raise NotLmdb(f"LMDB data format {version}, not {DATA_VERSION} (LMDB 0.9)")
        at = _HEADER + _META.size
        dbs = (_DB.unpack_from(page, at), _DB.unpack_from(page, at + _DB.size))
        last_pg, txnid = _META_TAIL.unpack_from(page, at + 2 * _DB.size)
        metas.append((txnid, (psize, dbs, last_pg)))
    # As mdb_env_pick_meta: the later transaction's meta page, the first one on a tie.
    return metas[1][1] if metas[0][0] < metas[1][0] else metas[0][1]


def _tree(f: _File, db: tuple[int, ...], *, integer_keys: bool) -> Iterator[tuple[bytes, bytes]]:
    """The records of one database: the free DB's keys are native integers (MDB_INTEGERKEY), sorted as
    numbers; the main DB's are sorted bytewise."""
    _pad, flags, depth, _branch, _leaf, _overflow, entries, root = db
    if flags & _SORTING_FLAGS:  # (the free DB's flags also carry the environment's)
        raise DamagedFile(f"a database with flags {flags:#x}")
    if root == _INVALID:
        if entries:
            raise DamagedFile("an empty tree that counts entries")
        return
    if not 1 <= depth <= _MAX_DEPTH:
        raise DamagedFile(f"a tree of depth {depth}")
    count = 0
    f.integer_keys = integer_keys
    for item in _walk(f, root, depth, b"", None):
        count += 1
        yield item
    if count != entries:
        raise DamagedFile(f"the tree holds {count} records, its header says {entries}")


def _walk(f: _File, pgno: int, depth: int, low: bytes, high: bytes | None) -> Iterator[tuple[bytes, bytes]]:
    """The records under page ``pgno``; every key must sort >= ``low`` and < ``high``."""
    page = f.page(pgno)
    _pgno, _pad, flags, lower, upper = _PAGE.unpack_from(page)
    n = (lower - _HEADER) // 2
    if lower < _HEADER or lower % 2 or upper > f.psize or lower > upper or n < 1:
        raise DamagedFile(f"page {pgno} has broken bounds")
    kind = flags & (_P_BRANCH | _P_LEAF | _P_OVERFLOW | _P_META)
    if kind not in (_P_BRANCH, _P_LEAF) or (kind == _P_LEAF) != (depth == 1):
        raise DamagedFile(f"page {pgno} has flags {flags:#x} at depth {depth}")
    nodes = []
    for off in struct.unpack_from(f"<{n}H", page, _HEADER):
        if not upper <= off <= f.psize - _NODE.size or off % 2:
            raise DamagedFile(f"page {pgno} has a node outside it")
        lo, hi, nflags, ksize = _NODE.unpack_from(page, off)
        start = off + _NODE.size
        if ksize > _MAX_KEY or start + ksize > f.psize:
            raise DamagedFile(f"page {pgno} has a key that does not fit")
        nodes.append((lo | hi << 16, nflags, page[start : start + ksize], start + ksize))
    if kind == _P_LEAF:
        previous = None
        for dsize, nflags, key, at in nodes:
            order = f.order(key)
            if (
                order < low
                or (high is not None and order >= high)
                or (previous is not None and order <= previous)
            ):
                raise DamagedFile(f"page {pgno}: keys out of order")
            previous = order
            yield key, _data(f, page, pgno, dsize, nflags, at)
        return
    # A branch: child i holds the keys from its own key (the first child's is not used by LMDB's
    # searches) up to the next child's. Checking that is what makes LMDB's searches find what this finds.
    bounds = [low, *(f.order(key) for _lo_hi, _flags, key, _at in nodes[1:])]
    for i in range(1, len(bounds)):
        if bounds[i] <= bounds[i - 1] or (high is not None and bounds[i] >= high):
            raise DamagedFile(f"page {pgno}: branch keys out of order")
    for i, (lo_hi, nflags, _key, _at) in enumerate(nodes):
        above = bounds[i + 1] if i + 1 < len(bounds) else high
        yield from _walk(f, lo_hi | nflags << 32, depth - 1, bounds[i], above)


def _data(f: _File, page: bytes, pgno: int, dsize: int, flags: int, at: int) -> bytes:
    if flags & (_F_SUBDATA | _F_DUPDATA):
        raise DamagedFile(f"page {pgno} has a sub-database or duplicate node")
    if not flags & _F_BIGDATA:
        if at + dsize > f.psize:
            raise DamagedFile(f"page {pgno} has a value that does not fit")
        return page[at : at + dsize]
    if at + 8 > f.psize:
        raise DamagedFile(f"page {pgno} has a broken overflow reference")
    first = _PGNO.unpack_from(page, at)[0]
    head = f.page(first)
    if not _PAGE.unpack_from(head)[2] & _P_OVERFLOW:
        raise DamagedFile(f"page {first} is not an overflow page")
    count = _OVERFLOW_PAGES.unpack_from(head, 12)[0]
    if count < 1 or dsize > count * f.psize - _HEADER:
        raise DamagedFile(f"overflow page {first} is too short for its value")
    f.seen.discard(first)
    run = f.page(first, count)
    return run[_HEADER : _HEADER + dsize]
