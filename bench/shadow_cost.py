"""What a shadow candidate costs the engine loop: live round time without and with a shadow.

    python3 bench/shadow_cost.py [--quick] [--gpus 8] [--time-scale 0.01]

Replays the shipped `short-4gpu` trace (107 requests; at most `--requests`) through an
emulated server twice: live policy `default` alone, then with `slo_grow`
shadowed beside it (`Client.shadow_policy`). Prints the live rounds' p50/p99
(`control_plane.rounds`, rounds with a waiting request and a free rank) in
both runs, and the shadow's own round mean and max (`status()["shadow"]`).
Writes bench/results/shadow_cost.json (`_quick` with --quick).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gfdit.client import Client
from gfdit.client.replay import replay
from gfdit.engine.workload import Workload, shipped_workload
from gfdit.server import Server, ServerConfig

RESULTS = Path(__file__).resolve().parent / "results"


def run(args, shadow: str | None) -> dict:
    workload = Workload.load(shipped_workload("short-4gpu"))
    workload.requests = workload.requests[:args.requests]
    config = ServerConfig(executor="emulated", num_gpus=args.gpus, cost_model="qwen-h20", policy="default",
                          address="tcp://127.0.0.1:0", time_scale=args.time_scale)
    with Server(config) as server, Client(server.address, timeout=120) as client:
        if shadow:
            assert client.shadow_policy(shadow).ok
        for handle in replay(client, workload, args.time_scale):
            handle.result(timeout=600)
        rounds = client.metrics()["control_plane"]["rounds"]
        return {"live_rounds": rounds, "shadow": client.status()["shadow"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 requests (shadow_cost_quick.json)")
    args = parser.parse_args()
    if args.quick:
        args.requests = min(args.requests, 20)
    result = {"args": vars(args), "without": run(args, None), "with": run(args, "slo_grow")}
    for name in ("without", "with"):
        for bucket, r in result[name]["live_rounds"].items():
            print(f"{name:>7} shadow: live rounds {bucket} queued: {r['count']} rounds, p50 {r['p50_s'] * 1e6:.0f} us, "
                  f"p99 {r['p99_s'] * 1e6:.0f} us")
    s = result["with"]["shadow"]
    print(f"shadow rounds: {s['rounds']} (differ {s['differ']}), mean {s['round_mean_s'] * 1e6:.0f} us, "
          f"max {s['round_max_s'] * 1e6:.0f} us; predicted {s['predicted']}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("shadow_cost_quick.json" if args.quick else "shadow_cost.json")
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
