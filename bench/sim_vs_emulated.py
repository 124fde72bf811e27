"""The same trace through the simulator and through the live server with emulated workers.

    python3 bench/sim_vs_emulated.py [--workload short-4gpu] [--policy edf_best_fit]
        [--gpus 4] [--time-scale 0.2] [--out bench/results/sim_vs_emulated]

The simulator runs the trace on a virtual clock. The server runs it for real:
a client submits every request at its (scaled) arrival time over ZeroMQ, the
engine loop schedules it with the same policy and cost model, and emulated
worker processes sleep the cost model's time (scaled). Latencies are in engine
seconds in both, so the gap is what the control plane (sockets, polling,
process scheduling on this machine) adds. Writes JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gfdit.client import Client  # noqa: E402
from gfdit.client.replay import replay  # noqa: E402
from gfdit.engine.costmodel import CostModel  # noqa: E402
from gfdit.policies import resolve_policy  # noqa: E402
from gfdit.engine.simulator import simulate  # noqa: E402
from gfdit.engine.workload import Workload, shipped_cost_model, shipped_workload  # noqa: E402
from gfdit.server import Server, ServerConfig  # noqa: E402

KEYS = ("requests", "completed", "slo_attainment", "mean_latency_s", "p50_latency_s", "p95_latency_s",
        "throughput_rpm", "gpu_utilization", "migrations")


def run_server(workload: Workload, args) -> tuple[dict, float, dict]:
    """Replay the trace through a live emulated server; returns its metrics summary and wall time."""
    config = ServerConfig(executor="emulated", num_gpus=args.gpus, cost_model=str(args.cost_model),
                          policy=args.policy, address="tcp://127.0.0.1:0", time_scale=args.time_scale,
                          watch_policy=False)
    server = Server(config).start_background()
    try:
        with Client(server.address, timeout=60) as client:
            t0 = time.monotonic()
            handles = replay(client, workload, args.time_scale)
            latencies = {}
            for handle in handles:
                final = list(handle.progress(timeout=3600))[-1]
                latencies[handle.request_id] = final.latency_s if final.state == "completed" else None
            wall = time.monotonic() - t0
            return client.metrics(), wall, latencies
    finally:
        server.stop()


def request_deltas(outcomes, latencies: dict) -> dict:
    """Per-request relative latency differences: uniform inflation (overhead) or a few diverging
    decisions (timing jitter changes who gets which ranks)?"""
    rel = {}
    for o in outcomes:
        real = latencies.get(o.id)
        if o.latency and real is not None:
            rel[o.id] = (real - o.latency) / o.latency
    values = sorted(rel.values())
    worst = max(rel, key=lambda k: abs(rel[k]))
    return {"requests": len(values), "median_rel": values[len(values) // 2],
            "within_5pct": sum(abs(v) <= 0.05 for v in values) / len(values),
            "max_rel": rel[worst], "max_id": worst, "by_request": rel}


def relative_gap(sim: float | None, real: float | None) -> float | None:
    if sim is None or real is None:
        return None
    return (real - sim) / sim if sim else real - sim


def markdown(sim: dict, emu: dict, args, wall: float, control: dict) -> str:
    lines = [f"Trace `{args.workload}`, policy `{args.policy}`, {args.gpus} GPUs, cost model "
             f"`{Path(args.cost_model).name}`, time scale {args.time_scale} (server run took {wall:.0f} s wall).", "",
             "| scope | metric | simulator | emulated server | gap |", "|---|---|---:|---:|---:|"]
    scopes = [("overall", sim["overall"], emu["overall"])]
    scopes += [(name, block, emu["classes"].get(name, {})) for name, block in sim["classes"].items()]
    for scope, s, e in scopes:
        for key in ("mean_latency_s", "slo_attainment", "p95_latency_s", "completed"):
            sv, ev = s.get(key), e.get(key)
            gap = relative_gap(sv, ev) if key != "slo_attainment" else (None if sv is None or ev is None else ev - sv)
            unit = "pp" if key == "slo_attainment" else "%"
            shown = "-" if gap is None else (f"{gap * 100:+.1f} {unit}")
            fmt = (lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
            lines.append(f"| {scope} | {key} | {fmt(sv)} | {fmt(ev)} | {shown} |")
    p50, p99 = control.get("overhead_p50_s"), control.get("overhead_p99_s")
    if p50 is not None:
        lines += ["", f"Per-task control-plane overhead during the run: p50 {p50 * 1e3:.2f} ms, "
                  f"p99 {p99 * 1e3:.2f} ms wall over {control['tasks']} tasks "
                  f"(engine-time equivalent: / {args.time_scale})."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="short-4gpu", help="shipped workload name or a path")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "edf_best_fit.gfp"))
    parser.add_argument("--cost-model", default=str(shipped_cost_model("qwen-h20")))
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=0.2,
                        help="wall seconds per engine second (0.2: a 10-minute trace in about 2 minutes)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim_vs_emulated"))
    args = parser.parse_args()
    path = Path(args.workload) if args.workload.endswith(".json") else shipped_workload(args.workload)
    workload = Workload.load(path)
    cost_model = CostModel.load(args.cost_model)
    simulated = simulate(resolve_policy(args.policy), workload, cost_model, args.gpus)
    sim = simulated.metrics
    emulated, wall, latencies = run_server(workload, args)
    per_request = request_deltas(simulated.outcomes, latencies)
    control = emulated.pop("control_plane", {})
    emu = {"overall": emulated["overall"], "classes": emulated["classes"]}
    gaps = {"mean_latency_rel": relative_gap(sim["overall"]["mean_latency_s"], emu["overall"]["mean_latency_s"]),
            "slo_attainment_abs": emu["overall"]["slo_attainment"] - sim["overall"]["slo_attainment"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"args": vars(args), "wall_s": wall, "gaps": gaps, "control_plane": control, "per_request": per_request,
           "simulator": {k: {kk: v.get(kk) for kk in KEYS} for k, v in [("overall", sim["overall"])]} |
           {"classes": sim["classes"]}, "emulated": emu}
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2, default=str))
    table = markdown(sim, emu, args, wall, control) + (
        f"\nPer request (emulated vs simulated latency): median {per_request['median_rel'] * 100:+.1f} %, "
        f"{per_request['within_5pct'] * 100:.0f} % of requests within 5 %, "
        f"largest {per_request['max_rel'] * 100:+.1f} % ({per_request['max_id']}).\n")
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
