"""`gfdit record start FILE [--prompts]` / `gfdit record stop`: record a running server's arrivals.

FILE is on the server's machine: a workload trace in the format `gfdit simulate`
reads, rotated by size (docs/server.md, The operator's loop).
"""

from __future__ import annotations

import argparse
import json
import sys

from gfdit.client.commands import add_client_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="start recording to FILE (replaces a recording in progress)")
    start.add_argument("file", help="the trace to write, a path on the server's machine")
    start.add_argument("--prompts", action="store_true", help="record prompts and seeds too")
    stop = sub.add_parser("stop", help="stop recording")
    for p in (start, stop):
        add_client_arguments(p)


def run(args: argparse.Namespace) -> int:
    from gfdit.cli.token import resolve_token
    from gfdit.client import Client, GfditError

    try:
        token = resolve_token(args, "gfdit record")
        with Client(args.address, token=token, timeout=args.timeout) as client:
            reply = client.record(args.file if args.action == "start" else None,
                                  prompts=getattr(args, "prompts", False))
    except (GfditError, TimeoutError, ValueError) as exc:
        print(f"gfdit record: {exc}", file=sys.stderr)
        return 1
    if reply.get("stopped"):
        print(f"stopped recording: {json.dumps(reply['stopped'])}")
    if reply.get("recording"):
        print(f"recording to {reply['recording']['path']}")
    elif not reply.get("stopped"):
        print("no recording was in progress")
    return 0
