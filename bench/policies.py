"""The policy table: every shipped `.gfp` policy simulated on the public workload.

Writes bench/results/policies.json and bench/results/policies.md. Run:

    python3 bench/policies.py [--workload PATH] [--cost-model DIR] [--gpus 4]

Defaults: ../shared/data/workloads/public-short.json on 4 GPUs with the
../shared/data/costmodels/qwen-h20/ cost model (skipped cleanly if absent).
The fixed pipeline is `static_sp` (sp = 4, and sp = 1 as a second row); the
best elastic policy is the non-static one with the highest goodput (ties:
lower mean latency). Ratios against the fixed pipeline: throughput x, mean
latency -%, SLO violations -%. All policies run in this one process on the
same trace, so the figures compare side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gfdit.dsl import load_policy
from gfdit.engine import CostModel, Workload, simulate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
FIXED = {"static_sp (sp=4)": ("static_sp", {"sp": "4"}), "static_sp (sp=1)": ("static_sp", {"sp": "1"})}


def runs(gpus: int) -> dict[str, tuple[str, dict]]:
    names = sorted(p.stem for p in (ROOT / "gfdit" / "data" / "policies").glob("*.gfp") if p.stem != "static_sp")
    return {**FIXED, **{n: (n, {}) for n in names}}


def simulate_all(workload: Workload, cost: CostModel, gpus: int) -> list[dict]:
    rows = []
    for label, (name, params) in runs(gpus).items():
        policy = load_policy(ROOT / "gfdit" / "data" / "policies" / f"{name}.gfp", params).for_cluster(gpus)
        t0 = time.perf_counter()
        result = simulate(policy, workload, cost, gpus, time_rounds=False)
        m = result.metrics["overall"]
        rows.append({"policy": label, "file": f"policies/{name}.gfp", "params": params,
                     "completed": m["completed"], "failed": m["failed"], "rejected": m["rejected"],
                     "throughput_rpm": m["throughput_rpm"], "goodput_rpm": m["goodput_rpm"],
                     "mean_latency_s": m["mean_latency_s"], "p95_latency_s": m["p95_latency_s"],
                     "p99_latency_s": m["p99_latency_s"], "slo_attainment": m["slo_attainment"],
                     "slo_violation_rate": m["slo_violation_rate"],
                     "gpu_utilization": m["gpu_utilization"], "migrations": m["migrations"],
                     "hook_errors": sum(result.hook_errors.values()), "sim_wall_s": time.perf_counter() - t0})
        r = rows[-1]
        print(f"{label:18s} thr {r['throughput_rpm']:6.2f}/min  good {r['goodput_rpm']:6.2f}/min  "
              f"mean {r['mean_latency_s']:7.1f} s  SAR {r['slo_attainment']:.2f}  util {r['gpu_utilization']:.2f}")
    return rows


def ratios(best: dict, fixed: dict) -> dict:
    def minus_pct(new: float, old: float) -> float | None:
        return None if old == 0 else 100.0 * (old - new) / old

    return {"baseline": fixed["policy"], "best": best["policy"],
            "throughput_x": best["throughput_rpm"] / fixed["throughput_rpm"],
            "mean_latency_minus_pct": minus_pct(best["mean_latency_s"], fixed["mean_latency_s"]),
            "slo_violations_minus_pct": minus_pct(best["slo_violation_rate"], fixed["slo_violation_rate"])}


def markdown(rows: list[dict], comparisons: list[dict], meta: dict) -> str:
    lines = [f"# Shipped policies in simulation ({meta['when']})", "",
             f"Workload `{meta['workload']}` ({meta['requests']} requests), cost model `{meta['cost_model']}`, "
             f"{meta['gpus']} GPUs.", "",
             "| policy | done | throughput (/min) | goodput (/min) | mean latency (s) | p95 (s) | p99 (s) "
             "| SLO attainment | GPU util | migrations |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['completed']} | {r['throughput_rpm']:.2f} | {r['goodput_rpm']:.2f} | "
                     f"{r['mean_latency_s']:.1f} | {r['p95_latency_s']:.1f} | {r['p99_latency_s']:.1f} | "
                     f"{r['slo_attainment']:.2f} | "
                     f"{r['gpu_utilization']:.2f} | {r['migrations']} |")
    lines += ["", "| best elastic vs | best | throughput | mean latency | SLO violations |", "|---|---|---:|---:|---:|"]
    for c in comparisons:
        lat, slo = c["mean_latency_minus_pct"], c["slo_violations_minus_pct"]
        lines.append(f"| {c['baseline']} | {c['best']} | {c['throughput_x']:.2f}x | "
                     f"{'n/a' if lat is None else f'-{lat:.0f}%'} | {'n/a' if slo is None else f'-{slo:.0f}%'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default=str(SHARED / "workloads" / "public-short.json"))
    parser.add_argument("--cost-model", default=str(SHARED / "costmodels" / "qwen-h20"))
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--out", default="policies", help="results file stem under bench/results")
    parser.add_argument("--quick", action="store_true", help="the same run (it takes seconds), as policies_quick.*")
    args = parser.parse_args()
    if args.quick and args.out == "policies":
        args.out = "policies_quick"
    if not Path(args.workload).is_file() or not Path(args.cost_model).is_dir():
        print(f"skipped: {args.workload} or {args.cost_model} is not there", file=sys.stderr)
        return 0
    workload, cost = Workload.load(args.workload), CostModel.load(args.cost_model)
    rows = simulate_all(workload, cost, args.gpus)
    elastic = [r for r in rows if not r["policy"].startswith("static_sp")]
    best = max(elastic, key=lambda r: (r["goodput_rpm"], -r["mean_latency_s"]))
    comparisons = [ratios(best, r) for r in rows if r["policy"] in FIXED]
    for c in comparisons:
        slo = c["slo_violations_minus_pct"]
        print(f"best elastic {c['best']} vs {c['baseline']}: throughput x{c['throughput_x']:.2f}, "
              f"mean latency -{c['mean_latency_minus_pct']:.0f}%, SLO violations "
              + ("n/a" if slo is None else f"-{slo:.0f}%"))
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "workload": args.workload,
            "cost_model": args.cost_model, "gpus": args.gpus, "requests": len(workload.requests)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows,
                                                          "vs_fixed_pipeline": comparisons}, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(rows, comparisons, meta))
    print(f"wrote {RESULTS / (args.out + '.json')} and {args.out}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
