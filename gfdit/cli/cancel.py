"""`gfdit cancel ID [ID ...]`: cancel requests on a running server (`gfdit status --requests` lists them)."""

from __future__ import annotations

import argparse
import sys

from gfdit.client.commands import add_client_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_ids", nargs="+", metavar="ID", help="request id(s), as `gfdit status --requests` shows")
    add_client_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """0 when every id was known (cancelled, cancelling, or already ended), 1 otherwise."""
    from gfdit.cli.token import resolve_token
    from gfdit.client import Client, GfditError, ServerError

    failed = 0
    try:
        with Client(args.address, token=resolve_token(args, "gfdit cancel"), timeout=args.timeout) as client:
            for request_id in args.request_ids:
                try:
                    print(f"{request_id}: {client.cancel(request_id)}")
                except ServerError as exc:
                    print(f"gfdit cancel: {request_id}: {exc.message}", file=sys.stderr)
                    failed += 1
    except (GfditError, TimeoutError, ValueError) as exc:  # ValueError: a bad address or token file
        print(f"gfdit cancel: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0
