"""Overhead of a gfdit denoise task at width 1 against the plain diffusers loop.

Side by side in one run (alternating which goes first), on the same model (the built-in `tiny` Flux pipeline,
fixed random weights) and the same request, alternating per repeat:

  plain  -- `pipe(prompt, ...)` in this process (one thread), per-step time from
            `callback_on_step_end` stamps over steps 1..N-1;
  gfdit  -- a `WorkerPool(1)` worker: encode, a warm-up step [0, 1), then the
            denoise task [1, N) timed at the controller (dispatch, ZeroMQ, scheduler
            state restore/capture included) and by the worker (compute only).

Reports medians and the ratios gfdit / plain (target: within 3%), plus the whole
trajectory (encode + denoise + decode) against the whole `pipe(...)` call, and
the largest pixel difference between the two images (same model, same seed).

    python3 bench/worker_overhead.py [--shapes 128x128,256x256] [--steps 10] [--repeats 5]

Writes bench/results/worker_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gfdit.protocol import GenParams, RunTask  # noqa: E402
from gfdit.workers.pool import WorkerPool  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk"


def plain_run(pipe, params: GenParams, max_sequence_length: int) -> dict:
    stamps: list[tuple[float, float]] = []

    def stamp(_pipe, _i, _t, _kwargs):
        stamps.append((time.perf_counter(), time.thread_time()))
        return {}

    start = time.perf_counter()
    image = pipe(PROMPT, height=params.height, width=params.width, num_inference_steps=params.steps,
                 generator=torch.Generator().manual_seed(params.seed), callback_on_step_end=stamp,
                 max_sequence_length=max_sequence_length, output_type="np").images[0]
    total = time.perf_counter() - start
    steps = (stamps[-1][0] - stamps[0][0]) / (params.steps - 1)
    cpu = (stamps[-1][1] - stamps[0][1]) / (params.steps - 1)
    return {"step_s": steps, "cpu_step_s": cpu, "total_s": total, "image": (image * 255).round().clip(0, 255).astype(np.uint8)}


def gfdit_run(pool: WorkerPool, params: GenParams, request_id: str, first_id: int) -> dict:
    n = params.steps

    def task(offset, stage, begin, end, holders):
        return RunTask(task_id=first_id + offset, request_id=request_id, stage=stage, step_begin=begin,
                       step_end=end, group=(0,), state_ranks=holders, params=params)

    start = time.perf_counter()
    pool.run(task(0, "encode", 0, 0, ()))
    pool.run(task(1, "denoise", 0, 1, (0,)))
    chunk_start = time.perf_counter()
    chunk = pool.run(task(2, "denoise", 1, n, (0,)))
    chunk_wall = time.perf_counter() - chunk_start
    image = pool.run(task(3, "decode", n, n, (0,))).images[0]
    total = time.perf_counter() - start
    pool.drop(request_id)
    return {"step_s": chunk_wall / (n - 1), "compute_step_s": chunk.timings[0]["compute"] / (n - 1),
            "cpu_step_s": chunk.timings[0]["compute_cpu"] / (n - 1),
            "total_s": total, "image": image}


def measure(shapes, steps: int, repeats: int) -> list[dict]:
    torch.set_num_threads(1)
    from gfdit.workers import models
    from gfdit.workers.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(models.TINY_FAMILY)
    pipe.set_progress_bar_config(disable=True)
    # the same prompt length as the adapter (the pipeline's default pads T5 to 512 tokens)
    text_tokens = min(512, pipe.tokenizer_2.model_max_length)
    rows = []
    with WorkerPool(1, "tiny") as pool:
        ids = 0
        for height, width in shapes:
            params = GenParams(prompt=PROMPT, height=height, width=width, steps=steps, seed=3)
            plain, ours = [], []
            for rep in range(repeats + 1):  # the first pair warms up and is not kept
                if rep % 2:  # alternate which goes first, so drifts of the machine cancel
                    g = gfdit_run(pool, params, f"r{rep}", ids)
                    p = plain_run(pipe, params, text_tokens)
                else:
                    p = plain_run(pipe, params, text_tokens)
                    g = gfdit_run(pool, params, f"r{rep}", ids)
                ids += 10
                if rep:
                    plain.append(p)
                    ours.append(g)
            rows.append(summarize(height, width, steps, plain, ours))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summarize(height, width, steps, plain, ours) -> dict:
    med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    diff = int(np.abs(plain[-1]["image"].astype(int) - ours[-1]["image"].astype(int)).max())
    return {
        "shape": f"{height}x{width}", "steps": steps, "repeats": len(plain),
        "plain_step_ms": med(plain, "step_s") * 1e3,
        "gfdit_task_step_ms": med(ours, "step_s") * 1e3,
        "gfdit_compute_step_ms": med(ours, "compute_step_s") * 1e3,
        "task_over_plain": med(ours, "step_s") / med(plain, "step_s"),
        "compute_over_plain": med(ours, "compute_step_s") / med(plain, "step_s"),
        "plain_cpu_step_ms": med(plain, "cpu_step_s") * 1e3,
        "gfdit_cpu_step_ms": med(ours, "cpu_step_s") * 1e3,
        "cpu_over_plain": med(ours, "cpu_step_s") / med(plain, "cpu_step_s"),
        "plain_total_ms": med(plain, "total_s") * 1e3,
        "gfdit_total_ms": med(ours, "total_s") * 1e3,
        "total_over_plain": med(ours, "total_s") / med(plain, "total_s"),
        "max_pixel_diff": diff,
    }


def write(rows: list[dict], args) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"bench": "worker_overhead", "model": "tiny (flux)", "device": "cpu", "threads": 1,
            "cpus": os.cpu_count(), "steps": args.steps, "repeats": args.repeats}
    (out / f"{args.stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["# gfdit denoise task vs plain diffusers loop (width 1, tiny Flux, CPU, 1 thread)", "",
             f"steps {args.steps}, medians of {args.repeats} repeats, run side by side "
             f"(1-min load average at the end: {os.getloadavg()[0]:.1f}).", "",
             "task = wall time of the denoise task at the controller (dispatch, ZeroMQ, state "
             "restore/capture included); compute = the worker's compute phase; CPU = the computing thread's CPU "
             "seconds in the loop (the least noisy figure on a shared machine).", "",
             "| shape | plain ms/step | gfdit task ms/step | task/plain | worker compute/plain "
             "| CPU ms/step plain / gfdit | CPU gfdit/plain "
             "| plain total ms | gfdit total ms | total/plain | max pixel diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['plain_step_ms']:.2f} | {r['gfdit_task_step_ms']:.2f} "
                     f"| {r['task_over_plain']:.3f} | {r['compute_over_plain']:.3f} "
                     f"| {r['plain_cpu_step_ms']:.2f} / {r['gfdit_cpu_step_ms']:.2f} | {r['cpu_over_plain']:.3f} "
                     f"| {r['plain_total_ms']:.1f} "
                     f"| {r['gfdit_total_ms']:.1f} | {r['total_over_plain']:.3f} | {r['max_pixel_diff']} |")
    (out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="128x128,256x256")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="64x64, 4 steps, 2 repeats (worker_overhead_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.shapes, args.steps, args.repeats = "64x64", 4, 2
    args.stem = "worker_overhead_quick" if args.quick else "worker_overhead"
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    rows = measure(shapes, args.steps, args.repeats)
    write(rows, args)
    print((ROOT / "bench" / "results" / f"{args.stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
