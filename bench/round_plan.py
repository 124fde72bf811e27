"""Round plan: shipped policies with `param plan` off and on, side by side, on generated traces.

Writes bench/results/round_plan.json and bench/results/round_plan.md. Run:

    python3 bench/round_plan.py [--profiles short,burst,flash] [--loads 1.0,1.3] [--seeds 1,2]
                                [--gpus 4,8] [--policies edf_best_fit,edf_greedy,default] [--jobs 2] [--quick]

`param plan = true` (gfdit/engine/plan.py) gives each round's free ranks first to
the candidates that can still meet their deadline if they start now, each at its
cheapest such width, as many as fit; the rest are allocated by the policy's own
rules. Each policy runs on each trace (`gfdit workload`'s generator, qwen-h20
cost model) twice, in one process, back to back: as shipped, and with `param
plan = true` added to its text; both are fitted to the cluster
(`gfdit.policies.fit_to`). Per run: SLO attainment, mean and p99 latency, rounds,
and the scheduler's wall time per round (mean and p99, microseconds: noisy on a
shared machine, compare the two columns of one row rather than rows).
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

from gfdit.dsl.load import compile_policy
from gfdit.engine.costmodel import CostModel
from gfdit.engine.metrics import percentile
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import generate, load_profile
from gfdit.policies import POLICY_DIR, fit_to

RESULTS = Path(__file__).resolve().parent / "results"
PLAN_LINE = "\nparam plan = true\n"
MODES = {"off": "", "on": PLAN_LINE}


def run_trace(job: tuple) -> list[dict]:
    """Every policy, plan off and on, on one generated trace."""
    profile, load, seed, gpus, names = job
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    workload = Workload.from_json(generate(load_profile(profile), cost, gpus, load, seed))
    rows = []
    for name in names:
        text = (POLICY_DIR / f"{name}.gfp").read_text()
        row = {"profile": profile, "load": load, "seed": seed, "gpus": gpus, "policy": name,
               "requests": len(workload.requests)}
        for mode, extra in MODES.items():
            result = simulate(fitted(text + extra, f"{name}.gfp", cost, gpus), workload, cost, gpus)
            m, costs = result.metrics["overall"], result.round_costs
            row[mode] = {"slo": m["slo_attainment"], "mean_s": m["mean_latency_s"], "p99_s": m["p99_latency_s"],
                         "rounds": result.rounds, "round_mean_us": 1e6 * statistics.fmean(costs),
                         "round_p99_us": 1e6 * percentile(costs, 99)}
        rows.append(row)
    return rows


def fitted(source: str, filename: str, cost: CostModel, gpus: int):
    """The policy `source` compiles to, fitted to the cluster (narrower widths compiled from the same text)."""
    def with_widths(widths: str):
        return compile_policy(source, filename, {"widths": widths})

    return fit_to(compile_policy(source, filename), with_widths, cost, gpus)[0]


def summary(rows: list[dict], key) -> list[dict]:
    """Per group of `key(row)`: means of off and on, and on which traces plan gained or lost SLO."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    out = []
    for group, members in groups.items():
        item = {"group": group, "traces": len(members)}
        for mode in MODES:
            for metric in ("slo", "mean_s", "p99_s", "rounds", "round_mean_us", "round_p99_us"):
                item[f"{metric}_{mode}"] = statistics.fmean(r[mode][metric] for r in members)
        deltas = [r["on"]["slo"] - r["off"]["slo"] for r in members]
        item.update(better=sum(d > 1e-9 for d in deltas), worse=sum(d < -1e-9 for d in deltas),
                    best_gain=max(deltas), worst_loss=min(deltas))
        out.append(item)
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    head = ("| {} | traces | SLO off | SLO on | Δ SLO (better / worse; range) | mean s off / on | "
            "p99 s off / on | rounds off / on | round µs mean off / on | round µs p99 off / on |")
    rule = "|---|---:|---:|---:|---|---|---|---|---|---|"
    lines = [f"# Round plan: `param plan` off and on ({meta['when']}, {meta['wall_s']:.0f} s)", "",
             f"`{meta['command']}`: {meta['traces']} generated traces x {len(meta['policies'])} policies x "
             "plan off/on, qwen-h20 cost model. Round times are wall microseconds per scheduling round "
             f"(load average {meta['loadavg']}: noisy; compare off and on within a row).", ""]

    def table(title: str, items: list[dict]) -> None:
        lines.extend([head.format(title), rule])
        for s in items:
            lines.append(
                f"| {' '.join(map(str, s['group']))} | {s['traces']} | {s['slo_off']:.3f} | {s['slo_on']:.3f} | "
                f"{s['slo_on'] - s['slo_off']:+.3f} ({s['better']} / {s['worse']}; {s['worst_loss']:+.3f} .. "
                f"{s['best_gain']:+.3f}) | {s['mean_s_off']:.1f} / {s['mean_s_on']:.1f} | "
                f"{s['p99_s_off']:.0f} / {s['p99_s_on']:.0f} | {s['rounds_off']:.0f} / {s['rounds_on']:.0f} | "
                f"{s['round_mean_us_off']:.0f} / {s['round_mean_us_on']:.0f} | "
                f"{s['round_p99_us_off']:.0f} / {s['round_p99_us_on']:.0f} |")
        lines.append("")

    table("policy", summary(rows, lambda r: (r["policy"],)))
    table("policy, profile", summary(rows, lambda r: (r["policy"], r["profile"])))
    table("policy, GPUs", summary(rows, lambda r: (r["policy"], f"{r['gpus']} GPUs")))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="short,burst,flash")
    parser.add_argument("--loads", default="1.0,1.3")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--gpus", default="4,8")
    parser.add_argument("--policies", default="edf_best_fit,edf_greedy,default")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="round_plan", help="results file stem under bench/results")
    parser.add_argument("--quick", action="store_true",
                        help="every profile at load 1.3, seed 1, 4 GPUs (round_plan_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.loads, args.seeds, args.gpus, args.out = "1.3", "1", "4", "round_plan_quick"
    names = args.policies.split(",")
    jobs = [(p, float(load), int(seed), int(g), names) for p, load, seed, g in itertools.product(
        args.profiles.split(","), args.loads.split(","), args.seeds.split(","), args.gpus.split(","))]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = [row for rows in pool.map(run_trace, jobs) for row in rows]
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": time.perf_counter() - t0,
            "traces": len(jobs), "policies": names, "loadavg": round(os.getloadavg()[0], 2),
            "command": f"python3 bench/round_plan.py --profiles {args.profiles} --loads {args.loads} "
                       f"--seeds {args.seeds} --gpus {args.gpus} --policies {args.policies}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    text = markdown(rows, meta)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
