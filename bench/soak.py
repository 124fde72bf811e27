"""A long run against one emulated server: memory, metrics latency, and metrics pollers.

    python3 bench/soak.py [--requests 100000] [--gpus 16] [--out bench/results/soak]

One server process (emulated workers: no torch, 16 "GPUs", a task's emulated
work ~0), 64x64 one-step requests, whole trajectory per task. The bench
submits over a raw DEALER socket (no subscriptions) keeping `--window`
requests in flight, and counts ended requests from `status()`.

- Memory: the server process's RSS (VmRSS) once 10,000 requests have ended and
  again at the end (both with nothing in flight).
- Throughput with and without a metrics poller, side by side in one run: after
  the first 10,000, the rest goes in blocks of `--block` requests, cycling
  "no poller" / "a second process calling metrics() in a loop" / "a second
  process that only burns a CPU core" (the control: what any busy process
  costs the server on this machine, without talking to it); each block's rate
  is ended requests per second; the figures are the means of each kind.
- metrics() latency: `--probes` calls at the end (after every request ended),
  50 ms apart, p50 / p99; and the poller's calls during its blocks (a loop is
  paced by the server to one reply per 20 ms, so its p50 is about that).
Writes JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gfdit.engine.metrics import percentile  # noqa: E402

QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")
POLICY = """policy soak
param chunk = all
param widths = {1}
class S { slo = 4x }
order by req.arrival
width * = 1
place lowest
"""


def serve(policy: str, gpus: int, ready) -> None:
    """The server process: emulated workers, ready -> (address, pid)."""
    from gfdit.server import Server, ServerConfig

    config = ServerConfig(executor="emulated", num_gpus=gpus, cost_model=QWEN, policy=policy,
                          address="tcp://127.0.0.1:0", time_scale=1e-6, watch_policy=False)
    server = Server(config).start()
    ready.put((server.address, os.getpid()))
    server.serve_forever()


def poll_metrics(address: str, started, stop, out) -> None:
    """A client calling metrics() in a loop until `stop`; sends its latencies to `out`."""
    from gfdit.client import Client

    latencies = []
    with Client(address, timeout=60) as client:
        client.metrics()
        started.set()
        while not stop.is_set():
            t0 = time.perf_counter()
            client.metrics()
            latencies.append(time.perf_counter() - t0)
    out.put(latencies)


def burn(address: str, started, stop, out) -> None:
    """The control: a process as busy as a spinning client that never talks to the server."""
    spins = 0
    started.set()
    while not stop.is_set():
        for _ in range(10_000):
            spins += 1
    out.put([])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Feeder:
    """Submits over a raw DEALER (no subscription), keeps `window` in flight, counts ended."""

    def __init__(self, address: str, window: int):
        import zmq

        from gfdit.client import Client
        from gfdit.protocol import GenParams

        self._zmq = zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.client = Client(address, timeout=60)
        self.params = GenParams(prompt="soak", height=64, width=64, steps=1, seed=0)
        self.window, self.sent, self.ended, self.call = window, 0, 0, 0

    def run_until(self, target: int) -> float:
        """Submit until `target` requests were sent and ended; returns the wall seconds."""
        from gfdit.protocol import Submit, encode_frames

        t0 = time.perf_counter()
        while self.ended < target:
            while self.sent < target and self.sent - self.ended < self.window:
                self.call += 1
                msg = Submit(params=self.params, request_class="S", subscribe=False, call_id=self.call)
                self.sock.send_multipart(encode_frames(msg))
                self.sent += 1
            self._drain()
            time.sleep(0.02)
            outcomes = self.client.status()["outcomes"]
            self.ended = sum(outcomes.values())
            if outcomes.get("rejected") or outcomes.get("failed"):
                raise RuntimeError(f"requests did not complete: {outcomes}")
        return time.perf_counter() - t0

    def _drain(self) -> None:
        while self.sock.poll(0):
            self.sock.recv_multipart()  # Accepted replies

    def close(self) -> None:
        self._drain()
        self.client.close()
        self.sock.close(0)
        self.ctx.term()


def soak(requests: int, gpus: int, window: int, block: int, probes: int) -> dict:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "soak.gfp"
        policy.write_text(POLICY)
        ready = ctx.Queue()
        proc = ctx.Process(target=serve, args=(str(policy), gpus, ready), daemon=True)
        proc.start()
        address, pid = ready.get(timeout=300)
        feeder = Feeder(address, window)
        try:
            doc = run_phases(feeder, address, pid, requests, block, probes, ctx)
        finally:
            feeder.close()
            _stop_server(address)
            proc.join(60)
    doc.update(gpus=gpus, window=window, block=block, cpus=os.cpu_count())
    return doc


def run_phases(feeder: Feeder, address: str, pid: int, requests: int, block: int, probes: int, ctx) -> dict:
    first = min(10_000, requests // 2)
    t = feeder.run_until(first)
    rss_first = rss_mb(pid)
    blocks, poller_latencies = [], []
    done, kinds = first, ("none", "metrics", "cpu")
    while done < requests:
        target = min(requests, done + block)
        kind = kinds[len(blocks) % len(kinds)]
        started, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
        poller = None if kind == "none" else ctx.Process(
            target=poll_metrics if kind == "metrics" else burn, args=(address, started, stop, out), daemon=True)
        if poller is not None:
            poller.start()
            started.wait(120)  # started (imports done, connected) before the block begins
        seconds = feeder.run_until(target)
        if poller is not None:
            stop.set()
            poller_latencies += out.get(timeout=60)
            poller.join(30)
        blocks.append({"requests": target - done, "seconds": seconds, "per_s": (target - done) / seconds,
                       "beside": kind})
        done = target
    rss_end = rss_mb(pid)
    probe_s = []
    for _ in range(probes):
        t0 = time.perf_counter()
        feeder.client.metrics()
        probe_s.append(time.perf_counter() - t0)
        time.sleep(0.05)  # a scraper's pace, not a loop: a loop is paced by the server (docs/server.md)
    metrics = feeder.client.metrics()
    rate = {kind: _mean([b["per_s"] for b in blocks if b["beside"] == kind]) for kind in kinds}
    return {
        "requests": requests, "first_requests": first, "first_phase_s": t,
        "rss_mb_at_first": rss_first, "rss_mb_at_end": rss_end, "rss_growth_mb": rss_end - rss_first,
        "blocks": blocks,
        "per_s_without_poller": rate["none"], "per_s_with_poller": rate["metrics"],
        "per_s_beside_cpu_burner": rate["cpu"],
        "poller_ratio": rate["metrics"] / rate["none"] if rate["metrics"] and rate["none"] else None,
        "cpu_burner_ratio": rate["cpu"] / rate["none"] if rate["cpu"] and rate["none"] else None,
        "poller_calls": len(poller_latencies),
        "poller_metrics_p50_ms": percentile(poller_latencies, 50) * 1e3 if poller_latencies else None,
        "metrics_p50_ms_at_end": percentile(probe_s, 50) * 1e3, "metrics_p99_ms_at_end": percentile(probe_s, 99) * 1e3,
        "completed": metrics["overall"]["completed"], "metrics_reply_bytes": len(metrics["prometheus"]),
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _stop_server(address: str) -> None:
    from gfdit.client import Client

    try:
        with Client(address, timeout=10) as client:
            client.stop_server("soak done")
    except Exception as exc:  # noqa: BLE001 -- the bench's own cleanup: report, the process is killed anyway
        print(f"stopping the server: {exc}", file=sys.stderr)


def markdown(doc: dict) -> str:
    ratio = doc["poller_ratio"]
    lines = [
        f"Soak: {doc['requests']:,} requests, {doc['gpus']} emulated GPUs, {doc['cpus']} CPU cores "
        f"(shared with other work while measured).", "",
        "| figure | value | target |", "|---|---:|---:|",
        f"| server RSS at {doc['first_requests']:,} requests | {doc['rss_mb_at_first']:.1f} MB | |",
        f"| server RSS at {doc['requests']:,} requests | {doc['rss_mb_at_end']:.1f} MB | |",
        f"| RSS growth | {doc['rss_growth_mb']:+.1f} MB | <= 20 MB |",
        f"| metrics() p50 / p99 at the end | {doc['metrics_p50_ms_at_end']:.2f} / "
        f"{doc['metrics_p99_ms_at_end']:.2f} ms | p50 <= 5 ms |",
        f"| completed/s without a poller (mean of blocks) | {doc['per_s_without_poller']:.0f} | |",
        f"| completed/s with a metrics() poller | {doc['per_s_with_poller']:.0f} | |" if ratio else "",
        f"| with / without | {ratio:.1%} | >= 90% |" if ratio else "",
        f"| control: completed/s beside a process burning a core | {doc['per_s_beside_cpu_burner']:.0f} "
        f"({doc['cpu_burner_ratio']:.1%}) | |" if doc["cpu_burner_ratio"] else "",
        f"| poller: calls, p50 | {doc['poller_calls']:,}, {doc['poller_metrics_p50_ms'] or 0:.2f} ms | |",
        f"| metrics reply (Prometheus text) | {doc['metrics_reply_bytes']:,} bytes | |",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--gpus", type=int, default=16)
    parser.add_argument("--window", type=int, default=256, help="requests in flight")
    parser.add_argument("--block", type=int, default=5_000, help="requests per with/without-poller block")
    parser.add_argument("--probes", type=int, default=200, help="metrics() calls timed at the end")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak"))
    parser.add_argument("--quick", action="store_true", help="5,000 requests in 800-request blocks (soak_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.block, args.probes = 5_000, 800, 50
        args.out = args.out + "_quick"
    doc = soak(args.requests, args.gpus, args.window, args.block, args.probes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    table = markdown(doc)
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
