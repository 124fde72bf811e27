"""Forming a group: group-free (`Comm.group`, local) vs `dist.new_group`, sizes 2 and 4.

    python3 bench/comm_group_form.py [--samples N] [--quick]

Both measured in one run, on the same 4-process gloo world: p50 and p99 of
  - group-free: `comm.group(ranks)` (a descriptor; no message), per call;
  - new_group: `dist.new_group(ranks)` (every world rank takes part, as it must),
    and new_group plus the first barrier on it (when the communicator is usable).
Writes bench/results/comm_group_form.{json,md}. The paper's figures: 778 ms
(NCCL communicator) vs about 60 µs (group-free); target here ≤ 10 µs and ≥ 100×.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from gfdit.comm.launch import LocalPool
from gfdit.engine.metrics import percentile

OUT = Path(__file__).resolve().parent / "results"
SIZES = {2: (2, 0), 4: (3, 1, 0, 2)}


def time_form(comm, ranks, samples):
    """Per-call seconds of forming the group locally (repeated, as at every task)."""
    times = []
    for _ in range(samples):
        t = time.perf_counter_ns()
        comm.group(ranks)
        times.append((time.perf_counter_ns() - t) * 1e-9)
    return times


def time_new_group(comm, ranks, samples):
    """Per-call seconds of dist.new_group (all world ranks), and to the first barrier."""
    import torch.distributed as dist
    from datetime import timedelta

    create, usable = [], []
    for _ in range(samples):
        dist.barrier()
        t = time.perf_counter()
        pg = dist.new_group(sorted(ranks), timeout=timedelta(seconds=120))
        create.append(time.perf_counter() - t)
        if comm.rank in ranks:
            dist.barrier(group=pg)
        usable.append(time.perf_counter() - t)
    return create, usable


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20, help="new_group samples per size")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    samples = 3 if args.quick else args.samples
    rows = []
    with LocalPool(4, backends=("p2p", "newgroup"), timeout_s=300) as pool:
        for k, ranks in SIZES.items():
            form = pool.run(time_form, ranks, 20000)[0]
            per_rank = pool.run(time_new_group, ranks, samples, backend="newgroup")
            member = per_rank[ranks[0]]
            rows.append(dict(
                group_size=k, ranks=list(ranks), samples_form=len(form), samples_new_group=samples,
                form_p50_us=statistics.median(form) * 1e6, form_p99_us=percentile(form, 99) * 1e6,
                new_group_p50_us=statistics.median(member[0]) * 1e6,
                new_group_p99_us=percentile(member[0], 99) * 1e6,
                usable_p50_us=statistics.median(member[1]) * 1e6,
                usable_p99_us=percentile(member[1], 99) * 1e6))
            r = rows[-1]
            r["ratio_p50"] = r["new_group_p50_us"] / r["form_p50_us"]
            r["ratio_p99"] = r["new_group_p99_us"] / r["form_p99_us"]
            print(json.dumps(r), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = "comm_group_form_quick" if args.quick else "comm_group_form"
    meta = dict(timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), backend="gloo",
                load_average=list(__import__("os").getloadavg()),
                world_size=4, target="form <= 10 us and >= 100x cheaper than new_group")
    (OUT / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    lines = [f"# Forming a group ({meta['timestamp']}, gloo, world of 4)", "",
             "| k | group-free p50 µs | p99 µs | new_group p50 µs | p99 µs | "
             "new_group + first barrier p50 µs | p99 µs | new_group / group-free (p50, p99) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['group_size']} | {r['form_p50_us']:.2f} | {r['form_p99_us']:.2f} | "
                     f"{r['new_group_p50_us']:.0f} | {r['new_group_p99_us']:.0f} | "
                     f"{r['usable_p50_us']:.0f} | {r['usable_p99_us']:.0f} | "
                     f"{r['ratio_p50']:.0f}×, {r['ratio_p99']:.0f}× |")
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
