"""What the OpenAI-compatible HTTP gateway adds per request over the ZeroMQ client.

    python3 bench/http_gateway.py [--requests 300] [--quick] [--out bench/results/http_gateway]

One emulated server (1 worker, qwen-h20 cost model at a time scale of 1e-5: a task's
emulated work is ~10 us) with the gateway in-process (`http_port`). The same request
(1024x1024, 1 step, emulated: no image) is sent one at a time, interleaved: through
`gfdit.Client` (submit -> result), through plain HTTP (`POST /v1/images/generations`,
one keep-alive httpx connection) and through the `openai` package
(`images.generate`). The gateway's overhead is the difference of the medians (p50);
p90 and p99 are reported too. Writes JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gfdit.client import Client  # noqa: E402
from gfdit.engine.metrics import percentile  # noqa: E402
from gfdit.server import Server, ServerConfig  # noqa: E402

QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")
POLICY = "policy one\nparam widths = {1}\norder by req.arrival\nwidth * = 1\nplace sticky, lowest\n"
BODY = {"prompt": "a fox", "size": "1024x1024", "steps": 1, "seed": 1}


def timed(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def run(requests: int, policy_path: Path) -> dict:
    import httpx
    import openai

    config = ServerConfig(executor="emulated", num_gpus=1, cost_model=QWEN, policy=str(policy_path),
                          address="tcp://127.0.0.1:0", time_scale=1e-5, watch_policy=False, http_port=0)
    server = Server(config).start_background()
    try:
        with Client(server.address, timeout=60) as client, httpx.Client(base_url=server.http_url) as http:
            sdk = openai.OpenAI(base_url=server.http_url + "/v1", api_key="unused", max_retries=0)
            ways = {
                "zmq_client": lambda: client.submit("a fox", height=1024, width=1024, steps=1, seed=1).result(),
                "http_post": lambda: http.post("/v1/images/generations", json=BODY).raise_for_status(),
                "openai_sdk": lambda: sdk.images.generate(prompt="a fox", size="1024x1024",
                                                          extra_body={"steps": 1, "seed": 1}),
            }
            for call in ways.values():  # warm-up: connections, first imports
                timed(call, 5)
            samples: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(requests // 10):  # interleaved in rounds of 10, so load drifts hit all three alike
                for name, call in ways.items():
                    samples[name] += timed(call, 10)
    finally:
        server.stop()
    rows = {name: {"p50_ms": 1e3 * percentile(s, 50), "p90_ms": 1e3 * percentile(s, 90),
                   "p99_ms": 1e3 * percentile(s, 99), "n": len(s)} for name, s in samples.items()}
    base = rows["zmq_client"]["p50_ms"]
    for row in rows.values():
        row["overhead_p50_ms"] = row["p50_ms"] - base
    return {"requests_per_way": requests, "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
            "rows": rows}


def table(result: dict) -> str:
    lines = [f"# HTTP gateway overhead ({result['requests_per_way']} sequential requests per way, "
             f"{result['cpus']} CPUs, load average {result['load_average']:.1f})", "",
             "| way | p50 ms | p90 ms | p99 ms | p50 over the ZeroMQ client, ms |", "|---|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | "
                     f"{row['overhead_p50_ms']:+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per way (default 300)")
    parser.add_argument("--quick", action="store_true", help="40 requests per way; results *_quick")
    parser.add_argument("--out", default=None, help="output path without suffix")
    args = parser.parse_args()
    requests = 40 if args.quick else args.requests
    out = Path(args.out or ROOT / "bench" / "results" / ("http_gateway_quick" if args.quick else "http_gateway"))
    out.parent.mkdir(parents=True, exist_ok=True)
    policy = out.parent / ".http_gateway_policy.gfp"
    policy.write_text(POLICY)
    try:
        result = run(requests, policy)
    finally:
        policy.unlink(missing_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
