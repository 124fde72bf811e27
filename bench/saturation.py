"""Saturation: all-small requests far beyond capacity at 4 GPUs, against the physical limit.

    python3 bench/saturation.py [--quick] [--requests 400] [--overload 3]

Every request is the `short` profile's S class (512x512, 50 steps, deadline
1.5 x t_single), arriving as Poisson at `--overload` times the most the
GPUs could serve. Throughput (completed / span) of every shipped policy, the
fixed pipeline (`static_sp` width 4) and each static width (1, 2, 4), next
to the physical limit from the cost model: a request at width k occupies k
ranks for its time at k, so k x t(k) GPU-seconds, and 4 GPUs serve at most
4 / min_k(k x t(k)) requests per second. Policies run as shipped (a queue
cap, e.g. edf_best_fit's 512, would show as rejections). Writes
bench/results/saturation{,_quick}.json and .md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from gfdit.engine.costmodel import CostModel
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import load_profile
from gfdit.policies import fit_policy, resolve_policy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policies import ROOT, runs  # noqa: E402  (bench/policies.py: the policy list)

RESULTS = ROOT / "bench" / "results"
GPUS, WIDTHS, TEXT = 4, (1, 2, 4), 512


def small_request(i: int, arrival_s: float, t_single: float) -> dict:
    cls = load_profile("short")["classes"]["S"]
    return {"request_id": f"S_{i:06d}", "request_class": "S", "arrival_ms": arrival_s * 1e3,
            "height": cls["height"], "width": cls["width"], "num_frames": 1, "num_steps": cls["num_steps"],
            "text_seq_len": TEXT, "deadline_ms": (arrival_s + cls["alpha"] * t_single) * 1e3,
            "profiled_optimal_latency_ms": t_single * 1e3}


def limits(cost: CostModel, shape) -> list[dict]:
    """Per width: seconds per request, GPU-seconds per request and the most 4 GPUs can serve."""
    rows = []
    for k in WIDTHS:
        t = cost.remaining_s(shape, k, encoded=False, steps_left=shape.steps)
        rows.append({"width": k, "request_s": t, "gpu_s": k * t, "max_rpm": 60.0 * GPUS / (k * t)})
    return rows


def trace(n: int, overload: float, cost: CostModel) -> tuple[Workload, list[dict]]:
    probe = Workload.from_json({"requests": [small_request(0, 0.0, 1.0)]}).requests[0]
    per_width = limits(cost, probe.shape)
    rate = overload * max(r["max_rpm"] for r in per_width) / 60.0
    t_single = cost.t_single(probe.shape)
    rng, t, records = random.Random(7), 0.0, []
    for i in range(n):
        t += rng.expovariate(rate)
        records.append(small_request(i, t, t_single))
    return Workload.from_json({"description": "saturation: all S", "requests": records}), per_width


def measure(workload: Workload, cost: CostModel) -> list[dict]:
    chosen = {f"static_sp (sp={k})": ("static_sp", {"sp": str(k)}) for k in WIDTHS}
    chosen.update({label: v for label, v in runs(GPUS).items() if not label.startswith("static_sp")})
    rows = []
    for label, (name, params) in chosen.items():
        policy, _ = fit_policy(resolve_policy(name, params), name, params, cost, GPUS)  # pools sized for GPUS
        m = simulate(policy, workload, cost, GPUS, time_rounds=False).metrics["overall"]
        rows.append({"policy": label, "completed": m["completed"], "rejected": m["rejected"],
                     "throughput_rpm": m["throughput_rpm"], "goodput_rpm": m["goodput_rpm"],
                     "slo_attainment": m["slo_attainment"], "gpu_utilization": m["gpu_utilization"],
                     "mean_latency_s": m["mean_latency_s"]})
        print(f"{label:18s} {m['throughput_rpm']:6.2f}/min  completed {m['completed']}  "
              f"rejected {m['rejected']}  util {m['gpu_utilization']:.2f}")
    return rows


def markdown(doc: dict) -> str:
    meta, limit = doc["meta"], max(r["max_rpm"] for r in doc["limits"])
    fixed = next(r for r in doc["rows"] if r["policy"] == "static_sp (sp=4)")["throughput_rpm"]
    best_static = max(r["throughput_rpm"] for r in doc["rows"] if r["policy"].startswith("static_sp"))
    lines = [f"# Saturation ({meta['when']})", "",
             f"{meta['requests']} S requests (512², 50 steps) arriving at {meta['overload']}x the physical limit "
             f"on {GPUS} GPUs, qwen-h20 cost model.", "",
             "| width | request s | GPU-s / request | most requests/min on 4 GPUs |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['width']} | {r['request_s']:.2f} | {r['gpu_s']:.2f} | {r['max_rpm']:.2f} |"
              for r in doc["limits"]]
    lines += ["", "| policy | completed | rejected | throughput (/min) | of the limit | vs fixed (sp=4) "
              "| vs best static | GPU util |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        thr = r["throughput_rpm"]
        lines.append(f"| {r['policy']} | {r['completed']} | {r['rejected']} | {thr:.2f} | {thr / limit:.0%} | "
                     f"{thr / fixed:.2f}x | {thr / best_static:.2f}x | {r['gpu_utilization']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 requests")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--overload", type=float, default=3.0, help="arrival rate / the physical limit")
    args = parser.parse_args()
    n = 100 if args.quick else args.requests
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    workload, per_width = trace(n, args.overload, cost)
    rows = measure(workload, cost)
    doc = {"meta": {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "requests": n,
                    "overload": args.overload, "gpus": GPUS}, "limits": per_width, "rows": rows}
    stem = "saturation_quick" if args.quick else "saturation"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
