"""`gfdit generate "prompt" [--out img.png]`: one image through a running server, with a progress bar."""

from __future__ import annotations

import argparse
import sys
import uuid

from gfdit.client.commands import add_client_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt")
    parser.add_argument("--out", default="gfdit.png", help="image file to write (default gfdit.png)")
    parser.add_argument("--height", type=int, default=None,
                        help="pixels (default: the served model's: 1024, or 64 for tiny; shown when accepted)")
    parser.add_argument("--width", type=int, default=None, help="pixels (default: the served model's, as --height)")
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps (default: the served model's: 28, or 8 for tiny)")
    parser.add_argument("--frames", type=int, default=1, help="video frames (image models take 1 only)")
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
    """Ctrl-C cancels the request on the server (it would run on otherwise) and exits 130."""
    from gfdit.cli.token import resolve_token
    from gfdit.client import Client, GfditError

    try:
        with Client(args.address, token=resolve_token(args, "gfdit generate"), timeout=args.timeout) as client:
            request_id = uuid.uuid4().hex[:12]
            try:
                result = _generate(client, args, request_id)
            except KeyboardInterrupt:
                print(f"\ngfdit generate: interrupted; cancelling {request_id}: "
                      f"{_cancel_quietly(client, request_id)}", file=sys.stderr)
                return 130
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


def _generate(client, args: argparse.Namespace, request_id: str):
    handle = client.submit(args.prompt, height=args.height, width=args.width, steps=args.steps,
                           frames=args.frames, seed=args.seed, request_class=args.request_class,
                           deadline=args.deadline, priority=args.priority, request_id=request_id)
    print(f"request {handle.request_id} accepted: {describe(handle.params)}", file=sys.stderr, flush=True)
    for event in handle.progress():
        if hasattr(event, "step"):
            print("\r\033[K" + progress_line(event), end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return handle.result()


def describe(params) -> str:
    """The effective parameters the server will run (its defaults filled in)."""
    if params is None:
        return "(parameters not reported)"
    frames = f" x {params.frames} frames" if params.frames > 1 else ""
    return f"{params.width}x{params.height}{frames}, {params.steps} steps, seed {params.seed}"


def _cancel_quietly(client, request_id: str) -> str:
    from gfdit.client import GfditError

    try:
        return client.cancel(request_id)
    except (GfditError, TimeoutError) as exc:  # not accepted yet, or the server is gone
        return f"not cancelled ({exc})"
