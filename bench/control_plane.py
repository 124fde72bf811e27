"""What the serving control plane costs, measured on a live server with emulated workers.

    python3 bench/control_plane.py [--out bench/results/control_plane]

1. Per-task overhead: requests of 1-step chunks whose emulated work is ~0, run
   one at a time (latency), 64 at once on 16 workers and 128 at once on 64
   workers (throughput). Overhead
   = a task's wall time at the server minus the workers' own time.
2. Scheduling-round time inside the server at 10 / 100 / 1000 waiting requests
   (edf_best_fit; the queue grows while 1,000 requests arrive faster than 4
   workers serve them; rounds with a free rank and a waiting request).
3. Client round trips: ping, and submit -> accepted.
Writes JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gfdit.client import Client  # noqa: E402
from gfdit.engine.metrics import percentile  # noqa: E402
from gfdit.server import Server, ServerConfig  # noqa: E402

QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")
STEP_POLICY = """policy one_step_tasks
param chunk = 1
param widths = {1}
order by req.arrival
width * = 1
place sticky, lowest
"""
EDF = str(ROOT / "gfdit" / "data" / "policies" / "edf_best_fit.gfp")


def server(policy: str, gpus: int, time_scale: float, **params: str) -> Server:
    config = ServerConfig(executor="emulated", num_gpus=gpus, cost_model=QWEN, policy=policy,
                          address="tcp://127.0.0.1:0", time_scale=time_scale, watch_policy=False,
                          policy_params=params)
    return Server(config).start_background()


def task_overhead(policy: str, gpus: int, requests: int, concurrent: bool, steps: int = 50) -> dict:
    """Per-task overhead; also the server's start time, its scheduling rounds and the CPU seconds
    of this process (server, client) and of the worker processes (counted once they exit)."""
    cpu0 = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    t_start = time.perf_counter()
    srv = server(policy, gpus, time_scale=1e-5)  # emulated work of a task: ~10 us
    start_s = time.perf_counter() - t_start
    try:
        with Client(srv.address, timeout=60) as client:
            t0 = time.perf_counter()
            if concurrent:
                handles = [client.submit("x", height=512, width=512, steps=steps, seed=i) for i in range(requests)]
                for h in handles:
                    h.result(timeout=600)
            else:
                for i in range(requests):
                    client.submit("x", height=512, width=512, steps=steps, seed=i).result(timeout=600)
            wall = time.perf_counter() - t0
            control = client.metrics()["control_plane"]
    finally:
        srv.stop()
    cpu1 = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    cpu = [b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(cpu0, cpu1, strict=True)]
    return {"gpus": gpus, "requests": requests, "tasks": control["tasks"], "wall_s": wall, "start_s": start_s,
            "server_client_cpu_s": cpu[0], "workers_cpu_s": cpu[1], "rounds": control.get("rounds", {}),
            "tasks_per_s": control["tasks"] / wall, "overhead_mean_ms": control["overhead_mean_s"] * 1e3,
            "overhead_p50_ms": control["overhead_p50_s"] * 1e3, "overhead_p99_ms": control["overhead_p99_s"] * 1e3}


def round_times(n: int = 1000) -> dict:
    srv = server(EDF, gpus=4, time_scale=0.01, queue_cap=str(10 * n))  # arrivals outpace 4 workers
    try:
        with Client(srv.address, timeout=60) as client:
            for i in range(n):
                client.submit("q", height=1024, width=1024, steps=50, seed=i)
            time.sleep(3.0)  # rounds at task ends, with the queue long
            rounds = client.metrics()["control_plane"]["rounds"]
    finally:
        srv.stop()
    return {bucket: {"count": r["count"], "p50_us": r["p50_s"] * 1e6, "p99_us": r["p99_s"] * 1e6}
            for bucket, r in rounds.items()}


def round_trips(n: int = 200) -> dict:
    srv = server(EDF, gpus=4, time_scale=1.0)
    try:
        with Client(srv.address, timeout=60) as client:
            pings, submits = [], []
            for _ in range(n):
                t = time.perf_counter()
                client.ping()
                pings.append(time.perf_counter() - t)
            for i in range(n // 4):
                t = time.perf_counter()
                client.submit("rt", height=512, width=512, steps=2, seed=i)
                submits.append(time.perf_counter() - t)
    finally:
        srv.stop()
    return {"ping_p50_ms": percentile(pings, 50) * 1e3, "ping_p99_ms": percentile(pings, 99) * 1e3,
            "submit_p50_ms": percentile(submits, 50) * 1e3, "submit_p99_ms": percentile(submits, 99) * 1e3}


def markdown(doc: dict) -> str:
    lines = ["| per-task overhead | GPUs | requests | tasks | tasks/s | mean ms | p50 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ("sequential", "concurrent", "concurrent_64"):
        r = doc[name]
        lines.append(f"| {name} | {r['gpus']} | {r['requests']} | {r['tasks']} | {r['tasks_per_s']:.0f} | "
                     f"{r['overhead_mean_ms']:.2f} | {r['overhead_p50_ms']:.2f} | {r['overhead_p99_ms']:.2f} |")
    lines += ["", "| waiting requests | rounds | p50 us | p99 us |", "|---|---:|---:|---:|"]
    for bucket, r in doc["rounds"].items():
        lines.append(f"| {bucket} | {r['count']} | {r['p50_us']:.0f} | {r['p99_us']:.0f} |")
    rt = doc["round_trips"]
    lines += ["", f"Client round trips: ping p50 {rt['ping_p50_ms']:.2f} ms / p99 {rt['ping_p99_ms']:.2f} ms; "
              f"submit -> accepted p50 {rt['submit_p50_ms']:.2f} ms / p99 {rt['submit_p99_ms']:.2f} ms."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "control_plane"))
    parser.add_argument("--requests", type=int, default=20, help="sequential requests (50 one-step tasks each)")
    parser.add_argument("--quick", action="store_true", help="5 / 16 / 32 requests, 200 queued (control_plane_quick.*)")
    args = parser.parse_args()
    q = args.quick
    if q:
        args.requests, args.out = min(args.requests, 5), args.out + "_quick"
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "one_step_tasks.gfp"
        policy.write_text(STEP_POLICY)
        doc = {"sequential": task_overhead(str(policy), gpus=1, requests=args.requests, concurrent=False),
               "concurrent": task_overhead(str(policy), gpus=4 if q else 16, requests=16 if q else 64,
                                           concurrent=True),
               "concurrent_64": task_overhead(str(policy), gpus=8 if q else 64, requests=32 if q else 128,
                                              concurrent=True),
               "rounds": round_times(200 if q else 1000), "round_trips": round_trips(40 if q else 200)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    table = markdown(doc)
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
