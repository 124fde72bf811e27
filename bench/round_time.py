"""Scheduling-round time: compiled `.gfp` policies against the same policies written in Python.

Writes bench/results/round_time.json and bench/results/round_time.md. Run:

    python3 bench/round_time.py [--repeats 30]

For each queue length (10 / 100 / 1,000 waiting requests) and each pair
(`gfdit/data/policies/edf_best_fit.gfp` vs the engine's Python `edf_best_fit`;
`gfdit/data/policies/static_sp.gfp` vs Python `static_sp`), two figures, measured side
by side in one run with the runs interleaved, median of `--repeats`:

* round: one `Engine.schedule()` on a fresh engine holding N waiting requests
  on 4 free GPUs (hold and order for every candidate, width for those that
  fit, grow, place: the real round, engine overhead included);
* hooks: the policy alone: hold, order_key and width for every waiting
  request (the strictest comparison: no engine work to hide behind).

The ratio compiled / Python is the figure to read (target: within 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from gfdit.dsl import load_policy
from gfdit.engine import CostModel, Engine, Request
from gfdit.engine.builtin_policies import edf_best_fit, static_sp
from gfdit.engine.cluster import Cluster
from gfdit.engine.workload import shipped_cost_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUEUES = (10, 100, 1000)
GPUS = 4
SIZES = (512, 1024, 1536)


def requests(n: int) -> list[Request]:
    return [Request(f"r{i:05d}", 0.0, SIZES[i % 3], SIZES[i % 3], 50, request_class="SML"[i % 3],
                    deadline=30.0 + (i * 7919 % 1000) / 10.0) for i in range(n)]


def engine_with(policy, cost: CostModel, batch: list[Request]) -> Engine:
    engine = Engine(policy, cost, Cluster(GPUS))
    for r in batch:
        engine.submit(r, 0.0)
    return engine


def time_round(policy, cost: CostModel, batch: list[Request]) -> float:
    engine = engine_with(policy, cost, batch)
    t0 = time.perf_counter()
    engine.schedule(0.0)
    return time.perf_counter() - t0


def time_hooks(policy, cost: CostModel, batch: list[Request]) -> float:
    engine = engine_with(policy, cost, batch)
    view = engine.view(0.0, explain=False)  # the engine's own RoundView, as a round without a decision log builds it
    waiting = list(view.waiting)
    hold, order_key, width = policy.hold, policy.order_key, policy.width
    t0 = time.perf_counter()
    for req in waiting:
        hold(view, req)
        order_key(view, req)
        width(view, req)
    return time.perf_counter() - t0


def measure(pairs: dict, cost: CostModel, repeats: int) -> list[dict]:
    rows = []
    for name, (compiled, python) in pairs.items():
        for n in QUEUES:
            batch = requests(n)
            samples: dict[str, list[float]] = {k: [] for k in ("round_gfp", "round_py", "hooks_gfp", "hooks_py")}
            for _ in range(repeats):  # interleaved, so load changes hit both sides alike
                samples["round_gfp"].append(time_round(compiled, cost, batch))
                samples["round_py"].append(time_round(python, cost, batch))
                samples["hooks_gfp"].append(time_hooks(compiled, cost, batch))
                samples["hooks_py"].append(time_hooks(python, cost, batch))
            med = {k: statistics.median(v) for k, v in samples.items()}
            rows.append({"policy": name, "waiting": n, **{f"{k}_us": v * 1e6 for k, v in med.items()},
                         "round_ratio": med["round_gfp"] / med["round_py"],
                         "hooks_ratio": med["hooks_gfp"] / med["hooks_py"]})
            print(f"{name:13s} N={n:5d}  round {med['round_gfp']*1e6:9.1f} us vs {med['round_py']*1e6:9.1f} us"
                  f" (x{rows[-1]['round_ratio']:.2f})   hooks {med['hooks_gfp']*1e6:9.1f} us vs "
                  f"{med['hooks_py']*1e6:9.1f} us (x{rows[-1]['hooks_ratio']:.2f})")
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Scheduling-round time: compiled .gfp vs Python ({meta['when']})", "",
             f"{meta['gpus']} free GPUs, median of {meta['repeats']} interleaved runs, "
             f"{meta['python']} on {meta['machine']} (load average {meta['loadavg']}).", "",
             "| policy | waiting | round .gfp (µs) | round Python (µs) | ratio | hooks .gfp (µs) | "
             "hooks Python (µs) | ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['waiting']} | {r['round_gfp_us']:.1f} | {r['round_py_us']:.1f} | "
                     f"{r['round_ratio']:.2f}x | {r['hooks_gfp_us']:.1f} | {r['hooks_py_us']:.1f} | "
                     f"{r['hooks_ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="5 repeats (round_time_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 5)
    stem = "round_time_quick" if args.quick else "round_time"
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    pairs = {
        "edf_best_fit": (load_policy(ROOT / "gfdit" / "data" / "policies" / "edf_best_fit.gfp"), edf_best_fit()),
        "static_sp": (load_policy(ROOT / "gfdit" / "data" / "policies" / "static_sp.gfp"), static_sp()),
    }
    rows = measure(pairs, cost, args.repeats)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gpus": GPUS,
            "repeats": args.repeats, "python": platform.python_version(),
            "machine": platform.machine(), "loadavg": round(os.getloadavg()[0], 2)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(rows, meta))
    print(f"wrote {RESULTS / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
