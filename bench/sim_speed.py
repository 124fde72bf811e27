"""Simulator speed: 1,000 requests x 50 steps, one denoise step per task, at the shipped workload's load.

Writes bench/results/sim_speed.json and bench/results/sim_speed.md. Run:

    python3 bench/sim_speed.py [--requests 1000] [--repeats 3]

The trace is the shipped `short` profile at offered load 0.9 on 4 GPUs (the
load of gfdit/data/workloads/short-4gpu.json), its phases stretched until it
holds the wanted number of requests. Each policy is timed over the same trace
in one run, best of `--repeats`: wall seconds and CPU seconds of this process
(the CPU figure is the one to trust on a shared, loaded machine; the load
average is recorded next to it).

`--against DIR` also times the compiled row with the gfdit of another
checkout (e.g. a worktree of an older commit), alternating with this one in
child processes, so the ratio is measured side by side under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import gfdit
from gfdit.engine.builtin_policies import edf_best_fit, static_sp
from gfdit.engine.costmodel import CostModel
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import generate, load_profile
from gfdit.policies import resolve_policy

RESULTS = Path(__file__).resolve().parent / "results"
LOAD, GPUS, SEED = 0.9, 4, 11


def trace(n: int, cost_model: CostModel) -> Workload:
    return stretched(load_profile("short"), cost_model, LOAD, SEED, n, grow=1.25)


def stretched(profile: dict, cost_model: CostModel, load: float, seed: int, n: int, grow: float) -> Workload:
    """The first `n` requests of `profile` on GPUS GPUs, its phases stretched (by `grow` times the
    shortfall each try) until it holds that many."""
    scale = 1.0
    while True:
        data = generate(profile, cost_model, GPUS, load, seed, duration_scale=scale)
        if len(data["requests"]) >= n:
            break
        scale *= grow * n / max(1, len(data["requests"]))
    workload = Workload.from_json(data)
    workload.requests = workload.requests[:n]
    return workload


def policies() -> dict[str, object]:
    chosen = {"edf_best_fit (python, chunk 1)": edf_best_fit(chunk=1),
              "static_sp (python, width 4, chunk all)": static_sp(4)}
    chosen["edf_best_fit.gfp (compiled, chunk 1)"] = resolve_policy("edf_best_fit", {"chunk": "1"})
    return chosen


def measure(policy, workload: Workload, cost_model: CostModel, repeats: int) -> dict:
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = simulate(policy, workload, cost_model, GPUS, time_rounds=False)
        best_wall = min(best_wall, time.perf_counter() - wall0)
        best_cpu = min(best_cpu, time.process_time() - cpu0)
    tasks = result.rounds
    steps = sum(r.steps for r in workload.requests)
    o = result.metrics["overall"]
    return {"wall_s": best_wall, "cpu_s": best_cpu, "rounds": tasks, "request_steps": steps,
            "steps_per_cpu_s": steps / best_cpu, "completed": o["completed"],
            "slo_attainment": o["slo_attainment"], "mean_latency_s": o["mean_latency_s"],
            "simulated_s": result.end_time}


CHILD = """
import sys, time
sys.path.insert(0, {bench!r})
from sim_speed import trace
from gfdit.engine.costmodel import CostModel
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import shipped_cost_model
from gfdit.policies import resolve_policy
cm = CostModel.load(shipped_cost_model("qwen-h20"))
w = trace({n}, cm)
p = resolve_policy("edf_best_fit", {{"chunk": "1"}})
t = time.process_time(); simulate(p, w, cm, 4, time_rounds=False)
print(sum(r.steps for r in w.requests) / (time.process_time() - t))
"""


def side_by_side(against: str, n: int, repeats: int) -> dict:
    """Compiled request-steps per CPU second here and in `against`, alternating, best of `repeats`."""
    trees = {"this checkout": str(Path(__file__).resolve().parents[1]), "against": str(Path(against).resolve())}
    best = dict.fromkeys(trees, 0.0)
    for _ in range(repeats):
        for label, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
            out = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(Path(__file__).parent), n=n)],
                                 env=env, cwd=tree, capture_output=True, text=True, check=True).stdout
            best[label] = max(best[label], float(out.split()[-1]))
    return {"against": trees["against"], "steps_per_cpu_s": best,
            "ratio": best["this checkout"] / best["against"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", help="another checkout's root: time its compiled path side by side")
    parser.add_argument("--quick", action="store_true", help="200 requests, best of 1 (sim_speed_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.repeats = min(args.requests, 200), 1
    stem = "sim_speed_quick" if args.quick else "sim_speed"
    cost_model = CostModel.load(shipped_cost_model("qwen-h20"))
    workload = trace(args.requests, cost_model)
    runs = {name: measure(p, workload, cost_model, args.repeats) for name, p in policies().items()}
    report = {"benchmark": "sim_speed", "requests": len(workload.requests), "steps_per_request": 50,
              "gpus": GPUS, "offered_load": LOAD, "repeats": args.repeats, "machine": platform.machine(),
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "gfdit": str(Path(gfdit.__file__).resolve().parent),  # which checkout the table timed
              "load_average_1m": os.getloadavg()[0], "runs": runs}
    if args.against:
        report["side_by_side"] = side_by_side(args.against, args.requests, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Simulator speed: {report['requests']} requests x 50 steps, {GPUS} GPUs, load {LOAD}", "",
             f"best of {args.repeats}; {report['cpus']} CPUs, 1-min load average {report['load_average_1m']:.1f}; "
             f"gfdit from `{report['gfdit']}`", "",
             "| policy | rounds | wall s | CPU s | steps / CPU s | SAR | mean latency s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['rounds']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                     f"{r['steps_per_cpu_s']:,.0f} | {r['slo_attainment']:.1%} | {r['mean_latency_s']:.1f} |")
    if args.against:
        sbs = report["side_by_side"]
        lines += ["", f"Side by side (compiled, alternating child processes, best of {args.repeats}): "
                  f"{sbs['steps_per_cpu_s']['this checkout']:,.0f} request-steps / CPU s here, "
                  f"{sbs['steps_per_cpu_s']['against']:,.0f} with `{sbs['against']}`: "
                  f"{sbs['ratio']:.2f}x"]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
