"""`gfdit gateway --server tcp://HOST:PORT --http-port PORT`: the OpenAI-compatible HTTP API
for a gfdit server that runs elsewhere (`gfdit serve --http-port` runs it in the server).

    gfdit gateway --server tcp://10.0.0.5:7600 --http-port 8000 --token-file ~/.gfdit-token

The token (--token-file, $GFDIT_TOKEN or --token) opens the server and is the bearer
token HTTP clients must send; --http-host beyond loopback needs --allow-remote and a token.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from gfdit.cli.token import add_token_arguments, resolve_token
from gfdit.protocol import DEFAULT_ADDRESS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=DEFAULT_ADDRESS, help=f"the gfdit server (default {DEFAULT_ADDRESS})")
    parser.add_argument("--http-port", type=int, default=8000, help="port of the HTTP API (default 8000)")
    parser.add_argument("--http-host", default="127.0.0.1", help="where the HTTP API listens (default loopback)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --http-host (needs a token)")
    add_token_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from gfdit.cli.token import TokenError
    from gfdit.server.access import AccessError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import fastapi  # noqa: F401 -- the http extra; say so plainly when it is missing
        import uvicorn  # noqa: F401

        from gfdit.http.listener import HTTPGateway

        token = resolve_token(args, "gfdit gateway")
        gateway = HTTPGateway(args.server, args.http_host, args.http_port, token=token,
                              allow_remote=args.allow_remote).start()
    except ImportError as exc:
        print(f"gfdit gateway: {exc.name} is not installed: pip install 'gfdit[http]'", file=sys.stderr)
        return 2
    except (TokenError, AccessError, ValueError) as exc:
        print(f"gfdit gateway: {exc}", file=sys.stderr)
        return 2
    print(f"gfdit gateway: OpenAI-compatible HTTP on {gateway.url}/v1 for {args.server} (Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: gateway.close())
    try:
        gateway.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.close()
    return 0
