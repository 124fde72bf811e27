"""`gfdit serve MODEL --num-gpus N --policy FILE`: run a server until Ctrl-C.

    gfdit serve tiny --num-gpus 4 --policy policies/edf_best_fit.gfp
    gfdit serve tiny --num-gpus 16 --policy edf_best_fit --emulate --cost-model DIR --time-scale 0.1

The policy file is watched: save an edit and it is compiled and swapped in at
the next round, or refused with its diagnostics while the old one keeps running.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from gfdit.cli.params import add_param_option, parse_params
from gfdit.cli.token import ENV as TOKEN_ENV
from gfdit.cli.token import TokenError, add_token_arguments, resolve_token
from gfdit.server.config import DEFAULT_ADDRESS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help='"tiny", a local diffusers directory, or a hub id')
    parser.add_argument("--num-gpus", type=int, default=4, help="worker processes (ranks)")
    parser.add_argument("--policy", default="edf_best_fit", help="a .gfp file (watched) or a shipped policy name")
    add_param_option(parser)
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help=f"where clients connect (default {DEFAULT_ADDRESS})")
    parser.add_argument("--emulate", action="store_true", help="emulated workers: sleep for the cost model's time")
    parser.add_argument("--cost-model", default=None,
                        help="cost-model directory (default: measure the model at start-up)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="wall seconds per engine second (emulated)")
    parser.add_argument("--backend", default="p2p", help="collectives backend of the workers (p2p, shm, newgroup)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --address (needs --token)")
    add_token_arguments(parser)  # --token-file FILE, $GFDIT_TOKEN, or --token (warned: `ps` shows it)
    parser.add_argument("--heartbeat-timeout", type=float, default=30.0, metavar="S",
                        help="declare a silent worker dead after S seconds (default 30); the whole world "
                             "then restarts (docs/workers.md)")
    parser.add_argument("--decision-log", default=None, help="write the decision log (JSONL) here")
    parser.add_argument("--no-watch", action="store_true", help="do not watch the policy file")
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    from gfdit.engine.costmodel import CostModelError
    from gfdit.engine.policy_check import PolicyError
    from gfdit.server import Server, ServerConfig
    from gfdit.server.access import AccessError
    from gfdit.server.config import ConfigError
    from gfdit.server.loop import STOP_GRACE_S

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        token = resolve_token(args, "gfdit serve")
    except TokenError as exc:
        print(f"gfdit serve: {exc}", file=sys.stderr)
        return 2
    os.environ.pop(TOKEN_ENV, None)  # the workers do not need it
    config = ServerConfig(
        model=args.model, num_gpus=args.num_gpus, policy=args.policy, policy_params=parse_params(args.param),
        address=args.address, executor="emulated" if args.emulate else "real", cost_model=args.cost_model,
        time_scale=args.time_scale, backend=args.backend, device=args.device, metrics_port=args.metrics_port,
        allow_remote=args.allow_remote, token=token, decision_log=args.decision_log,
        watch_policy=not args.no_watch, heartbeat_timeout_s=args.heartbeat_timeout,
    )
    try:
        server = Server(config).start()
    except PolicyError as exc:
        if exc.diagnostics:  # the .gfp does not compile: every problem, located, with its caret
            print(f"gfdit serve: policy {args.policy} does not compile ({len(exc.errors)} error(s)):\n{exc}",
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
    print(f"gfdit serving {args.model} on {server.address}{metrics} (Ctrl-C stops)", flush=True)

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
