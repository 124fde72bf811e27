"""The policy table: every shipped policy and the default on shipped and generated traces.

Writes bench/results/policy_table.json and bench/results/policy_table.md. Run:

    python3 bench/policy_table.py [--seeds 1,2,3] [--loads 0.8,1.0,1.15,1.3] [--jobs 2] [--quick]

Traces: the shipped ones (gfdit/data/workloads, each with its own cost model
and GPU count) and, from `gfdit workload`'s generator, every profile (`short`,
`burst`, and `flash`: crowds of identical small requests with tight deadlines)
at each load, seed and GPU count (4, 8) with the shipped qwen-h20 cost model.
Each policy runs with its own shipped parameters. Per trace, "best" is the
shipped policy with the highest SLO attainment (ties: lower mean latency);
the default passes a trace when its attainment is at least the best's and its
mean latency is within 5% of the best's. The lowest mean latency of any
shipped policy is listed next to it (that policy usually meets fewer
deadlines: the trade-off). Simulations run in `--jobs` processes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gfdit.engine.costmodel import CostModel
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model, shipped_workload
from gfdit.engine.workload_gen import generate, known_profiles, load_profile
from gfdit.policies import DEFAULT_POLICY, POLICY_DIR, fit_policy, resolve_policy

RESULTS = Path(__file__).resolve().parent / "results"
SHIPPED_TRACES = {"short-4gpu": ("qwen-h20", 4), "burst-4gpu": ("qwen-h20", 4),
                  "short-8gpu-synthetic": ("synthetic", 8)}
METRICS = ("slo_attainment", "mean_latency_s", "p95_latency_s", "p99_latency_s", "goodput_rpm", "completed")


def policies() -> list[str]:
    return sorted(p.stem for p in POLICY_DIR.glob("*.gfp"))


def traces(seeds: list[int], loads: list[float], gpus: list[int]) -> list[tuple]:
    """(label, kind, spec...) for every trace: shipped first, then generated."""
    out: list[tuple] = [(name, "shipped", name) for name in SHIPPED_TRACES]
    for profile, load, seed, n in itertools.product(known_profiles(), loads, seeds, gpus):
        out.append((f"{profile} load {load} seed {seed} {n} GPUs", "generated", profile, load, seed, n))
    return out


def _load(trace: tuple) -> tuple[Workload, CostModel, int]:
    if trace[1] == "shipped":
        model, gpus = SHIPPED_TRACES[trace[2]]
        return Workload.load(shipped_workload(trace[2])), \
            CostModel.load(shipped_cost_model(model)), gpus
    _, _, profile, load, seed, gpus = trace
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    return Workload.from_json(generate(load_profile(profile), cost, gpus, load, seed)), cost, gpus


def run_trace(trace: tuple) -> dict:
    """Every policy on one trace: {policy: metrics}."""
    workload, cost, gpus = _load(trace)
    row = {}
    for name in policies():
        policy, _ = fit_policy(resolve_policy(name), name, {}, cost, gpus)
        m = simulate(policy, workload, cost, gpus, time_rounds=False).metrics["overall"]
        row[name] = {k: m[k] for k in METRICS}
    return {"trace": trace[0], "requests": len(workload.requests), "gpus": gpus, "policies": row}


def judge(row: dict) -> dict:
    """The best shipped policy on this trace, the lowest mean latency, and whether the default passes."""
    shipped = {n: m for n, m in row["policies"].items() if n != DEFAULT_POLICY}
    best = max(shipped, key=lambda n: (shipped[n]["slo_attainment"], -shipped[n]["mean_latency_s"]))
    fastest = min(shipped, key=lambda n: shipped[n]["mean_latency_s"])
    ours, top = row["policies"][DEFAULT_POLICY], shipped[best]
    return {"best": best, "fastest": fastest,
            "slo_ok": ours["slo_attainment"] >= top["slo_attainment"] - 1e-9,
            "mean_ok": ours["mean_latency_s"] <= 1.05 * top["mean_latency_s"],
            "slo_diff": ours["slo_attainment"] - top["slo_attainment"],
            "mean_ratio": ours["mean_latency_s"] / top["mean_latency_s"]}


def markdown(rows: list[dict], meta: dict) -> str:
    passed = sum(r["judge"]["slo_ok"] and r["judge"]["mean_ok"] for r in rows)
    lines = [f"# The default policy against every shipped policy ({meta['when']})", "",
             f"{len(rows)} traces ({meta['command']}); the default passes {passed} "
             "(SLO attainment at least the best shipped policy's, mean latency within 5% of its).", "",
             "| trace | best shipped | its SLO / mean / p99 | default SLO / mean / p99 | lowest mean (policy) | pass |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        j, p = r["judge"], r["policies"]
        b, d, f = p[j["best"]], p[DEFAULT_POLICY], p[j["fastest"]]
        lines.append(f"| {r['trace']} | {j['best']} | {b['slo_attainment']:.3f} / {b['mean_latency_s']:.1f} / "
                     f"{b['p99_latency_s']:.0f} | {d['slo_attainment']:.3f} / {d['mean_latency_s']:.1f} / "
                     f"{d['p99_latency_s']:.0f} | {f['mean_latency_s']:.1f} ({j['fastest']}) | "
                     f"{'yes' if j['slo_ok'] and j['mean_ok'] else 'no'} |")
    lines += ["", "Every policy, averaged over the traces (SLO attainment, mean / p95 / p99 latency s, goodput /min):",
              "", "| policy | SLO | mean | p95 | p99 | goodput | best-SLO traces |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in policies():
        ms = [r["policies"][name] for r in rows]
        wins = sum(r["judge"]["best"] == name for r in rows)
        avg = {k: statistics.mean(m[k] for m in ms) for k in METRICS}
        lines.append(f"| {name} | {avg['slo_attainment']:.3f} | {avg['mean_latency_s']:.1f} | "
                     f"{avg['p95_latency_s']:.1f} | {avg['p99_latency_s']:.1f} | {avg['goodput_rpm']:.2f} | {wins} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--loads", default="0.8,1.0,1.15,1.3")
    parser.add_argument("--gpus", default="4,8")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="policy_table", help="results file stem under bench/results")
    parser.add_argument("--quick", action="store_true",
                        help="seed 1, load 1.15, 4 GPUs (policy_table_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.loads, args.gpus, args.out = "1", "1.15", "4", "policy_table_quick"
    chosen = traces([int(s) for s in args.seeds.split(",")], [float(x) for x in args.loads.split(",")],
                    [int(g) for g in args.gpus.split(",")])
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_trace, chosen))
    for row in rows:
        row["judge"] = judge(row)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": time.perf_counter() - t0,
            "command": f"python3 bench/policy_table.py --seeds {args.seeds} --loads {args.loads} --gpus {args.gpus}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    text = markdown(rows, meta)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
