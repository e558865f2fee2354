"""The ``resilientmq`` command: a demonstration against real brokers, and a tool for durable buffers.

resilientmq demo [--messages N] [--only PART ...] [--plot FILE.png] [--events FILE.jsonl]
resilientmq buffer inspect|export|replay|purge PATH ...

Each command's module is imported only when it runs: the demo needs the test kit and the brokers' client
libraries, the buffer tool needs neither.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import buffer  # argparse only at import: the buffer engine loads when a buffer command runs
from .demo.catalog import PARTS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="resilientmq",
        description="A demonstration against real brokers, and a tool for durable buffer files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="send messages through broker outages and count them on the other side",
        description="A plain client and ours send through the same broker outages; an independent consumer "
        "counts what arrived. Exits 1 if ours lost anything.",
    )
    demo.add_argument("--messages", type=int, default=3000, help="messages per client and part (3000)")
    demo.add_argument(
        "--only", choices=list(PARTS), action="append", help="run this part only (repeat for more)"
    )
    demo.add_argument("--plot", metavar="FILE.png", help="draw the timeline into this PNG file")
    demo.add_argument("--events", metavar="FILE", help="write our clients' events to FILE as JSON lines")
    shown = demo.add_mutually_exclusive_group()
    shown.add_argument("--live", dest="live", action="store_true", default=None, help="the live display")
    shown.add_argument("--no-live", dest="live", action="store_false", help="plain progress lines")
    buffer.add_parser(sub)
    args = parser.parse_args(buffer.legacy_alias(sys.argv[1:] if argv is None else argv))
    if args.command == "buffer":
        return buffer.run(args)
    from . import demo as demo_command  # noqa: PLC0415 - it loads the test kit and the brokers

    return demo_command.run(
        args.messages, args.only or [], plot=args.plot, events=args.events, live=args.live
    )
