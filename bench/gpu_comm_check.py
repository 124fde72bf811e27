"""GPU check: NCCL with device_id, point-to-point on the world creates no extra communicators.

    python3 bench/gpu_comm_check.py          # on a GPU machine (one GPU is enough)

With CUDA: a child process joins a world of 1 through `gfdit.comm.init_world`
(NCCL with `device_id`) under NCCL_DEBUG=INFO, runs batched point-to-point on
the world group (raw `batch_isend_irecv` and gfdit's p2p backend, rank 0 to
itself) a few hundred times with checked data, and the parent counts the
communicators NCCL reports ("Init COMPLETE"): PASS when exactly one (the
world's) and torch's process-group registry holds only the world. Without CUDA
(CPU fallback) the same probe runs on a gloo world of 2 and only the registry
and data are checked. Prints PASS/FAIL and writes JSON to $OUT/gpu_comm_check.json
(or bench/results/ when $OUT is unset). Well under 2 minutes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

CHILD_TIMEOUT_S = 90
ROUNDS = 200


def probe(comm) -> dict:
    """Batched p2p on the world, raw and through gfdit; returns data and registry facts."""
    import torch
    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d

    from gfdit.comm.transfer import Transfer

    peer = (comm.rank + 1) % comm.world_size
    g = comm.group(sorted({comm.rank, peer}))
    other = g.ranks.index(peer)
    ok = True
    for i in range(ROUNDS):
        x = torch.full((1024,), float(i + comm.rank), device=comm.device)
        y = torch.empty_like(x)
        works = dist.batch_isend_irecv([dist.P2POp(dist.irecv, y, peer),
                                        dist.P2POp(dist.isend, x, peer)])
        for w in works:
            w.wait()
        z = torch.empty_like(x)
        comm.backend.exchange(g, Transfer("send", sends=[(other, x)], recvs=[(other, z)]))
        want = float(i + peer)
        ok &= bool((y == want).all().item()) and bool((z == want).all().item())
    backend = dist.get_backend()
    splits = None
    if comm.device.type == "cuda":
        nccl = dist.distributed_c10d._get_default_group()._get_backend(comm.device)
        splits = getattr(nccl, "comm_split_count", lambda: None)()
    return dict(data_ok=ok, process_groups=len(c10d._world.pg_map), backend=backend,
                comm_split_count=splits, rounds=ROUNDS)


def child(device: str, port: int) -> int:
    import torch

    torch.set_num_threads(1)
    from gfdit.comm import init_world

    comm = init_world(0, 1, init_method=f"tcp://127.0.0.1:{port}", device=device, timeout_s=60)
    result = probe(comm)
    comm.close()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def run_gpu() -> dict:
    from gfdit.comm.launch import free_port

    env = dict(os.environ, NCCL_DEBUG="INFO", NCCL_DEBUG_SUBSYS="INIT", OMP_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--child", "cuda:0", str(free_port())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    log = proc.stdout + proc.stderr
    inits = len(re.findall(r"Init COMPLETE", log))
    found = [line for line in log.splitlines() if line.startswith("RESULT ")]
    result = json.loads(found[-1][7:]) if found else {}
    passed = (proc.returncode == 0 and result.get("data_ok") is True and inits == 1
              and result.get("process_groups") == 1)
    return dict(mode="nccl", status="PASS" if passed else "FAIL", nccl_communicators=inits,
                child_exit=proc.returncode, **result,
                log_tail=log.splitlines()[-30:] if not passed else [])


def run_cpu_fallback() -> dict:
    from gfdit.comm.launch import LocalPool

    with LocalPool(2, timeout_s=60) as pool:
        results = pool.run(probe)
    passed = all(r["data_ok"] and r["process_groups"] == 1 for r in results)
    return dict(mode="cpu-fallback (gloo, world of 2; no GPU here, NCCL not checked)",
                status="PASS" if passed else "FAIL", per_rank=results)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], int(sys.argv[3]))
    import torch

    start = time.monotonic()
    try:
        report = run_gpu() if torch.cuda.is_available() else run_cpu_fallback()
    except subprocess.TimeoutExpired:
        report = dict(mode="nccl", status="FAIL", error=f"child ran past {CHILD_TIMEOUT_S} s")
    report.update(seconds=round(time.monotonic() - start, 1), torch=torch.__version__,
                  cuda=torch.cuda.is_available(),
                  gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    out_dir = Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_comm_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "log_tail"}, indent=1))
    for line in report.get("log_tail", []):
        print("  | " + line)
    print(f"gpu_comm_check: {report['status']} ({report['mode']}, {report['seconds']} s)")
    return 0 if report["status"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
