"""`gfdit policy shadow FILE` / `--clear` and `gfdit policy promote [--if-revision R]`.

A candidate policy runs beside a server's live one, its decisions compared and
never applied (`gfdit status` shows how often they differ and its predicted
metrics); `promote` swaps it in (docs/server.md, The operator's loop).
"""

from __future__ import annotations

import argparse
import json
import sys

from gfdit.client.commands import add_client_arguments


def add_shadow_arguments(sub) -> None:
    shadow = sub.add_parser("shadow", help="run a candidate policy beside a server's live one (never applied)")
    shadow.add_argument("file", nargs="?", metavar="FILE", help="a .gfp file or a shipped policy name")
    shadow.add_argument("--clear", action="store_true", help="stop shadowing")
    add_client_arguments(shadow)
    promote = sub.add_parser("promote", help="swap the shadowed candidate in")
    promote.add_argument("--if-revision", default=None, help="refused unless this revision is running")
    add_client_arguments(promote)


def run_shadow(args: argparse.Namespace) -> int:
    if (args.file is None) != args.clear:
        print("gfdit policy shadow: give FILE or --clear", file=sys.stderr)
        return 2
    return _call(args, "gfdit policy shadow", lambda client: client.shadow_policy(args.file))


def run_promote(args: argparse.Namespace) -> int:
    return _call(args, "gfdit policy promote", lambda client: client.promote(args.if_revision))


def _call(args: argparse.Namespace, name: str, call) -> int:
    from gfdit.cli.token import resolve_token
    from gfdit.client import Client, GfditError

    try:
        token = resolve_token(args, name)
        with Client(args.address, token=token, timeout=args.timeout) as client:
            reply = call(client)
    except (GfditError, TimeoutError, OSError, ValueError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    if isinstance(reply, dict):
        print(f"shadow cleared: {json.dumps(reply.get('cleared'))}")
        return 0
    if reply.ok:
        print(f"{reply.message}; live revision {reply.revision}" if not reply.previous_revision else
              f"policy swapped in: revision {reply.previous_revision} -> {reply.revision} {reply.message}")
        return 0
    print(f"{name}: refused ({reply.message}); revision {reply.revision} keeps running", file=sys.stderr)
    for diagnostic in reply.diagnostics:
        print(diagnostic, file=sys.stderr)
    return 1
