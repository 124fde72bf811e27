"""Tuning speed: 100 param settings of the shipped default.gfp on one 400-request trace, in parallel.

Writes bench/results/tune_speed.json and .md. Run:

    python3 bench/tune_speed.py [--jobs 2] [--requests 400] [--quick]

The trace is the `short` profile at load 0.9 on 4 GPUs, stretched to hold the
wanted number of requests (bench/sim_speed.py's `trace`). The grid: chunk
1..5 x penalty 1,2,4,8,16 x four width sets = 100 settings, each simulated
once (`gfdit.tuning.tune`, the engine of `gfdit policy tune`). Wall and CPU
seconds of the whole run are recorded with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from gfdit.engine.costmodel import CostModel
from gfdit.engine.workload import shipped_cost_model
from gfdit.tuning import best, tune

sys.path.insert(0, str(Path(__file__).parent))
from sim_speed import trace  # noqa: E402 -- the same trace builder

RESULTS = Path(__file__).resolve().parent / "results"
GRID = {"chunk": ["1", "2", "3", "4", "5"], "penalty": ["1", "2", "4", "8", "16"],
        "widths": ["{1,2,4}", "{1,2}", "{1,4}", "{1}"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="12 settings x 100 requests (tune_speed_quick.*)")
    args = parser.parse_args()
    grid = {"chunk": ["2", "5"], "penalty": ["2", "8"], "widths": GRID["widths"][:3]} if args.quick else GRID
    requests = 100 if args.quick else args.requests
    stem = "tune_speed_quick" if args.quick else "tune_speed"
    cost_dir = shipped_cost_model("qwen-h20")
    workload = trace(requests, CostModel.load(cost_dir))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        workload.save(path)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        children0 = os.times().children_user + os.times().children_system
        settings = tune("default", grid, [path], cost_dir, 4, jobs=args.jobs)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0 + os.times().children_user + os.times().children_system - children0
    chosen = best(settings)
    report = {"benchmark": "tune_speed", "settings": len(settings), "requests": len(workload.requests),
              "jobs": args.jobs, "cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0],
              "wall_s": wall, "cpu_s": cpu, "pareto": sum(s.pareto for s in settings),
              "chosen": chosen.params, "chosen_metrics": chosen.metrics}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = (f"# Tuning speed: {len(settings)} settings x {len(workload.requests)} requests, {args.jobs} processes\n\n"
            f"wall {wall:.1f} s, CPU {cpu:.1f} s (this process and its workers), {os.cpu_count()} CPUs, "
            f"1-min load average {report['load_average_1m']:.1f}; {report['pareto']} settings on the Pareto "
            f"front; chosen by SLO attainment: {chosen.params} "
            f"(SLO {chosen.metrics['slo_attainment']:.3f}, mean {chosen.metrics['mean_latency_s']:.1f} s)\n")
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
