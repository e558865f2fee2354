"""``resilientmq buffer PATH``: what a durable outbox file holds."""

from __future__ import annotations

import json
import sys

from resilientmq.core.buffer import SqliteBuffer
from resilientmq.core.errors import ResilientMQError

__all__ = ["show"]


def show(path: str, failed: bool, limit: int) -> int:
    """Print the pending (and with ``failed``, the failed) messages of the file at ``path`` as JSON lines."""
    try:
        buffer = SqliteBuffer(path, max_messages=10**9)
    except (ResilientMQError, OSError, ValueError) as exc:
        print(f"resilientmq: {exc}", file=sys.stderr)
        return 2
    try:
        pending = buffer.peek(0, limit)
        records = buffer.failed()
        print(json.dumps({"path": path, "pending": len(buffer), "failed": len(records)}))
        for e in pending:
            print(
                json.dumps({"pending": e.seq, "id": e.id, "destination": e.destination, "bytes": len(e.body)})
            )
        if failed:
            for r in records[:limit]:
                print(json.dumps({"failed": r.envelope.seq, "id": r.id, "destination": r.destination,
                                  "error": r.error_type, "reason": r.reason}))  # fmt: skip
    finally:
        buffer.close()
    return 0
