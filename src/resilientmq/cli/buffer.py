"""``resilientmq buffer``: look into a durable outbox file and act on it, with no client running.

resilientmq buffer inspect PATH [--pending] [--limit N] [--json]
resilientmq buffer export  PATH [--failed | --pending] [--output FILE]
resilientmq buffer replay  PATH [--destination D] [--id ID ...] [--dry-run]
resilientmq buffer purge   PATH [--failed | --pending | --all] [--destination D] [--id ID ...]
                                [--yes] [--dry-run]
resilientmq buffer PATH [--failed] [--limit N]     (the first version's JSON lines, kept for scripts)

``inspect`` and ``export`` only read: the file is left byte for byte as it was. ``replay`` and ``purge``
open it as a client would (one process at a time). A file in use by a running client, a file that is not
a resilientmq buffer and a damaged one each get a clear message and an exit code of their own, and are
left as they were.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

__all__ = [
    "EXIT_DAMAGED",
    "EXIT_DECLINED",
    "EXIT_FOREIGN",
    "EXIT_IN_USE",
    "EXIT_NO_FILE",
    "EXIT_OK",
    "add_parser",
    "legacy_alias",
    "run",
]

EXIT_OK = 0
EXIT_DECLINED = 1
"""purge was not confirmed, or nothing matched what replay/purge were asked to act on."""
EXIT_FOREIGN = 2
"""Not a resilientmq buffer (another application's file, or a newer format)."""
EXIT_DAMAGED = 3
"""A resilientmq buffer, but damaged (truncated, checksums wrong): see the message for what to do."""
EXIT_IN_USE = 4
"""A running client holds the file."""
EXIT_NO_FILE = 5
"""No such file, not a regular file, or not readable."""

ACTIONS = ("inspect", "export", "replay", "purge")


def legacy_alias(argv: Sequence[str]) -> list[str]:
    """``buffer PATH ...`` (the first version's form) is ``buffer inspect PATH --lines ...``."""
    args = list(argv)
    if len(args) >= 2 and args[0] == "buffer" and args[1] not in ACTIONS and not args[1].startswith("-"):
        return ["buffer", "inspect", "--lines", *args[1:]]
    return args


def add_parser(sub: Any) -> None:
    """The ``buffer`` command and its actions (argparse only: nothing heavy is imported)."""
    buf = sub.add_parser(
        "buffer",
        help="inspect, export, replay or purge a durable buffer file",
        description="Look into a durable outbox file (buffer_path=) and act on it, with no client running. "
        "inspect and export only read: the file is left byte for byte as it was.",
        epilog="exit codes: 0 done, 1 declined or nothing matched, 2 not a resilientmq buffer (also: a usage "
        "error), 3 damaged, 4 in use by a running client, 5 no such (readable) file",
    )
    actions = buf.add_subparsers(dest="action", required=True, metavar="{inspect,export,replay,purge}")

    inspect = actions.add_parser("inspect", help="counts per destination, ages, failed messages and why")
    inspect.add_argument("path")
    inspect.add_argument("--pending", action="store_true", help="list the pending messages too")
    inspect.add_argument("--failed", action="store_true", help=argparse.SUPPRESS)  # the legacy form's flag
    inspect.add_argument("--limit", type=int, default=20, help="messages listed per kind (20)")
    inspect.add_argument("--json", action="store_true", help="one JSON document instead of text")
    inspect.add_argument("--lines", action="store_true", help=argparse.SUPPRESS)  # the legacy output

    export = actions.add_parser("export", help="every message as JSON lines (bodies base64 unless text)")
    export.add_argument("path")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="only the failed messages")
    which.add_argument("--pending", action="store_true", help="only the pending messages")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")

    replay = actions.add_parser("replay", help="move failed messages back into the outbox, to be sent again")
    replay.add_argument("path")
    _selection(replay)
    replay.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")

    purge = actions.add_parser("purge", help="delete messages for good (asks first)")
    purge.add_argument("path")
    what = purge.add_mutually_exclusive_group()
    what.add_argument("--failed", dest="scope", action="store_const", const="failed", help="failed (default)")
    what.add_argument("--pending", dest="scope", action="store_const", const="pending", help="pending")
    what.add_argument("--all", dest="scope", action="store_const", const="all", help="both")
    _selection(purge)
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask (for scripts)")
    purge.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    purge.set_defaults(scope="failed")


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", help="only messages to this destination")
    parser.add_argument("--id", action="append", dest="ids", metavar="ID", help="only this message (repeat)")


