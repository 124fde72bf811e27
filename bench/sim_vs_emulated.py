"""The same trace through the simulator and through the live server with emulated workers.

    python3 bench/sim_vs_emulated.py [--workload short-4gpu] [--policy edf_best_fit]
        [--gpus 4] [--time-scale 0.2] [--out bench/results/sim_vs_emulated]
    python3 bench/sim_vs_emulated.py --sizes 4,8,16 [--profile short] [--load 0.9] [--seed 1]

`--sizes` generates one trace per GPU count from a workload profile (same load
and seed) and writes one comparison per size plus a table over sizes
(`..._sizes.md`); `--quick` is `--sizes 4` on a trace 0.15 as long.

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
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gfdit.client import Client  # noqa: E402
from gfdit.client.replay import replay  # noqa: E402
from gfdit.engine.costmodel import CostModel  # noqa: E402
from gfdit.policies import fit_policy, resolve_policy  # noqa: E402
from gfdit.engine import simulator  # noqa: E402
from gfdit.engine.simulator import simulate  # noqa: E402
from gfdit.engine.workload import Workload, shipped_cost_model, shipped_workload  # noqa: E402
from gfdit.engine.workload_gen import generate, load_profile  # noqa: E402
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


def fitted(args, cost_model: CostModel):
    """The policy fitted to the cluster as the server fits it (widths, pools sized by the cluster)."""
    return fit_policy(resolve_policy(args.policy), args.policy, {}, cost_model, args.gpus)[0]


def compare(workload: Workload, args) -> dict:
    """One trace through the simulator and the emulated server; writes args.out.{json,md}."""
    cost_model = CostModel.load(args.cost_model)
    simulated = simulate(fitted(args, cost_model), workload, cost_model, args.gpus)
    sim = simulated.metrics
    emulated, wall, latencies = run_server(workload, args)
    per_request = request_deltas(simulated.outcomes, latencies)
    control = emulated.pop("control_plane", {})
    emu = {"overall": emulated["overall"], "classes": emulated["classes"]}
    gaps = {"mean_latency_rel": relative_gap(sim["overall"]["mean_latency_s"], emu["overall"]["mean_latency_s"]),
            "slo_attainment_abs": emu["overall"]["slo_attainment"] - sim["overall"]["slo_attainment"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"args": dict(vars(args)), "wall_s": wall, "gaps": gaps, "control_plane": control, "per_request": per_request,
           "simulator": {k: {kk: v.get(kk) for kk in KEYS} for k, v in [("overall", sim["overall"])]} |
           {"classes": sim["classes"]}, "emulated": emu}
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2, default=str))
    table = markdown(sim, emu, args, wall, control) + (
        f"\nPer request (emulated vs simulated latency): median {per_request['median_rel'] * 100:+.1f} %, "
        f"{per_request['within_5pct'] * 100:.0f} % of requests within 5 %, "
        f"largest {per_request['max_rel'] * 100:+.1f} % ({per_request['max_id']}).\n")
    out.with_suffix(".md").write_text(table)
    print(table)
    return doc


def sizes_table(docs: list[dict]) -> str:
    lines = ["| GPUs | requests | policy | mean latency sim -> server | gap | SAR sim -> server | gap "
             "| per-request median gap | largest (request) | wall s |", "|---:|---:|---|---|---:|---|---:|---:|---|---:|"]
    for d in docs:
        s, e, g, pr = d["simulator"]["overall"], d["emulated"]["overall"], d["gaps"], d["per_request"]
        lines.append(f"| {d['args']['gpus']} | {s['requests']} | `{Path(d['args']['policy']).stem}` | "
                     f"{s['mean_latency_s']:.2f} -> {e['mean_latency_s']:.2f} s | {g['mean_latency_rel'] * 100:+.1f} % | "
                     f"{s['slo_attainment'] * 100:.1f} -> {e['slo_attainment'] * 100:.1f} % | "
                     f"{g['slo_attainment_abs'] * 100:+.1f} pp | {pr['median_rel'] * 100:+.1f} % | "
                     f"{pr['max_rel'] * 100:+.0f} % ({pr['max_id']}) | {d['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def jittered(workload: Workload, ms: float, seed: int) -> Workload:
    """The same trace with every arrival late by up to `ms` (uniform), deadlines unchanged: what a
    few milliseconds of control-plane delay do to a request, without the server."""
    rng = random.Random(seed)
    data = workload.to_json()
    for rec in data["requests"]:
        rec["arrival_ms"] = rec["arrival_ms"] + rng.uniform(0.0, ms)
    return Workload.from_json(data)


class LateTasks(simulator.SimExecutor):
    """The simulator's executor with every task ending late by up to `late_s` (uniform, seeded):
    the server's per-task control-plane overhead, which the engine's estimates do not include."""

    late_s = 0.0

    def start(self, dispatch, now: float) -> None:
        delay = self._rng.uniform(0.0, self.late_s)
        super().start(replace(dispatch, duration_est=dispatch.duration_est + delay), now)


LATE_MS = (10.0, 20.0, 50.0)  # engine ms; the server's per-task overhead p50 / p99 at time scale 0.2: ~4 / 14-29 ms


def jitter_gaps(workload: Workload, args, seeds: int = 5) -> dict:
    """Simulator against itself, perturbed by milliseconds: arrivals late by up to 5 ms, and
    (separately) every task late by up to 10 / 20 / 50 ms. A policy whose decisions flip on
    milliseconds shows gaps here of the size it shows against the server."""
    cost_model = CostModel.load(args.cost_model)
    policy = fitted(args, cost_model)
    base = simulate(policy, workload, cost_model, args.gpus, time_rounds=False)
    mean = base.metrics["overall"]["mean_latency_s"]
    latency = {o.id: o.latency for o in base.outcomes}

    def gap(result) -> dict:
        rel = {o.id: (o.latency - latency[o.id]) / latency[o.id] for o in result.outcomes if o.latency}
        worst = max(rel, key=lambda k: abs(rel[k]))
        return {"mean_gap": relative_gap(mean, result.metrics["overall"]["mean_latency_s"]),
                "worst_request": worst, "worst_rel": rel[worst]}

    out = {"arrivals_5ms": [gap(simulate(policy, jittered(workload, 5.0, seed), cost_model, args.gpus,
                                         time_rounds=False)) for seed in range(seeds)]}
    original = simulator.SimExecutor
    simulator.SimExecutor = LateTasks  # this process only: simulate() builds its executor by this name
    try:
        for late_ms in LATE_MS:
            LateTasks.late_s = late_ms / 1e3
            out[f"tasks_{late_ms:.0f}ms"] = [gap(simulate(policy, workload, cost_model, args.gpus, time_rounds=False,
                                                          seed=seed)) for seed in range(seeds)]
    finally:
        simulator.SimExecutor = original
    return out


def generated(gpus: int, args) -> Workload:
    """The `short` profile at `gpus` ranks (same load, seed and duration scale for every size)."""
    data = generate(load_profile(args.profile), CostModel.load(args.cost_model), gpus, args.load, args.seed,
                    duration_scale=args.duration_scale)
    return Workload.from_json(data)


def jitter_report(args) -> int:
    rows = []
    for gpus in (int(g) for g in args.sizes.split(",")):
        args.gpus = gpus
        rows.append({"gpus": gpus, **jitter_gaps(generated(gpus, args), args)})
    kinds = ["arrivals_5ms"] + [f"tasks_{ms:.0f}ms" for ms in LATE_MS]
    lines = [f"Simulator against itself, 5 seeds each: arrivals late by up to 5 ms, or every task late by up to "
             f"10 / 20 / 50 ms of engine time (uniform); the emulated server's per-task overhead is p50 ~4 ms, "
             f"p99 14-29 ms of engine time at time scale 0.2. Profile `{args.profile}` at load {args.load} "
             f"(seed {args.seed}), policy `{Path(args.policy).stem}`. Cells: mean-latency gap, smallest .. largest "
             f"over the seeds; in brackets the request that moved most and by how much.", "",
             "| GPUs | " + " | ".join(kinds) + " |", "|---:|" + "---|" * len(kinds)]
    for r in rows:
        cells = []
        for kind in kinds:
            gaps = [g["mean_gap"] * 100 for g in r[kind]]
            worst = max(r[kind], key=lambda g: abs(g["worst_rel"]))
            cells.append(f"{min(gaps):+.1f} .. {max(gaps):+.1f} % ({worst['worst_request']} "
                         f"{worst['worst_rel'] * 100:+.0f} %)")
        lines.append(f"| {r['gpus']} | " + " | ".join(cells) + " |")
    Path(f"{args.out}_jitter.md").write_text("\n".join(lines) + "\n")
    Path(f"{args.out}_jitter.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="short-4gpu", help="shipped workload name or a path")
    parser.add_argument("--policy", default="edf_best_fit")
    parser.add_argument("--cost-model", default=str(shipped_cost_model("qwen-h20")))
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=0.2,
                        help="wall seconds per engine second (0.2: a 10-minute trace in about 2 minutes)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim_vs_emulated"))
    parser.add_argument("--sizes", help="comma-separated GPU counts (e.g. 4,8,16): a trace generated per size "
                        "from --profile at --load, one comparison each, and a table over sizes")
    parser.add_argument("--profile", default="short")
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration-scale", type=float, default=1.0)
    parser.add_argument("--jitter-only", action="store_true",
                        help="with --sizes: only the simulator against itself, arrivals or tasks made late by "
                        "milliseconds (no server; ..._jitter.md)")
    parser.add_argument("--quick", action="store_true",
                        help="--sizes 4 on a trace 0.15 as long (sim_vs_emulated_quick_sizes.*)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.duration_scale, args.out = "4", 0.15, args.out + "_quick"
    if not args.sizes:
        path = Path(args.workload) if args.workload.endswith(".json") else shipped_workload(args.workload)
        compare(Workload.load(path), args)
        return 0
    if args.jitter_only:
        return jitter_report(args)
    base, docs = args.out, []
    for gpus in (int(g) for g in args.sizes.split(",")):
        args.gpus, args.out, args.workload = gpus, f"{base}_{gpus}gpu", f"{args.profile} load {args.load}"
        docs.append(compare(generated(gpus, args), args))
    table = (f"Profile `{args.profile}` at load {args.load} (seed {args.seed}, duration x{args.duration_scale}), "
             f"time scale {args.time_scale}, cost model `{Path(args.cost_model).name}`.\n\n" + sizes_table(docs))
    Path(f"{base}_sizes.md").write_text(table)
    Path(f"{base}_sizes.json").write_text(json.dumps([{k: d[k] for k in ("args", "wall_s", "gaps")} |
                                                      {"per_request_median": d["per_request"]["median_rel"]}
                                                      for d in docs], indent=2, default=str))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
