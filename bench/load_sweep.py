"""Load sweep: every policy against offered load, both workload profiles, 4 and 8 GPUs, three seeds.

    python3 bench/load_sweep.py [--quick] [--processes 2]

For each profile (`short`, `burst`: gfdit/data/profiles), GPU count (4, 8),
offered load (0.5 to 1.5 in steps of 0.1) and seed (0, 1, 2) a trace is
generated (`gfdit workload`'s generator, qwen-h20 cost model) and simulated
under the fixed pipeline (`static_sp` at width 4 and at width 1) and every
other shipped policy (bench/policies.py's list). Per (profile, GPUs, policy,
load) the figures are the means over the seeds: SLO attainment, goodput,
throughput, mean and p99 latency. `--quick`: loads 0.5 / 1.0 / 1.5, one seed, 4 GPUs.

Writes bench/results/load_sweep{,_quick}.json and .md, and PNG plots:
load_sweep_slo.png (SLO attainment vs load), load_sweep_p99.png (p99 vs load),
load_sweep_cdf.png (latency CDFs per policy at load 1.0, `short`, 4 GPUs,
seed 0) and load_sweep_timeline.png (rank timelines at that point: the fixed
pipeline at width 4 and the best elastic policy).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from gfdit.engine.costmodel import CostModel
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import generate, load_profile
from gfdit.policies import fit_policy, resolve_policy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policies import FIXED, ROOT, ratios, runs  # noqa: E402  (bench/policies.py: the list, the ratios)

RESULTS = ROOT / "bench" / "results"
KEYS = ("slo_attainment", "slo_violation_rate", "goodput_rpm", "throughput_rpm", "mean_latency_s", "p99_latency_s")
CDF_POINT = ("short", 4, 1.0, 0)  # profile, GPUs, load, seed of the CDF and timeline plots


def trace(profile: str, gpus: int, load: float, seed: int, cost: CostModel) -> Workload:
    return Workload.from_json(generate(load_profile(profile), cost, gpus, load, seed))


def point(job: tuple[str, int, float, int]) -> list[dict]:
    """Every policy on one generated trace; keeps latencies at the CDF point."""
    profile, gpus, load, seed = job
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    workload = trace(profile, gpus, load, seed, cost)
    rows = []
    for label, (name, params) in runs(gpus).items():
        policy, _ = fit_policy(resolve_policy(name, params), name, params, cost, gpus)  # pools sized for gpus
        result = simulate(policy, workload, cost, gpus, time_rounds=False)
        m = result.metrics["overall"]
        row = {"profile": profile, "gpus": gpus, "load": load, "seed": seed, "policy": label,
               "requests": m["requests"], **{k: m[k] for k in KEYS}}
        if job == CDF_POINT:
            row["latencies"] = sorted(o.finish - o.arrival for o in result.outcomes if o.finish is not None)
        rows.append(row)
    return rows


def average(rows: list[dict]) -> list[dict]:
    """Means over seeds per (profile, GPUs, policy, load)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["profile"], r["gpus"], r["policy"], r["load"]), []).append(r)
    out = []
    for (profile, gpus, policy, load), group in groups.items():
        mean = {k: sum(g[k] for g in group) / len(group) for k in KEYS}
        out.append({"profile": profile, "gpus": gpus, "policy": policy, "load": load, "seeds": len(group), **mean})
    return sorted(out, key=lambda r: (r["profile"], r["gpus"], r["policy"], r["load"]))


def series(avg: list[dict], profile: str, gpus: int) -> dict[str, list[dict]]:
    by_policy: dict[str, list[dict]] = {}
    for r in avg:
        if r["profile"] == profile and r["gpus"] == gpus:
            by_policy.setdefault(r["policy"], []).append(r)
    return by_policy


def style(policy: str) -> dict:
    """Fixed pipelines dashed black / grey, the default thick, every other policy its own colour."""
    if policy in FIXED:
        return {"linestyle": "--", "linewidth": 2.2, "color": "black" if "sp=4" in policy else "grey"}
    import matplotlib

    names = sorted(n for n in runs(4) if n not in FIXED)
    color = matplotlib.colormaps["tab20"](names.index(policy) % 20) if policy in names else None
    return {"linewidth": 2.6 if policy == "default" else 1.1, "color": color}


