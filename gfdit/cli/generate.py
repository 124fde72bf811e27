"""`gfdit generate "prompt" [--out img.png | clip.mp4]`: one image (or video) through a running server.

Progress goes to stderr: a tqdm bar on a terminal, plain lines (no control codes) otherwise.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from gfdit.client.commands import add_client_arguments
from gfdit.client.media import DEFAULT_FPS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt")
    parser.add_argument("--out", default="gfdit.png",
                        help="file to write (default gfdit.png); a video model's frames: x.mp4 (MP4 when PyAV "
                             "is installed, else the PNG frames in x.zip), x.png (x_000.png, ...) or a folder")
    parser.add_argument("--height", type=int, default=None,
                        help="pixels (default: the served model's: 1024, or 64 for tiny; shown when accepted)")
    parser.add_argument("--width", type=int, default=None, help="pixels (default: the served model's, as --height)")
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps (default: the served model's: 28, or 8 for tiny)")
    parser.add_argument("--frames", type=int, default=1, help="video frames (image models take 1 only)")
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS, help=f"frames per second of a video (default {DEFAULT_FPS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--negative-prompt", default="", help="what the image should not show (CFG models)")
    parser.add_argument("--guidance-scale", type=float, default=None,
                        help="classifier-free guidance scale (default: the model's)")
    parser.add_argument("--class", dest="request_class", default=None, help="request class the policy names")
    parser.add_argument("--deadline", type=float, default=None, help="seconds from now")
    parser.add_argument("--priority", type=int, default=None)
    parser.add_argument("--ranks", type=rank_list, default=None,
                        help="pin the request to these ranks, e.g. 0,1 (with its class's and stages' pools); "
                             "a pin the cluster or policy cannot satisfy is rejected with the reason")
    add_client_arguments(parser)


def rank_list(text: str) -> list[int]:
    """`--ranks 0,1,4`: rank numbers, comma-separated."""
    try:
        ranks = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rank numbers separated by commas (0,1), got {text!r}") from None
    if any(r < 0 for r in ranks):
        raise argparse.ArgumentTypeError(f"rank numbers are >= 0, got {text!r}")
    return ranks


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
    written = result.save(args.out, fps=args.fps)
    print(f"done in {result.latency_s:.2f}s{slo}: " + ", ".join(str(p) for p in written))
    if written[0].suffix == ".zip" and args.out.lower().endswith(".mp4"):
        print(f"gfdit generate: note: no MP4 encoder is installed (pip install av); the {len(result.outputs)} "
              f"frames are PNG files in {written[0]}", file=sys.stderr)
    return 0


def _generate(client, args: argparse.Namespace, request_id: str):
    handle = client.submit(args.prompt, height=args.height, width=args.width, steps=args.steps,
                           frames=args.frames, seed=args.seed, request_class=args.request_class,
                           deadline=args.deadline, priority=args.priority, request_id=request_id,
                           negative_prompt=args.negative_prompt, guidance_scale=args.guidance_scale,
                           ranks=args.ranks)
    print(f"request {handle.request_id} accepted: {describe(handle.params)}", file=sys.stderr, flush=True)
    show = Progress(sys.stderr)
    try:
        for event in handle.progress():
            show(event)
    finally:
        show.close()
    return handle.result()


class Progress:
    """A tqdm bar over the steps on a terminal; elsewhere one plain line per event."""

    def __init__(self, stream):
        self.stream, self.bar = stream, None
        self.tty = stream.isatty()

    def __call__(self, event) -> None:
        if not hasattr(event, "step"):
            return
        if not self.tty:
            print(progress_line(event), file=self.stream, flush=True)
            return
        if self.bar is None and event.state == "running" and event.steps:
            from tqdm import tqdm

            self.bar = tqdm(total=event.steps, file=self.stream, unit="step", leave=True)
        if self.bar is None:
            print(progress_line(event), file=self.stream, flush=True)
            return
        if event.state == "running":
            self.bar.update(event.step - self.bar.n)
        self.bar.set_postfix_str(progress_line(event).split("] ", 1)[-1], refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe(params) -> str:
    """The effective parameters the server will run (its defaults filled in)."""
    if params is None:
        return "(parameters not reported)"
    frames = f" x {params.frames} frames" if params.frames > 1 else ""
    guidance = f", guidance {params.guidance_scale:g}" if params.guidance_scale is not None else ""
    negative = f", negative prompt {params.negative_prompt!r}" if params.negative_prompt else ""
    return f"{params.width}x{params.height}{frames}, {params.steps} steps, seed {params.seed}{guidance}{negative}"


def _cancel_quietly(client, request_id: str) -> str:
    from gfdit.client import GfditError

    try:
        return client.cancel(request_id)
    except (GfditError, TimeoutError) as exc:  # not accepted yet, or the server is gone
        return f"not cancelled ({exc})"
