"""`gfdit profile MODEL --widths 1,2,4 --shapes 256x256,512x512 --steps N --out DIR`.

Starts max(widths) real workers on this machine, times every stage of each
shape at each width (see `gfdit.workers.profile`), and writes a cost-model
directory: one layout JSON per width (the GF-DiT format, `gfdit.costmodel_file`)
and `migration.json` (the state-transfer cost measured between workers 0 and 1;
with one worker it says why there is none), loadable by
`gfdit.engine.costmodel.CostModel.load`.
"""

from __future__ import annotations

import argparse
import sys
import time

from gfdit.costmodel_file import write_cost_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help='"tiny", a local diffusers directory, or a hub id')
    parser.add_argument("--widths", default="1,2", help="comma-separated group widths (default 1,2)")
    parser.add_argument("--shapes", default="64x64,96x96,128x128",
                        help="comma-separated HxW or HxWxF shapes (default 64x64,96x96,128x128)")
    parser.add_argument("--steps", type=int, default=4, help="denoise steps per run (>= 2; the first warms up)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per shape and width")
    parser.add_argument("--backend", default="p2p", help="collectives backend: p2p, shm, newgroup")
    parser.add_argument("--device", default="cpu", help='"cpu" or "cuda" (one GPU per worker)')
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--adapter", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", required=True, help="directory to write the cost model into")


def parse_widths(text: str) -> list[int]:
    try:
        widths = sorted({int(w) for w in text.split(",") if w.strip()})
    except ValueError:
        raise ValueError(f"--widths must be comma-separated integers, got {text!r}") from None
    if not widths or widths[0] < 1:
        raise ValueError(f"--widths must be positive integers, got {text!r}")
    return widths


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        parts = item.lower().split("x")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3) or min(numbers) < 1:
            raise ValueError(f"bad shape {item!r}: expected HxW or HxWxF with positive integers")
        shapes.append((numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 1))
    if not shapes:
        raise ValueError("--shapes names no shape")
    return shapes


def run(args: argparse.Namespace) -> int:
    from gfdit.workers import profile
    from gfdit.workers.pool import PoolError, WorkerPool

    try:
        widths, shapes = parse_widths(args.widths), parse_shapes(args.shapes)
        if args.steps < 2 or args.repeats < 1:
            raise ValueError("--steps must be >= 2 and --repeats >= 1")
    except ValueError as exc:
        print(f"gfdit profile: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        with WorkerPool(max(widths), args.model, backend=args.backend, device=args.device, dtype=args.dtype,
                        adapter=args.adapter) as pool:
            found = profile.profile_model(pool, widths, shapes, args.steps, args.repeats)
    except PoolError as exc:  # a model that does not load, a task that fails: say which, no traceback
        print(f"gfdit profile: {exc}", file=sys.stderr)
        return 1
    options = {"tool": "gfdit profile", "device": args.device, "dtype": args.dtype, "backend": args.backend,
               "steps": args.steps, "repeats": args.repeats, "shapes": [list(s) for s in shapes],
               "latent_seq_len": "gfdit.shapes.latent_tokens(H, W, F)"}
    layouts = profile.layouts(found, args.model, options)
    migration = profile.migration_fit(found.moves)
    out = write_cost_model(args.out, layouts, migration)
    for width, layout in layouts.items():
        step = layout["stages"]["dit_step_chunk"]
        print(f"width {width}: dit_step_chunk r2={step['r2']:.3f}, "
              f"median step {layout['options']['median_step_ms']:.1f} ms")
    print(profile.migration_summary(found, migration))
    print(f"cost model written to {out} in {time.perf_counter() - started:.1f} s")
    return 0
