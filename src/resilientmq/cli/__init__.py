"""The ``resilientmq`` command: a demonstration against real brokers, and a look inside durable buffers.

resilientmq demo [--messages N] [--only stomp|kafka|mq]
resilientmq buffer PATH [--failed]

Each command's module is imported only when it runs: the demo needs the test kit and the brokers' client
libraries, the buffer tool needs neither.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="resilientmq", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="send messages through broker outages and count them on the other side"
    )
    demo.add_argument("--messages", type=int, default=3000)
    demo.add_argument("--only", choices=["stomp", "kafka", "mq"], action="append")
    buf = sub.add_parser("buffer", help="show what a durable buffer file holds")
    buf.add_argument("path")
    buf.add_argument("--failed", action="store_true", help="list the failed messages with their reasons")
    buf.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)
    if args.command == "buffer":
        from . import buffer  # noqa: PLC0415 - loaded only when this command runs

        return buffer.show(args.path, args.failed, args.limit)
    from . import demo as demo_command  # noqa: PLC0415 - it loads the test kit and the brokers

    return demo_command.run(args.messages, args.only or ["stomp", "kafka", "mq"])
