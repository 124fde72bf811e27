"""`gfdit serve MODEL --num-gpus N --policy FILE`: run a server until Ctrl-C.

    gfdit serve tiny --num-gpus 4 --policy slo_grow
    gfdit serve tiny --num-gpus 16 --policy edf_best_fit --emulate --cost-model qwen-h20 --time-scale 0.1
    gfdit serve --config server.toml --num-gpus 8     # flags override the file (docs/deploy.md)

The policy file is watched: save an edit and it is compiled and swapped in at
the next round, or refused with its diagnostics while the old one keeps running.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from gfdit.cli.params import add_param_option
from gfdit.cli.serve_config import add_config_arguments, overrides_from
from gfdit.cli.token import ENV as TOKEN_ENV
from gfdit.cli.token import (NODE_ENV, TokenError, add_node_token_argument, add_token_arguments, read_token_file,
                             resolve_node_token, resolve_token)
from gfdit.server.config import ConfigError, ServerConfig
from gfdit.server.config_file import build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="a TOML file of settings (docs/deploy.md, Configuration); flags override it")
    add_config_arguments(parser)  # one flag per ServerConfig field, help from its description
    add_param_option(parser)
    add_token_arguments(parser)  # --token-file FILE, $GFDIT_TOKEN, or --token (warned: `ps` shows it)
    add_node_token_argument(parser)  # --node-token-file FILE or $GFDIT_NODE_TOKEN (several hosts)
    parser.add_argument("-v", "--verbose", action="store_true")


def build(args: argparse.Namespace) -> ServerConfig:
    """The config file (if any), the flags on top, the token resolved; raises ConfigError or TokenError."""
    config = build_config(args.config, overrides_from(args))
    if args.token_file is None and args.token is None and config.token_file is not None:
        config.token = read_token_file(config.token_file, "gfdit serve")
    else:
        config.token = resolve_token(args, "gfdit serve")
    config.node_token = resolve_node_token(args, "gfdit serve", config.node_token_file)
    if config.nnodes > 1 and not config.node_token:
        print(f"gfdit serve: warning: no node token (--node-token-file FILE or ${NODE_ENV}): the node agents "
              f"prove the client token, so every host running `gfdit worker` holds a token that also submits "
              f"requests", file=sys.stderr)
    return config


def run(args: argparse.Namespace) -> int:
    from gfdit.engine.costmodel import CostModelError
    from gfdit.engine.policy_check import PolicyError
    from gfdit.server import Server
    from gfdit.server.access import AccessError
    from gfdit.server.loop import STOP_GRACE_S

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = build(args)
    except (ConfigError, TokenError) as exc:
        print(f"gfdit serve: {exc}", file=sys.stderr)
        return 2
    os.environ.pop(TOKEN_ENV, None)  # the workers do not need it
    os.environ.pop(NODE_ENV, None)
    try:
        server = Server(config).start()
    except PolicyError as exc:
        if exc.diagnostics:  # the .gfp does not compile: every problem, located, with its caret
            print(f"gfdit serve: policy {config.policy} does not compile ({len(exc.errors)} error(s)):\n{exc}",
                  file=sys.stderr)
        else:
            print(f"gfdit serve: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, AccessError, CostModelError, OSError) as exc:
        print(f"gfdit serve: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 -- top level of the command: say why, exit non-zero
        print(f"gfdit serve: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    metrics = f", metrics on http://{config.metrics_host}:{server.metrics_port}/metrics" if server.metrics_port else ""
    http = f", OpenAI-compatible HTTP on {server.http_url}/v1" if server.http_url else ""
    print(f"gfdit serving {config.model} on {server.address}{metrics}{http} (Ctrl-C stops)", flush=True)

    def stop(signum, frame):
        if server.loop.stop_requested.is_set():  # the second Ctrl-C: no more grace
            print("gfdit serve: stopping now: running tasks are cancelled and workers killed",
                  file=sys.stderr, flush=True)
            server.stop_now()
            return
        print(f"gfdit serve: stopping: queued requests are cancelled; running tasks may take up to "
              f"{STOP_GRACE_S:.0f} s to end (Ctrl-C again stops at once)", file=sys.stderr, flush=True)
        server.loop.stop_requested.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    return 0
