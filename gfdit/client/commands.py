"""Client-side bodies of the `gfdit` commands that talk to a server."""

from __future__ import annotations

import argparse
import os
import sys

from gfdit.client.client import DEFAULT_ADDRESS, Client
from gfdit.client.errors import GfditError
from gfdit.cli.token import add_token_arguments, resolve_token


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """--address, --token-file / --token ($GFDIT_TOKEN) and --timeout, shared by every client command."""
    parser.add_argument("--address", default=os.environ.get("GFDIT_ADDRESS", DEFAULT_ADDRESS),
                        help=f"server address (default $GFDIT_ADDRESS or {DEFAULT_ADDRESS})")
    add_token_arguments(parser)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply")


def reload_policy_cli(args: argparse.Namespace) -> int:
    """`gfdit policy reload FILE`: 0 when swapped in, 1 when refused (diagnostics printed)."""
    path = args.file if hasattr(args, "file") else args.path
    address = getattr(args, "address", None) or os.environ.get("GFDIT_ADDRESS", DEFAULT_ADDRESS)
    try:
        token = resolve_token(args, "gfdit policy reload")
        with Client(address, token=token, timeout=getattr(args, "timeout", 30.0)) as client:
            reply = client.reload_policy(path, if_revision=getattr(args, "if_revision", None))
    except (GfditError, TimeoutError, OSError, ValueError) as exc:  # TokenError is a ValueError
        print(f"gfdit policy reload: {exc}", file=sys.stderr)
        return 2
    if reply.ok:
        print(f"policy swapped in: revision {reply.previous_revision} -> {reply.revision} {reply.message}".rstrip())
        return 0
    print(f"policy refused ({reply.message}); revision {reply.revision} keeps running", file=sys.stderr)
    for diagnostic in reply.diagnostics:
        print(diagnostic, file=sys.stderr)
    return 1