def run(args: argparse.Namespace, *, stdin: IO[str] | None = None) -> int:
    """Run the parsed ``buffer`` command; the exit code."""
    from resilientmq.core.buffer import read_buffer_file  # noqa: PLC0415 - the buffer engine, on use only

    report = read_buffer_file(args.path)
    code = _refusal(report)
    if code is not None:
        return code
    if args.action == "inspect":
        if args.lines:
            return _legacy_lines(report, args.failed, args.limit)
        return _inspect(report, args)
    if args.action == "export":
        return _export(report, args)
    if args.action == "replay":
        return _replay(report, args)
    return _purge(report, args, stdin if stdin is not None else sys.stdin)


# -- refusals -----------------------------------------------------------------------------------------
def _refusal(report: Any) -> int | None:
    """The exit code (after a clear message) for a file we must not read or touch; None when fine."""
    from resilientmq.core.buffer import FileVerdict  # noqa: PLC0415

    codes = {
        FileVerdict.MISSING: EXIT_NO_FILE,
        FileVerdict.NOT_A_FILE: EXIT_NO_FILE,
        FileVerdict.UNREADABLE: EXIT_NO_FILE,
        FileVerdict.FOREIGN: EXIT_FOREIGN,
        FileVerdict.DAMAGED: EXIT_DAMAGED,
        FileVerdict.IN_USE: EXIT_IN_USE,
    }
    code = codes.get(report.verdict)
    if code is None:
        return None
    print(f"resilientmq: {report.message}", file=sys.stderr)
    hints = {
        EXIT_DAMAGED: "the file was left as it was; keep a copy, then `resilientmq buffer export` may still "
        "read part of it, or move it aside so that the client starts with a new one",
        EXIT_IN_USE: "stop the client that holds it (or wait for it to close) and try again; the file was "
        "left as it was",
        EXIT_FOREIGN: "the file was left as it was; check buffer_path= in the client's configuration",
    }
    if code in hints:
        print(f"resilientmq: {hints[code]}", file=sys.stderr)
    return code


# -- inspect ------------------------------------------------------------------------------------------
def _age(created_at: float, now: float) -> str:
    seconds = max(0.0, now - created_at)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _summary(report: Any, now: float) -> dict[str, Any]:
    destinations: dict[str, dict[str, Any]] = {}

    def entry(dest: str) -> dict[str, Any]:
        return destinations.setdefault(
            dest, {"pending": 0, "pending_bytes": 0, "failed": 0, "oldest": None, "newest": None}
        )

    for e in report.pending:
        d = entry(e.destination)
        d["pending"] += 1
        d["pending_bytes"] += len(e.body)
        d["oldest"] = e.created_at if d["oldest"] is None else min(d["oldest"], e.created_at)
        d["newest"] = e.created_at if d["newest"] is None else max(d["newest"], e.created_at)
    for r in report.failed:
        entry(r.destination)["failed"] += 1
    created = [e.created_at for e in report.pending]
    return {
        "path": report.path,
        "file_bytes": report.file_bytes,
        "pending": len(report.pending),
        "pending_bytes": sum(len(e.body) for e in report.pending),
        "failed": len(report.failed),
        "oldest_age_seconds": None if not created else round(now - min(created), 3),
        "newest_age_seconds": None if not created else round(now - max(created), 3),
        "destinations": {
            dest: {
                "pending": d["pending"],
                "pending_bytes": d["pending_bytes"],
                "failed": d["failed"],
                "oldest_age_seconds": None if d["oldest"] is None else round(now - d["oldest"], 3),
                "newest_age_seconds": None if d["newest"] is None else round(now - d["newest"], 3),
            }
            for dest, d in sorted(destinations.items())
        },
        "failure_reasons": dict(Counter(r.reason for r in report.failed).most_common()),
    }


