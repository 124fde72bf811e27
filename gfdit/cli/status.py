"""`gfdit status [--request ID] [--json]`: a running server's state."""

from __future__ import annotations

import argparse
import json
import sys
import time

from gfdit.client.commands import add_client_arguments

SHOWN = ("model", "executor", "address", "policy", "revision", "gpus", "free_ranks", "lost_ranks",
         "queued", "running", "outcomes", "reloads", "pool_restarts", "metrics_port", "time", "recording", "shadow")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request", default="", help="also show this request")
    parser.add_argument("--requests", action="store_true", help="list the live requests (the oldest 1,000)")
    parser.add_argument("--json", action="store_true", help="print the raw status as JSON")
    parser.add_argument("--cost-model", metavar="OUT", help="also write the server's cost model to the "
                        "directory OUT (for gfdit simulate --cost-model OUT)")
    add_client_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from gfdit.cli.token import resolve_token
    from gfdit.client import Client, GfditError

    try:
        token = resolve_token(args, "gfdit status")
        with Client(args.address, token=token, timeout=args.timeout, gone_after_s=args.timeout) as client:
            status = client.status(args.request)
            listed = client.requests() if args.requests else None
            written = client.cost_model(args.cost_model) if args.cost_model else None
    except (GfditError, TimeoutError, ValueError, OSError) as exc:  # ValueError: a bad address or token file
        print(f"gfdit status: {exc}", file=sys.stderr)
        return 1
    if written is not None:
        print(f"cost model written to {written}", file=sys.stderr)
    if args.json:
        print(json.dumps(status if listed is None else {"status": status, "requests": listed}, indent=2, default=str))
        return 0
    server = status["server"] if args.request else status
    print(answered_by(server))
    for key in SHOWN:
        value = server.get(key)
        if isinstance(value, dict) and key in SHORT:
            value = SHORT[key](value)
        print(f"{key:>14}: {value}")
    if args.request:
        request = status["request"]
        print(f"{'request':>14}: " + (json.dumps(request, default=str) if request else "unknown"))
    if listed is not None:
        print_requests(listed)
    return 0


def _shadow_line(s: dict) -> str:
    line = f"{s['policy']} {s['revision']}: differs in {s['differ']} of {s['rounds']} rounds"
    p = s.get("predicted") or {}
    if "mean_latency_s" in p:
        live = p.get("live") or {}
        line += (f"; predicted on {p['arrivals']} arrivals: SLO {p['slo_attainment']:.3f}, mean {p['mean_latency_s']:.2f} s"
                 + (f" (live: {live['slo_attainment']:.3f}, {live['mean_latency_s']:.2f} s)" if live else ""))
    elif "error" in p:
        line += f"; prediction failed: {p['error']}"
    return line


SHORT = {  # one line for the dicts of the status (the full ones: --json)
    "reloads": lambda v: f"{v.get('ok', 0)} ok, {v.get('refused', 0)} refused",
    "recording": lambda v: f"{v['path']}: {v['records']} records, {v['parts']} part(s)"
                           + (f"; {v['error']}" if v.get("error") else ""),
    "shadow": _shadow_line,
}


def answered_by(server: dict) -> str:
    """One line naming the server that answered: several users' servers can share a host."""
    started = server.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "unknown"
    uptime = server.get("uptime_s")
    up = f" (up {uptime / 60:.1f} min)" if isinstance(uptime, (int, float)) else ""
    return (f"answered by: the {server.get('model')} server of user {server.get('user', '?')}, pid {server.get('pid', '?')}, "
            f"started {when}{up}, instance {server.get('instance', '?')}, at {server.get('address')}")


def print_requests(listed: list[dict]) -> None:
    print(f"{'requests':>14}: {len(listed)} live" + (" (the oldest 1,000)" if len(listed) >= 1000 else ""))
    for r in listed:
        print(f"  {r['id']:<14} {r['state']:<9} class={r['class']:<10} step {r['steps_done']}/{r['steps']} "
              f"width {r['width']} {r['size']} ranks {r['ranks']}")
