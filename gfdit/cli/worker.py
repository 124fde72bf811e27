"""`gfdit worker --head tcp://HOST:PORT --node-rank R`: this host's workers for a server on another host.

    GFDIT_NODE_TOKEN=... gfdit worker --head tcp://10.0.0.1:7700 --node-rank 1
    gfdit worker --head tcp://10.0.0.1:7700 --node-rank 1 --node-token-file ~/.gfdit-node-token

The head (`gfdit serve MODEL --nnodes N --nproc-per-node K --worker-address
tcp://HOST:PORT`) says what to run: the model, the world size and the
rendezvous come in the handshake, where head and agent prove the node token to each other:
the head's --node-token-file or $GFDIT_NODE_TOKEN (never on the command line); a
head without one uses its client token, which this agent then takes from
--token-file or $GFDIT_TOKEN.
See docs/deploy.md, "Several hosts".
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from gfdit.cli.token import ENV as TOKEN_ENV
from gfdit.cli.token import NODE_ENV, TokenError, add_node_token_argument, add_token_arguments, resolve_node_token, \
    resolve_token


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--head", required=True, metavar="tcp://HOST:PORT",
                        help="the head's worker address (its gfdit serve --worker-address)")
    parser.add_argument("--node-rank", type=int, required=True, metavar="R",
                        help="this host's node rank, 1..N-1 (the head is node 0)")
    parser.add_argument("--join-timeout", type=float, default=600.0, metavar="S",
                        help="give up when the head has not answered after S seconds (default 600)")
    parser.add_argument("--adapter", default="", metavar="MODULE:CALLABLE",
                        help="the model adapter this host's workers load (default: the built-in one for the model); "
                             "the head's choice is never taken (no code is named over the network)")
    add_node_token_argument(parser)
    add_token_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    from gfdit.workers.node_agent import NodeAgent

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        token = resolve_node_token(args, "gfdit worker") or resolve_token(args, "gfdit worker")
    except TokenError as exc:
        print(f"gfdit worker: {exc}", file=sys.stderr)
        return 2
    os.environ.pop(TOKEN_ENV, None)
    os.environ.pop(NODE_ENV, None)
    if not token:
        print(f"gfdit worker: the head's node token is needed: --node-token-file FILE or ${NODE_ENV} (a head "
              f"without one: its client token, --token-file FILE or ${TOKEN_ENV})", file=sys.stderr)
        return 2
    if args.node_rank < 1:
        print(f"gfdit worker: --node-rank must be 1 or more (node 0 is the head), got {args.node_rank}",
              file=sys.stderr)
        return 2
    try:
        agent = NodeAgent(args.head, args.node_rank, token, join_timeout_s=args.join_timeout,
                          adapter=args.adapter)
    except ValueError as exc:
        print(f"gfdit worker: {exc}", file=sys.stderr)
        return 2

    def stop(signum, frame):
        agent.stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return agent.run()
