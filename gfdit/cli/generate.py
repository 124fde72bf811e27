"""`gfdit generate "prompt" [--out img.png]`: one image through a running server, with a progress bar."""

from __future__ import annotations

import argparse
import sys

from gfdit.client.commands import add_client_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt")
    parser.add_argument("--out", default="gfdit.png", help="image file to write (default gfdit.png)")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--class", dest="request_class", default=None, help="request class the policy names")
    parser.add_argument("--deadline", type=float, default=None, help="seconds from now")
    parser.add_argument("--priority", type=int, default=None)
    add_client_arguments(parser)


def progress_line(event) -> str:
    """One line for a progress event: a bar for running steps, the state otherwise."""
    if event.state == "running" and event.steps:
        filled = int(30 * event.step / event.steps)
        bar = "#" * filled + "." * (30 - filled)
        return f"[{bar}] step {event.step}/{event.steps} at width {event.width} on ranks {list(event.ranks)}"
    if event.state == "migrated":
        return f"migrated {list(event.from_ranks)} -> {list(event.ranks)}"
    return event.state + (f" ({event.message})" if event.message else "")


def run(args: argparse.Namespace) -> int:
    from gfdit.cli.token import resolve_token
    from gfdit.client import Client, GfditError

    try:
        token = resolve_token(args, "gfdit generate")
        with Client(args.address, token=token, timeout=args.timeout) as client:
            handle = client.submit(args.prompt, height=args.height, width=args.width, steps=args.steps,
                                   frames=args.frames, seed=args.seed, request_class=args.request_class,
                                   deadline=args.deadline, priority=args.priority)
            print(f"request {handle.request_id}", file=sys.stderr)
            for event in handle.progress():
                if hasattr(event, "step"):
                    print("\r\033[K" + progress_line(event), end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            result = handle.result()
    except (GfditError, TimeoutError, ValueError) as exc:  # ValueError: a bad address or token file
        print(f"\ngfdit generate: {exc}", file=sys.stderr)
        return 1
    slo = "" if result.slo_met is None else (" (SLO met)" if result.slo_met else " (SLO missed)")
    if not result.outputs:
        print(f"done in {result.latency_s:.2f}s{slo}: no image (the server runs emulated workers)")
        return 0
    written = result.save(args.out)
    print(f"done in {result.latency_s:.2f}s{slo}: " + ", ".join(str(p) for p in written))
    return 0