def _inspect(report: Any, args: argparse.Namespace) -> int:
    now = time.time()
    summary = _summary(report, now)
    if args.json:
        summary["failed_messages"] = [_failed_record(r) for r in report.failed[: args.limit]]
        if args.pending:
            summary["pending_messages"] = [_pending_record(e, now) for e in report.pending[: args.limit]]
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(f"{report.path}: {summary['pending']} pending ({summary['pending_bytes']} bytes), "
          f"{summary['failed']} failed; file {report.file_bytes} bytes")  # fmt: skip
    if report.pending:
        oldest, newest = summary["oldest_age_seconds"], summary["newest_age_seconds"]
        print(f"oldest pending {_age(now - oldest, now)} old, newest {_age(now - newest, now)} old")
    if summary["destinations"]:
        print(f"\n{'destination':<40}{'pending':>9}{'bytes':>11}{'failed':>8}{'oldest':>11}{'newest':>11}")
        for dest, d in summary["destinations"].items():
            ages = [
                "-" if d[key] is None else _age(now - d[key], now)
                for key in ("oldest_age_seconds", "newest_age_seconds")
            ]
            counts = f"{d['pending']:>9}{d['pending_bytes']:>11}{d['failed']:>8}"
            print(f"{dest:<40}{counts}{ages[0]:>11}{ages[1]:>11}")
    if report.failed:
        print("\nfailed messages (oldest failure first):")
        for r in report.failed[: args.limit]:
            when = _age(r.failed_at, now)
            print(f"  {r.id}  {r.destination}  {r.error_type}: {r.reason}  (failed {when} ago)")
        _more(len(report.failed), args.limit, "failed")
        print("  -> `resilientmq buffer replay PATH` sends them again once the cause is fixed; "
              "`purge` deletes them")  # fmt: skip
    if args.pending and report.pending:
        print("\npending messages (oldest first):")
        for e in report.pending[: args.limit]:
            print(f"  #{e.seq}  {e.id}  {e.destination}  {len(e.body)} bytes  {_age(e.created_at, now)} old")
        _more(len(report.pending), args.limit, "pending")
    return EXIT_OK


def _more(total: int, limit: int, what: str) -> None:
    if total > limit:
        print(f"  ... and {total - limit} more {what} (--limit N, or `export`)")


def _legacy_lines(report: Any, failed: bool, limit: int) -> int:
    """The first version's output of ``buffer PATH [--failed]``: JSON lines, unchanged."""
    print(json.dumps({"path": report.path, "pending": len(report.pending), "failed": len(report.failed)}))
    for e in report.pending[:limit]:
        print(json.dumps({"pending": e.seq, "id": e.id, "destination": e.destination, "bytes": len(e.body)}))
    if failed:
        for r in report.failed[:limit]:
            print(json.dumps({"failed": r.envelope.seq, "id": r.id, "destination": r.destination,
                              "error": r.error_type, "reason": r.reason}))  # fmt: skip
    return EXIT_OK


# -- export -------------------------------------------------------------------------------------------
def _body_fields(body: bytes) -> dict[str, Any]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


def _pending_record(e: Any, now: float | None = None) -> dict[str, Any]:
    out = {
        "state": "pending",
        "seq": e.seq,
        "id": e.id,
        "destination": e.destination,
        "headers": dict(e.headers),
        "created_at": e.created_at,
        "bytes": len(e.body),
        **_body_fields(e.body),
    }
    if now is not None:
        out["age_seconds"] = round(now - e.created_at, 3)
    return out


def _failed_record(r: Any) -> dict[str, Any]:
    return {
        **_pending_record(r.envelope),
        "state": "failed",
        "reason": r.reason,
        "error_type": r.error_type,
        "failed_at": r.failed_at,
    }


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as f:
        yield f


