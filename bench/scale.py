"""Scale: how the simulator, a scheduling round and the emulated server grow.

    python3 bench/scale.py [--quick] [--no-emulated]

1. Simulator: N requests x 50 steps (N = 1,000 ... 100,000; the `short`
   profile's mid-load class mix at a constant load 0.8 on 4 GPUs), policy
   `edf_best_fit.gfp` as shipped (chunk 5), each size in a fresh process:
   CPU seconds and peak RSS (resource.getrusage). The fitted exponent of
   CPU time against N (log-log least squares): 1 = linear.
2. One scheduling round with N waiting requests on 4 free GPUs (N = 100 ...
   10,000; bench/round_time.py's round), median of a few: the exponent again.
3. Emulated server: 64 and 256 emulated ranks (worker processes) on this
   machine, two one-step-task requests per rank at once (bench/control_plane.py's
   per-task overhead): start time, per-task overhead, scheduling rounds, and the
   CPU seconds of the server and of the workers, which is what limits it here.

`--quick`: sizes 500 / 1,000 / 2,000 and 100 / 1,000 / 3,000, 16 emulated ranks only.
Writes bench/results/scale{,_quick}.json, .md and scale{,_quick}.png (log-log).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import control_plane  # noqa: E402  (per-task overhead on a live emulated server)
import round_time  # noqa: E402  (one Engine.schedule() with N waiting)
import sim_speed  # noqa: E402  (its GPU count and trace stretcher)

from gfdit.engine.costmodel import CostModel  # noqa: E402
from gfdit.engine.simulator import simulate  # noqa: E402
from gfdit.engine.workload import Workload, shipped_cost_model  # noqa: E402
from gfdit.engine.workload_gen import load_profile  # noqa: E402
from gfdit.policies import resolve_policy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STEADY_LOAD = 0.8


def steady_trace(n: int, cost: CostModel) -> Workload:
    """N requests of the `short` profile's mid-load mix at a constant offered load (0.8 on 4 GPUs):
    the queue stays bounded however long the trace (sim_speed's stretched trace has a press phase
    beyond capacity, whose queue grows with the trace and makes every round longer)."""
    profile = load_profile("short")
    mix = next(p["mix"] for p in profile["phases"] if p["name"] == "midload")
    profile["phases"] = [{"name": "steady", "start_s": 0.0, "end_s": 600.0, "weight": 1.0, "mix": mix}]
    return sim_speed.stretched(profile, cost, STEADY_LOAD, 11, n, grow=1.1)


def sim_child(n: int, queue) -> None:
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    workload = steady_trace(n, cost)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = simulate(resolve_policy("edf_best_fit"), workload, cost, sim_speed.GPUS, time_rounds=False)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"requests": n, "steps": sum(r.steps for r in workload.requests), "rounds": result.rounds,
               "cpu_s": cpu, "wall_s": wall, "peak_rss_mb": peak_kb / 1024, "before_sim_rss_mb": base_kb / 1024,
               "completed": result.metrics["overall"]["completed"]})


def simulator_sizes(sizes: list[int]) -> list[dict]:
    ctx = mp.get_context("spawn")  # a fresh interpreter per size: its peak RSS is this size's
    rows = []
    for n in sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=sim_child, args=(n, queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
        r = rows[-1]
        print(f"simulator {n:7d} requests: {r['rounds']} rounds, {r['cpu_s']:.1f} CPU s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    return rows


def round_sizes(sizes: list[int]) -> list[dict]:
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    policy = resolve_policy("edf_best_fit", {"queue_cap": str(10 * max(sizes))})  # no arrival turned away
    rows = []
    for n in sizes:
        batch = round_time.requests(n)
        repeats = 3 if n >= 5000 else 7
        t = statistics.median(round_time.time_round(policy, cost, batch) for _ in range(repeats))
        rows.append({"waiting": n, "round_s": t, "repeats": repeats})
        print(f"round with {n:6d} waiting: {t * 1e3:.2f} ms")
    return rows


def exponent(xs: list[float], ys: list[float]) -> float | None:
    """Slope of log y against log x (least squares)."""
    if len(xs) < 2:
        return None
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / den if den else None


def emulated(ranks: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "one_step_tasks.gfp"
        policy.write_text(control_plane.STEP_POLICY)
        for k in ranks:
            try:
                r = control_plane.task_overhead(str(policy), gpus=k, requests=2 * k, concurrent=True, steps=10)
            except Exception as exc:  # noqa: BLE001 -- what stopped it is the finding
                r = {"gpus": k, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(r)
            print(f"emulated {k} ranks: " + (r.get("error") or f"start {r['start_s']:.1f} s, overhead p50 "
                                              f"{r['overhead_p50_ms']:.1f} ms, {r['tasks_per_s']:.0f} tasks/s"))
    return rows


def plot(doc: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
    sim, rnd = doc["simulator"], doc["round"]
    axes[0].loglog([r["requests"] for r in sim], [r["cpu_s"] for r in sim], "o-")
    axes[0].set_title(f"simulator: CPU s vs requests (slope {doc['simulator_exponent']:.2f})", fontsize="small")
    axes[1].loglog([r["waiting"] for r in rnd], [r["round_s"] * 1e3 for r in rnd], "o-")
    axes[1].set_title(f"one round: ms vs waiting (slope {doc['round_exponent']:.2f})", fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def server_rounds(r: dict) -> str:
    return "; ".join(f"{v['p50_s'] * 1e6:.0f} / {v['p99_s'] * 1e6:.0f} ({bucket}, {v['count']} rounds)"
                     for bucket, v in r.get("rounds", {}).items())


def markdown(doc: dict) -> str:
    lines = [f"# Scale ({doc['meta']['when']}, load average {doc['meta']['loadavg']})", "",
             "| requests × 50 steps | rounds | CPU s | wall s | peak RSS MB | rounds / CPU s |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['requests']:,} | {r['rounds']:,} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['rounds'] / r['cpu_s']:,.0f} |" for r in doc["simulator"]]
    lines += ["", f"Fitted exponent (CPU s ∝ N^x): x = {doc['simulator_exponent']:.2f}.", "",
              "| waiting requests | one round ms |", "|---:|---:|"]
    lines += [f"| {r['waiting']:,} | {r['round_s'] * 1e3:.2f} |" for r in doc["round"]]
    lines += ["", f"Fitted exponent (round ∝ N^x): x = {doc['round_exponent']:.2f}.", ""]
    if doc["emulated"]:
        lines += ["| emulated ranks | requests | tasks | start s | tasks/s | overhead p50 ms | p99 ms "
                  "| server+client CPU s | workers CPU s | server rounds p50 / p99 µs (waiting) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in doc["emulated"]:
            if "error" in r:
                lines.append(f"| {r['gpus']} | failed: {r['error']} |||||||")
                continue
            lines.append(f"| {r['gpus']} | {r['requests']} | {r['tasks']} | {r['start_s']:.1f} | "
                         f"{r['tasks_per_s']:.0f} | {r['overhead_p50_ms']:.1f} | {r['overhead_p99_ms']:.1f} | "
                         f"{r['server_client_cpu_s']:.1f} | {r['workers_cpu_s']:.1f} | {server_rounds(r)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 16 emulated ranks only")
    parser.add_argument("--no-emulated", action="store_true", help="skip the emulated server")
    args = parser.parse_args()
    sims = [500, 1000, 2000] if args.quick else [1000, 3000, 10000, 30000, 100000]
    waits = [100, 1000, 3000] if args.quick else [100, 1000, 3000, 10000]
    ranks = [] if args.no_emulated else ([16] if args.quick else [64, 256])
    doc = {"meta": {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "loadavg": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()},
           "simulator": simulator_sizes(sims), "round": round_sizes(waits), "emulated": emulated(ranks)}
    doc["simulator_exponent"] = exponent([r["requests"] for r in doc["simulator"]],
                                         [r["cpu_s"] for r in doc["simulator"]])
    doc["round_exponent"] = exponent([r["waiting"] for r in doc["round"]], [r["round_s"] for r in doc["round"]])
    stem = "scale_quick" if args.quick else "scale"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(doc))
    plot(doc, RESULTS / f"{stem}.png")
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