def plot_vs_load(avg: list[dict], key: str, ylabel: str, path: Path, log: bool = False) -> None:
    import matplotlib.pyplot as plt

    cells = sorted({(r["profile"], r["gpus"]) for r in avg})
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.6), squeeze=False)
    for ax, (profile, gpus) in zip(axes[0], cells, strict=True):
        for policy, pts in series(avg, profile, gpus).items():
            ax.plot([p["load"] for p in pts], [p[key] for p in pts], marker=".", label=policy, **style(policy))
        ax.set_title(f"{profile}, {gpus} GPUs", fontsize="medium")
        ax.set_xlabel("offered load")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_cdf(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in rows:
        lat = r.get("latencies") or []
        if lat:
            ax.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], label=r["policy"], **style(r["policy"]))
    ax.set_xscale("log")
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("share of requests")
    profile, gpus, load, seed = CDF_POINT
    ax.set_title(f"latency CDF: {profile}, {gpus} GPUs, load {load}, seed {seed}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_timeline(best: str, path: Path) -> None:
    from gfdit.engine.timeline import plot_timelines

    profile, gpus, load, seed = CDF_POINT
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    workload = trace(profile, gpus, load, seed, cost)
    all_runs = runs(gpus)
    panels = []
    for label in ("static_sp (sp=4)", best):
        name, params = all_runs[label]
        policy, _ = fit_policy(resolve_policy(name, params), name, params, cost, gpus)
        result = simulate(policy, workload, cost, gpus, record_spans=True, time_rounds=False)
        panels.append((f"{label}: {profile}, {gpus} GPUs, load {load}", result.spans or []))
    plot_timelines(panels, gpus, path)


def best_elastic(avg: list[dict]) -> str:
    """The elastic policy with the highest goodput summed over every cell and load."""
    totals: dict[str, float] = {}
    for r in avg:
        if r["policy"] not in FIXED:
            totals[r["policy"]] = totals.get(r["policy"], 0.0) + r["goodput_rpm"]
    return max(totals, key=totals.get)


def headline(avg: list[dict]) -> list[dict]:
    """Per (profile, GPUs, load): the best elastic policy there (highest goodput, then lower mean
    latency) against the fixed pipeline at width 4 and at width 1 (bench/policies.py's ratios)."""
    out = []
    for (profile, gpus) in sorted({(r["profile"], r["gpus"]) for r in avg}):
        by_policy = series(avg, profile, gpus)
        for i, load in enumerate(p["load"] for p in by_policy["static_sp (sp=4)"]):
            at = {policy: dict(pts[i], policy=policy) for policy, pts in by_policy.items()}
            best = max((r for name, r in at.items() if name not in FIXED),
                       key=lambda r: (r["goodput_rpm"], -r["mean_latency_s"]))
            for fixed in FIXED:
                out.append({"profile": profile, "gpus": gpus, "load": load, **ratios(best, at[fixed])})
    return out


def headline_table(rows: list[dict]) -> list[str]:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{-v:+.0f}%"

    lines = ["| profile | GPUs | load | vs | best elastic | throughput | mean latency | SLO violations |",
             "|---|---:|---:|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['profile']} | {r['gpus']} | {r['load']:.1f} | {r['baseline']} | {r['best']} | "
                     f"{r['throughput_x']:.2f}x | {pct(r['mean_latency_minus_pct'])} | "
                     f"{pct(r['slo_violations_minus_pct'])} |")
    return lines


def up_to(rows: list[dict]) -> str:
    """The largest of each ratio against the width-4 pipeline over the sweep (the paper's "up to")."""
    vs4 = [r for r in rows if r["baseline"] == "static_sp (sp=4)"]
    best = {k: max(vs4, key=lambda r, k=k: r[k] if r[k] is not None else -1e9)
            for k in ("throughput_x", "mean_latency_minus_pct", "slo_violations_minus_pct")}
    where = {k: f"{r['profile']}, {r['gpus']} GPUs, load {r['load']:.1f}, {r['best']}" for k, r in best.items()}
    return (f"Up to, against the width-4 pipeline: throughput {best['throughput_x']['throughput_x']:.2f}x "
            f"({where['throughput_x']}), mean latency "
            f"-{best['mean_latency_minus_pct']['mean_latency_minus_pct']:.0f}% ({where['mean_latency_minus_pct']}), "
            f"SLO violations -{best['slo_violations_minus_pct']['slo_violations_minus_pct']:.0f}% "
            f"({where['slo_violations_minus_pct']}).")


def markdown(avg: list[dict], meta: dict) -> str:
    lines = [f"# Load sweep ({meta['when']})", "",
             f"Means over seeds {meta['seeds']}; cost model qwen-h20; {meta['wall_s']:.0f} s wall "
             f"on {meta['processes']} processes (load average {meta['loadavg']}).", "",
             "**Best elastic policy at each point against the fixed pipeline** (means over seeds)", ""]
    lines += headline_table(meta["headline"]) + ["", up_to(meta["headline"]), ""]
    for profile, gpus in sorted({(r["profile"], r["gpus"]) for r in avg}):
        by_policy = series(avg, profile, gpus)
        loads = [p["load"] for p in next(iter(by_policy.values()))]
        for key, title, fmt in (("slo_attainment", "SLO attainment", "{:.2f}"),
                                ("p99_latency_s", "p99 latency (s)", "{:.0f}"),
                                ("goodput_rpm", "goodput (/min)", "{:.1f}"),
                                ("mean_latency_s", "mean latency (s)", "{:.0f}")):
            lines += [f"**{profile}, {gpus} GPUs: {title}**", "",
                      "| policy | " + " | ".join(f"{x:.1f}" for x in loads) + " |",
                      "|---|" + "---:|" * len(loads)]
            for policy, pts in by_policy.items():
                cells = ["-" if math.isnan(p[key]) else fmt.format(p[key]) for p in pts]
                lines.append(f"| {policy} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def plots(avg: list[dict], cdf_rows: list[dict], best: str, stem: str) -> None:
    plot_vs_load(avg, "slo_attainment", "SLO attainment", RESULTS / f"{stem}_slo.png")
    plot_vs_load(avg, "p99_latency_s", "p99 latency (s)", RESULTS / f"{stem}_p99.png", log=True)
    plot_cdf(cdf_rows, RESULTS / f"{stem}_cdf.png")
    plot_timeline(best, RESULTS / f"{stem}_timeline.png")


def replot(stem: str) -> int:
    doc = json.loads((RESULTS / f"{stem}.json").read_text())
    (RESULTS / f"{stem}.md").write_text(markdown(doc["mean_over_seeds"], doc["meta"]))
    plots(doc["mean_over_seeds"], doc["cdf"], doc["meta"]["best_elastic"], stem)
    print(f"redrew {RESULTS / stem}.md and plots from {stem}.json")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="loads 0.5 / 1.0 / 1.5, one seed, 4 GPUs")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--replot", action="store_true", help="redraw the plots and table from the results JSON")
    args = parser.parse_args()
    if args.replot:
        return replot("load_sweep_quick" if args.quick else "load_sweep")
    loads = [0.5, 1.0, 1.5] if args.quick else [round(0.5 + 0.1 * i, 1) for i in range(11)]
    seeds = [0] if args.quick else [0, 1, 2]
    gpus = (4,) if args.quick else (4, 8)
    jobs = [(p, g, x, s) for p in ("short", "burst") for g in gpus for x in loads for s in seeds]
    t0 = time.perf_counter()
    with Pool(args.processes) as pool:
        rows = [r for chunk in pool.imap_unordered(point, jobs) for r in chunk]
    wall = time.perf_counter() - t0
    avg = average(rows)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loads": loads, "seeds": seeds,
            "processes": args.processes, "wall_s": wall, "loadavg": round(os.getloadavg()[0], 2),
            "best_elastic": best_elastic(avg), "headline": headline(avg)}
    stem = "load_sweep_quick" if args.quick else "load_sweep"
    RESULTS.mkdir(parents=True, exist_ok=True)
    cdf_rows = [r for r in rows if "latencies" in r]
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "mean_over_seeds": avg, "runs": [
        {k: v for k, v in r.items() if k != "latencies"} for r in rows], "cdf": cdf_rows}) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(avg, meta))
    if not args.no_plots:
        plots(avg, cdf_rows, meta["best_elastic"], stem)
    print(f"{len(jobs)} traces x {len(runs(4))} policies in {wall:.0f} s; best elastic: {meta['best_elastic']}; "
          f"wrote {RESULTS / stem}.json / .md" + ("" if args.no_plots else " and plots"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