def _export(report: Any, args: argparse.Namespace) -> int:
    records: list[dict[str, Any]] = []
    if not args.failed:
        records += [_pending_record(e) for e in report.pending]
    if not args.pending:
        records += [_failed_record(r) for r in report.failed]
    with _output(args.output) as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    if args.output is not None:
        print(f"{len(records)} message(s) written to {args.output}", file=sys.stderr)
    return EXIT_OK


# -- replay and purge ---------------------------------------------------------------------------------
def _matcher(args: argparse.Namespace) -> Callable[[Any], bool]:
    ids = set(args.ids or ())

    def matches(m: Any) -> bool:
        if args.destination is not None and m.destination != args.destination:
            return False
        return not ids or m.id in ids

    return matches


def _open_for_change(path: str) -> Any:
    """The file opened as a client opens it (exclusively); None after a message when that fails."""
    from resilientmq.core.buffer import LmdbBuffer  # noqa: PLC0415
    from resilientmq.core.errors import BufferCorruptError, BufferInUseError  # noqa: PLC0415

    try:
        # No bound: the tool must never drop or refuse what the file already holds.
        return LmdbBuffer(path, max_messages=2**62, overflow="raise")
    except BufferInUseError as exc:
        print(f"resilientmq: {exc}", file=sys.stderr)
        return EXIT_IN_USE
    except BufferCorruptError as exc:
        print(f"resilientmq: {exc}", file=sys.stderr)
        return EXIT_DAMAGED
    except OSError as exc:
        print(f"resilientmq: cannot open {path!r} for writing: {exc}", file=sys.stderr)
        return EXIT_NO_FILE


def _replay(report: Any, args: argparse.Namespace) -> int:
    matches = _matcher(args)
    chosen = [r for r in report.failed if matches(r)]
    if not chosen:
        print(f"no failed message matches in {report.path}", file=sys.stderr)
        return EXIT_DECLINED
    if args.dry_run:
        _list("would move back into the outbox", chosen)
        return EXIT_OK
    buffer = _open_for_change(report.path)
    if isinstance(buffer, int):
        return buffer
    try:
        moved = buffer.requeue_failed(matches)
    finally:
        buffer.close()
    _list("moved back into the outbox", [r for r in chosen if any(e.id == r.id for e in moved)])
    print(f"{len(moved)} message(s) will be sent by the next client opened on {report.path}")
    return EXIT_OK


def _purge(report: Any, args: argparse.Namespace, stdin: IO[str]) -> int:
    matches = _matcher(args)
    failed = [r for r in report.failed if matches(r)] if args.scope in ("failed", "all") else []
    pending = [e for e in report.pending if matches(e)] if args.scope in ("pending", "all") else []
    if not failed and not pending:
        print(f"nothing to purge in {report.path}", file=sys.stderr)
        return EXIT_DECLINED
    what = " and ".join(
        f"{n} {kind} message(s)" for n, kind in ((len(failed), "failed"), (len(pending), "pending")) if n
    )
    if args.dry_run:
        print(f"would delete {what} from {report.path}")
        return EXIT_OK
    if not args.yes:
        if not stdin.isatty():
            print(
                f"resilientmq: purge would delete {what}; no terminal to ask on: pass --yes", file=sys.stderr
            )
            return EXIT_DECLINED
        warning = " They were never delivered." if pending else ""
        print(f"Delete {what} from {report.path} for good?{warning} "
              "(`resilientmq buffer export` keeps a copy first) [y/N] ", end="", flush=True)  # fmt: skip
        if stdin.readline().strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_DECLINED
    buffer = _open_for_change(report.path)
    if isinstance(buffer, int):
        return buffer
    try:
        gone_failed = buffer.discard_failed(matches) if failed else 0
        gone_pending = buffer.remove([e.seq for e in pending]) if pending else 0
    finally:
        buffer.close()
    print(f"deleted {gone_failed} failed and {gone_pending} pending message(s) from {report.path}")
    return EXIT_OK


def _list(title: str, records: Iterable[Any]) -> None:
    print(f"{title}:")
    for r in records:
        print(f"  {r.id}  {r.destination}  ({r.error_type}: {r.reason})")
