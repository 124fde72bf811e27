"""all_to_all and all_gather latency and bandwidth per backend, 4 KB .. 64 MB,
with single-threaded memcpy measured in the same run.

    python3 bench/comm_collectives.py            # full: 4 KB .. 64 MB, groups of 2 and 4
    python3 bench/comm_collectives.py --quick    # a smoke run (seconds)

Writes bench/results/comm_collectives.{json,md}. Size = bytes of each rank's
input. Latency = max over members of the per-op time (p50 / p99 of back-to-back
ops). Bandwidth (bus bandwidth, as nccl-tests) = bytes each rank receives from
its peers per second: all_gather (k-1)·size, all_to_all (k-1)/k·size. memcpy =
one single-threaded `copy_` of `size` bytes, in a rank of the same pool; it is
also measured with the group's k ranks copying at once (the memory bandwidth
each rank gets while its peers work too). "gloo" = gloo's own collectives on a
`dist.new_group` (the newgroup backend). Output
buffers are allocated once and reused (`out=`), as in nccl-tests, so first-touch
page faults of fresh outputs are not counted for any backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from gfdit.comm.launch import LocalPool
from gfdit.engine.metrics import percentile

BACKENDS = ("shm", "p2p", "newgroup")
SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]
OUT = Path(__file__).resolve().parent / "results"


def _iters(size: int, quick: bool) -> int:
    budget = 16 << 20 if quick else 256 << 20
    return int(max(5, min(400 if not quick else 50, budget // size)))


def time_collective(comm, op, ranks, size, iters):
    """Per-op seconds on this rank (members only), after warm-up and a barrier."""
    if comm.rank not in ranks:
        return None
    g = comm.group(ranks)
    k = g.size
    numel = size // 4
    numel -= numel % k
    x = torch.randn(numel)
    out = torch.empty(numel * k if op == "all_gather" else numel)  # reused, as nccl-tests do
    run = {"all_gather": lambda: comm.all_gather(g, x, 0, out=out),
           "all_to_all": lambda: comm.all_to_all(g, x, 0, 0, out=out)}[op]
    for _ in range(2):
        run()
    comm.barrier(g)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    comm.barrier(g)
    return times


def time_memcpy(comm, size, iters, ranks=(0,)):
    """Single-threaded copy_ of `size` bytes on each rank of `ranks` at the same time
    (one rank: the plain memcpy baseline; the group's ranks: what each gets while
    its peers copy too, i.e. the shared memory bandwidth a collective works with)."""
    if comm.rank not in ranks:
        return None
    if len(ranks) > 1:
        comm.barrier(comm.group(ranks))
    src, dst = torch.randn(size // 4), torch.empty(size // 4)
    dst.copy_(src)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t)
    return times


def prepare(comm, rank_sets):
    comm.backend.prepare(rank_sets)


def measure(pool, groups, sizes, quick):
    rows = []
    for size in sizes:
        iters = _iters(size, quick)
        mc = pool.run(time_memcpy, size, iters)[0]
        memcpy_bw = size / statistics.median(mc)
        for ranks in groups:
            k = len(ranks)
            together = [t for t in pool.run(time_memcpy, size, iters, ranks) if t]
            shared_bw = size / max(statistics.median(t) for t in together)
            for op in ("all_to_all", "all_gather"):
                for backend in BACKENDS:
                    per_rank = [t for t in pool.run(time_collective, op, ranks, size, iters,
                                                    backend=backend) if t]
                    per_op = [max(ts) for ts in zip(*per_rank, strict=True)]
                    p50 = statistics.median(per_op)
                    moved = (k - 1) * size if op == "all_gather" else (k - 1) * size / k
                    rows.append(dict(op=op, backend=backend, group_size=k, size=size,
                                     iters=iters, p50_us=p50 * 1e6,
                                     p99_us=percentile(per_op, 99) * 1e6,
                                     busbw_GBps=moved / p50 / 1e9,
                                     memcpy_GBps=memcpy_bw / 1e9,
                                     memcpy_k_at_once_GBps=shared_bw / 1e9))
                    print(f"{op:10s} k={k} {backend:8s} {size:>10d} B  "
                          f"p50 {p50 * 1e6:10.1f} us  bus {moved / p50 / 1e9:6.2f} GB/s  "
                          f"(memcpy {memcpy_bw / 1e9:5.2f})", flush=True)
    return rows


def summarize(rows):
    """Targets: shm >= 5x faster than gloo (newgroup and p2p) up to 1 MB; shm at
    64 MB >= half of memcpy bandwidth."""
    by = {(r["op"], r["group_size"], r["size"], r["backend"]): r for r in rows}
    speedups = []
    for (op, k, size, backend), r in by.items():
        if backend != "shm":
            continue
        for base in ("newgroup", "p2p"):
            b = by.get((op, k, size, base))
            if b:
                speedups.append(dict(op=op, group_size=k, size=size, vs=base,
                                     speedup=b["p50_us"] / r["p50_us"]))
    small = [s for s in speedups if s["size"] <= 1 << 20]
    big = [r for r in rows if r["backend"] == "shm" and r["size"] == max(x["size"] for x in rows)]
    return dict(
        min_speedup_up_to_1MB_vs_gloo_collectives=min(
            (s["speedup"] for s in small if s["vs"] == "newgroup"), default=None),
        min_speedup_up_to_1MB_vs_p2p=min(
            (s["speedup"] for s in small if s["vs"] == "p2p"), default=None),
        largest_size=max(x["size"] for x in rows),
        shm_busbw_over_memcpy_at_largest={
            f"{r['op']} k={r['group_size']}": r["busbw_GBps"] / r["memcpy_GBps"] for r in big},
        shm_busbw_over_memcpy_k_at_once_at_largest={
            f"{r['op']} k={r['group_size']}": r["busbw_GBps"] / r["memcpy_k_at_once_GBps"]
            for r in big},
        speedups=speedups,
    )


def write(rows, summary, args):
    OUT.mkdir(parents=True, exist_ok=True)
    meta = dict(torch=torch.__version__, arena_mb=args.arena_mb, lane_kb=args.lane_kb,
                load_average=list(__import__("os").getloadavg()), python=sys.version.split()[0], quick=args.quick,
                cpus=len(__import__("os").sched_getaffinity(0)), world_size=4,
                timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    stem = "comm_collectives_quick" if args.quick else "comm_collectives"
    (OUT / f"{stem}.json").write_text(json.dumps(dict(meta=meta, summary=summary, rows=rows),
                                                 indent=1))
    lines = [f"# Collectives: latency and bandwidth ({meta['timestamp']}, {meta['cpus']} CPUs)",
             "", "| op | k | size | " + " | ".join(
                 f"{b} p50 µs" for b in BACKENDS) + " | shm bus GB/s | memcpy GB/s "
             "(1 rank / k at once) | shm vs gloo | shm vs p2p |",
             "|---|---|---|" + "---|" * (len(BACKENDS) + 4)]
    by = {(r["op"], r["group_size"], r["size"], r["backend"]): r for r in rows}
    for (op, k, size, backend), r in by.items():
        if backend != "shm":
            continue
        lat = " | ".join(f"{by[(op, k, size, b)]['p50_us']:.0f}" for b in BACKENDS)
        ratio = by[(op, k, size, "newgroup")]["p50_us"] / r["p50_us"]
        vs_p2p = by[(op, k, size, "p2p")]["p50_us"] / r["p50_us"]
        lines.append(f"| {op} | {k} | {_human(size)} | {lat} | {r['busbw_GBps']:.2f} | "
                     f"{r['memcpy_GBps']:.2f} / {r['memcpy_k_at_once_GBps']:.2f} | "
                     f"{ratio:.1f}× | {vs_p2p:.1f}× |")
    lines += ["", "Summary: " + json.dumps({k: v for k, v in summary.items() if k != "speedups"})]
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _human(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few sizes and iterations")
    ap.add_argument("--arena-mb", type=int, default=32, help="shm arena per rank (MB)")
    ap.add_argument("--lane-kb", type=int, default=1024, help="shm lane (chunk) size (KB)")
    args = ap.parse_args(argv)
    sizes = [4 << 10, 1 << 20, 4 << 20] if args.quick else SIZES
    groups = [(0, 1), (0, 1, 2, 3)] if not args.quick else [(0, 1), (2, 0, 3, 1)]
    with LocalPool(4, backends=BACKENDS, timeout_s=300,
                   backend_options={"shm": {"arena_bytes": args.arena_mb << 20,
                                            "lane_bytes": args.lane_kb << 10}}) as pool:
        pool.run(prepare, groups, backend="newgroup")
        rows = measure(pool, groups, sizes, args.quick)
    summary = summarize(rows)
    write(rows, summary, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
