"""Migration time against state size, next to the cost model's prediction.

A request of the built-in `tiny` model is encoded and run one denoise step on
rank 0 (the DiT's latents are created with the first step), then moved to rank 1
and back by empty denoise chunks (migration alone; the first move of each pair
is timed), for several image sizes (the state grows with the latent), over real
gloo point-to-point on 2 worker processes. The bench fails when the moved state
does not grow with the image (it once measured the state right after encode,
before the latents existed, without noticing).
Measured: the receiver's `migrate` phase (seconds) and the bytes it received.

The prediction is the engine's `Migration` model, `fixed_s + bytes / bandwidth`.
Its bandwidth and fixed cost are FITTED from these same measurements (least
squares over all sizes); the table shows how well one line explains every size,
and also what the engine's default (GPU-class: 25 GB/s + 1 ms) would predict.
A grow 0 -> {1, 2, 3} (one sender, three receivers) is timed too, against the
model's ceil(receivers / senders) transfer rounds.

    python3 bench/migration.py [--sizes 64,128,256,512,1024] [--repeats 5]

Writes bench/results/migration.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gfdit.engine.costmodel import Migration  # noqa: E402
from gfdit.shapes import latent_tokens  # noqa: E402
from gfdit.protocol import GenParams, RunTask  # noqa: E402
from gfdit.workers.pool import WorkerPool  # noqa: E402
from gfdit.workers.profile import migration_fit  # noqa: E402


def prepared(pool, ids, size: int) -> tuple[str, GenParams]:
    """A request encoded and one denoise step in on rank 0: the DiT's latents exist from the first
    step on, so its state is what a request moved between steps carries."""
    params = GenParams(prompt="a harbour at night", height=size, width=size, steps=4, seed=size)
    rid = f"m{size}"
    pool.run(RunTask(task_id=next(ids), request_id=rid, stage="encode", step_begin=0, step_end=0,
                     group=(0,), state_ranks=(), params=params))
    pool.run(RunTask(task_id=next(ids), request_id=rid, stage="denoise", step_begin=0, step_end=1,
                     group=(0,), state_ranks=(0,), params=params))
    return rid, params


def move(pool, ids, rid: str, params: GenParams, group: tuple[int, ...]) -> tuple[float, float]:
    """Move the request's state from rank 0 to `group` (an empty denoise chunk: migration alone), then
    back to rank 0 (not timed); (bytes per receiver, slowest receiver's seconds)."""
    done = pool.run(RunTask(task_id=next(ids), request_id=rid, stage="denoise", step_begin=1, step_end=1,
                            group=group, state_ranks=(0,), params=params))
    pool.run(RunTask(task_id=next(ids), request_id=rid, stage="denoise", step_begin=1, step_end=1,
                     group=(0,), state_ranks=group, params=params))
    slowest = max(group, key=lambda r: done.timings[r]["migrate"])
    return done.timings[slowest]["recv_bytes"], done.timings[slowest]["migrate"]


def measure(sizes: list[int], repeats: int, grow: bool) -> dict:
    ids = iter(range(1, 1 << 30))
    pairs, grows = [], []
    with WorkerPool(4 if grow else 2, "tiny") as pool:
        for size in sizes:
            rid, params = prepared(pool, ids, size)  # one DiT step per size: a large image's step is slow on CPU
            runs = [move(pool, ids, rid, params, (1,)) for _ in range(repeats + 1)][1:]
            pairs.append({"size": size, "bytes": runs[0][0],
                          "seconds": statistics.median(s for _, s in runs)})
            if grow:
                runs = [move(pool, ids, rid, params, (1, 2, 3)) for _ in range(repeats + 1)][1:]
                grows.append({"size": size, "bytes": runs[0][0],
                              "seconds": statistics.median(s for _, s in runs)})
            pool.drop(rid)
            print(json.dumps(pairs[-1]), flush=True)
    if len(pairs) > 1 and pairs[-1]["bytes"] <= pairs[0]["bytes"]:  # the latents were not in the moved state
        raise SystemExit(f"migration bench: the state did not grow with the image ({pairs[0]['bytes']:,} bytes "
                         f"at {pairs[0]['size']}², {pairs[-1]['bytes']:,} at {pairs[-1]['size']}²)")
    fit = migration_fit([(latent_tokens(p["size"], p["size"]), p["bytes"], p["seconds"]) for p in pairs])
    fitted = Migration(bandwidth_Bps=fit["bandwidth_Bps"], fixed_s=fit["fixed_s"])
    default = Migration()
    for row in pairs:
        row["fitted_s"] = fitted.seconds(int(row["bytes"]), senders=1, receivers=1)
        row["default_s"] = default.seconds(int(row["bytes"]), senders=1, receivers=1)
    for row in grows:
        row["fitted_s"] = fitted.seconds(int(row["bytes"]), senders=1, receivers=3)
    return {"fit": fit,
            "pairs": pairs, "grow_1_to_3": grows}


def write(result: dict, args) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result["meta"] = {"bench": "migration", "model": "tiny (flux)", "transport": "gloo isend/recv, CPU",
                      "repeats": args.repeats, "cpus": os.cpu_count()}
    (out / f"{args.stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    fit = result["fit"]
    lines = ["# Migration time vs state size (tiny Flux, gloo on CPU, 2 cores)", "",
             f"Fitted from these measurements: bandwidth {fit['bandwidth_Bps'] / 1e6:.1f} MB/s, "
             f"fixed {fit['fixed_s'] * 1e3:.2f} ms. Medians of {args.repeats} moves.", "",
             "| image | state bytes | measured ms | fitted model ms | error | engine default ms |",
             "|---|---|---|---|---|---|"]
    for r in result["pairs"]:
        err = (r["fitted_s"] - r["seconds"]) / r["seconds"] * 100
        lines.append(f"| {r['size']}² | {int(r['bytes']):,} | {r['seconds'] * 1e3:.2f} | "
                     f"{r['fitted_s'] * 1e3:.2f} | {err:+.0f}% | {r['default_s'] * 1e3:.3f} |")
    if result["grow_1_to_3"]:
        lines += ["", "Grow 0 -> {1, 2, 3} (one sender; the model counts 3 transfer rounds):", "",
                  "| image | bytes per receiver | measured ms (slowest receiver) | fitted model ms |",
                  "|---|---|---|---|"]
        for r in result["grow_1_to_3"]:
            lines.append(f"| {r['size']}² | {int(r['bytes']):,} | {r['seconds'] * 1e3:.2f} | "
                         f"{r['fitted_s'] * 1e3:.2f} |")
    (out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128,256,512,1024")  # a 2048² tiny step takes minutes on CPU
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-grow", action="store_true", help="skip the 1 -> 3 grow (2 workers only)")
    parser.add_argument("--quick", action="store_true", help="sizes 64,256,512, 3 repeats, no grow (migration_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.no_grow = "64,256,512", min(args.repeats, 3), True
    args.stem = "migration_quick" if args.quick else "migration"
    result = measure([int(s) for s in args.sizes.split(",")], args.repeats, not args.no_grow)
    write(result, args)
    print((ROOT / "bench" / "results" / f"{args.stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
