"""Collective cases run inside a LocalPool's ranks, each checked against a
reference computed in one process from every rank's (deterministic) input.

Every case function runs on all ranks: members take part, the others return
None. Results are (case name, ok, detail) tuples, asserted in the tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from gfdit.comm import CommError

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64,
          torch.int64, torch.int32, torch.uint8, torch.bool]
GROUPS = [(0,), (3, 1), (1, 3), (0, 2, 3), (2, 0, 3, 1), (0, 1, 2, 3)]


def make_input(seed: int, rank: int, shape, dtype) -> torch.Tensor:
    """Rank `rank`'s input for case `seed`: the same in every process."""
    gen = torch.Generator().manual_seed(seed * 1009 + rank)
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) > 0.5
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    return torch.randint(0, 120, shape, generator=gen).to(dtype)


def ref_all_gather(seed, ranks, shape, dtype, dim):
    return torch.cat([make_input(seed, r, shape, dtype) for r in ranks], dim)


def ref_all_to_all(seed, ranks, me, shape, dtype, sd, gd):
    k = len(ranks)
    return torch.cat([make_input(seed, r, shape, dtype).chunk(k, sd)[me] for r in ranks], gd)


def _verdict(name, got, want):
    if got.dtype != want.dtype or got.shape != want.shape:
        return (name, False, f"got {got.dtype}{tuple(got.shape)}, want {want.dtype}{tuple(want.shape)}")
    ok = torch.equal(got, want)
    return (name, ok, "" if ok else "values differ")


def one_case(comm, kind, seed, ranks, shape, dtype, dims=(0, 0)):
    """Run one collective on group `ranks` and compare with the reference."""
    if comm.rank not in ranks:
        return None
    g = comm.group(ranks)
    x = make_input(seed, comm.rank, shape, dtype)
    name = f"{kind} {g} {dtype} {tuple(shape)} dims={dims}"
    if kind == "all_gather":
        return _verdict(name, comm.all_gather(g, x, dims[0]),
                        ref_all_gather(seed, ranks, shape, dtype, dims[0]))
    if kind == "all_to_all":
        return _verdict(name, comm.all_to_all(g, x, dims[0], dims[1]),
                        ref_all_to_all(seed, ranks, g.index, shape, dtype, *dims))
    if kind == "broadcast":
        src = seed % len(ranks)
        buf = x if g.index == src else torch.zeros(shape, dtype=dtype)
        return _verdict(name, comm.broadcast(g, buf, src),
                        make_input(seed, ranks[src], shape, dtype))
    if kind == "sendrecv":  # member i sends to member i+1 (a ring), one pair at a time
        k = len(ranks)
        if k == 1:
            return (name, True, "")
        for i in range(k):
            if g.index == i:
                comm.send(g, x, (i + 1) % k)
            elif g.index == (i + 1) % k:
                got = comm.recv(g, shape, dtype, i)
        return _verdict(name, got, make_input(seed, ranks[(g.index - 1) % k], shape, dtype))
    raise ValueError(f"unknown case kind {kind}")


def prepare_groups(comm, rank_sets):
    """newgroup baseline: every rank creates every communicator, in the same order."""
    if comm.backend_name == "newgroup":
        comm.backend.prepare(rank_sets)
    return True


def all_rank_sets(world_size):
    """Every non-empty subset of range(world_size)."""
    return [tuple(r for r in range(world_size) if m >> r & 1) for m in range(1, 1 << world_size)]


def run_cases(comm, cases):
    """Run many cases in order; every rank gets the same list."""
    out = []
    with forbid_new_group(comm.backend_name != "newgroup"):
        for case in cases:
            r = one_case(comm, *case)
            if r is not None:
                out.append(r)
    return out


def run_cases_through_lanes(comm, cases):
    """shm only: the same cases with cross-process reads off (every byte via the arenas)."""
    saved, comm.backend.direct_bytes = comm.backend.direct_bytes, None
    try:
        return run_cases(comm, cases)
    finally:
        comm.backend.direct_bytes = saved


def run_concurrent(comm, seed, group_a, group_b, shape, dtype):
    """Two disjoint groups at once: each rank runs collectives on its own group."""
    ranks = group_a if comm.rank in group_a else group_b
    out = []
    for i, kind in enumerate(("all_gather", "all_to_all", "broadcast", "sendrecv") * 3):
        out.append(one_case(comm, kind, seed + i, ranks, shape, dtype, (0, 1) if kind == "all_to_all" else (0, 0)))
        comm.barrier(comm.group(ranks))
    return [r for r in out if r is not None]


def run_alternating(comm, n, groups):
    """n back-to-back collectives cycling over overlapping groups; members only."""
    bad = 0
    with forbid_new_group(comm.backend_name != "newgroup"):
        for i in range(n):
            ranks = groups[i % len(groups)]
            if comm.rank not in ranks:
                continue
            g = comm.group(ranks)
            x = torch.full((3,), float(i * 10 + comm.rank))
            want = torch.tensor([float(i * 10 + r) for r in ranks]).repeat_interleave(3)
            got = (comm.all_gather(g, x, 0) if i % 2 == 0
                   else comm.all_to_all(g, x.repeat(len(ranks)), 0, 0))
            bad += int(not torch.equal(got, want))
    return ("alternating", bad == 0, f"{bad} wrong of {n}")


def run_into_out(comm, seed):
    """all_gather / all_to_all into a caller's `out` buffer, reused across calls."""
    g = comm.group((3, 0, 2))
    if comm.rank not in g.ranks:
        return None
    out_g, out_a = torch.empty(6, 4), torch.empty(2, 12)
    ok = True
    for i in range(3):
        x = make_input(seed + i, comm.rank, (2, 4), torch.float32)
        got = comm.all_gather(g, x, 0, out=out_g)
        ok &= got is out_g and torch.equal(got, ref_all_gather(seed + i, g.ranks, (2, 4),
                                                               torch.float32, 0))
        y = make_input(seed + i, comm.rank, (6, 4), torch.float32)
        got = comm.all_to_all(g, y, 0, 1, out=out_a)
        ok &= got is out_a and torch.equal(got, ref_all_to_all(seed + i, g.ranks, g.index,
                                                               (6, 4), torch.float32, 0, 1))
    inplace = torch.empty(6, 4)
    x = inplace[2 * g.index: 2 * g.index + 2]
    x.copy_(make_input(seed, comm.rank, (2, 4), torch.float32))
    got = comm.all_gather(g, x, 0, out=inplace)
    ok &= got is inplace and torch.equal(got, ref_all_gather(seed, g.ranks, (2, 4),
                                                             torch.float32, 0))
    try:
        comm.all_gather(g, x, 0, out=torch.empty(5, 4))
        ok = False
    except ValueError as e:
        ok &= "out must be" in str(e)
    return ("out", ok, "")


def run_migration(comm, seed):
    """send_tensors / recv_tensors of a request's state between two ranks of a group."""
    g = comm.group((2, 0, 3))
    if comm.rank not in g.ranks:
        return None
    state = {"latents": make_input(seed, 9, (1, 16, 4, 4), torch.float32),
             "sigmas": make_input(seed, 8, (51,), torch.float64),
             "step": torch.tensor(7), "empty": torch.empty(0, 3),
             "rng": make_input(seed, 7, (5056,), torch.uint8)}
    big = {"empty": torch.empty(0), "latents": make_input(seed, 6, (4, 100_000), torch.float32)}
    if g.index == 0:
        comm.send_tensors(g, state, 2)
        comm.send_tensors(g, big, 2)
        return ("migration", True, "")
    if g.index == 2:
        same = True
        for sent in (state, big):
            got = comm.recv_tensors(g, 0)
            same &= list(got) == list(sent) and all(
                torch.equal(got[k], v) and got[k].dtype == v.dtype for k, v in sent.items())
        return ("migration", same, "" if same else "received state differs")
    return ("migration", True, "not involved")


def run_mismatch(comm):
    """Rank 2 passes a different shape: every member raises SizeMismatch, then the
    group keeps working."""
    g = comm.group((0, 1, 2, 3))
    n = 5 if comm.rank == 2 else 4
    try:
        comm.all_gather(g, torch.ones(n), 0)
        err = None
    except CommError as e:
        err = f"{type(e).__name__}: {e}"
    after = comm.all_gather(g, torch.full((2,), float(comm.rank)), 0)
    return err, after.tolist()


def run_partial_mismatch(comm, numel, lanes_only=False):
    """Rank 2 expects a longer broadcast than rank 0 sends: 0 and 2 raise
    SizeMismatch, 1 and 3 (who agree with 0) get the data, and the group goes on."""
    g = comm.group((0, 1, 2, 3))
    n = numel + 1 if comm.rank == 2 else numel
    x = torch.arange(float(numel)) if comm.rank == 0 else torch.zeros(n)
    saved = getattr(comm.backend, "direct_bytes", None)
    if lanes_only:
        comm.backend.direct_bytes = None
    try:
        got, err = comm.broadcast(g, x, 0), None
        got = bool(torch.equal(got, torch.arange(float(numel))))
    except CommError as e:
        got, err = None, f"{type(e).__name__}: {e}"
    finally:
        if lanes_only:
            comm.backend.direct_bytes = saved
    after = comm.all_gather(g, torch.full((2,), float(comm.rank)), 0)
    return err, got, after.tolist()


def run_after_peer_exited(comm, victim):
    """`victim` exits between collectives; once its pairs are closed, the others'
    next collective must fail with a CommError (posting on a closed gloo pair
    raises at once, before any wait)."""
    g = comm.group(range(comm.world_size))
    comm.barrier(g)
    if comm.rank == victim:
        os._exit(0)
    time.sleep(1.5)
    try:
        comm.all_gather(g, torch.ones(4), 0)
        return "no error"
    except CommError as e:
        return f"{type(e).__name__}: {e}"


def run_until_killed(comm, victim, shape):
    """Loop big all_gathers; `victim` SIGKILLs itself mid-way. Others must raise."""
    g = comm.group(range(comm.world_size))
    if comm.rank == victim:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGKILL)).start()
    start = time.monotonic()
    x = torch.ones(shape)
    try:
        while time.monotonic() - start < 120:
            comm.all_gather(g, x, 0)
    except CommError as e:
        err, seconds = f"{type(e).__name__}: {e}", time.monotonic() - start
    else:
        return "no error", time.monotonic() - start, ""
    try:  # the comm is broken now: a later call says so instead of hanging
        comm.barrier(comm.group([r for r in range(comm.world_size) if r != victim]))
        after = "no error"
    except CommError as e:
        after = f"{type(e).__name__}: {e}"
    return err, seconds, after


@contextlib.contextmanager
def forbid_new_group(active: bool = True):
    """Tripwire: any call of dist.new_group inside fails loudly."""
    if not active:
        yield
        return
    import torch.distributed.distributed_c10d as c10d

    def tripwire(*a, **k):
        raise AssertionError("dist.new_group called outside the newgroup backend")

    saved = (dist.new_group, c10d.new_group, dist.new_subgroups)
    dist.new_group = c10d.new_group = dist.new_subgroups = tripwire
    try:
        yield
    finally:
        dist.new_group, c10d.new_group, dist.new_subgroups = saved


def arenas_of(pids) -> list[str]:
    """gfdit arena files in /dev/shm whose owner (header word 1) is one of `pids`
    (other suites running at the same time may have their own)."""
    found = []
    for name in os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []:
        if name.startswith("gfdit-"):
            try:
                head = Path("/dev/shm", name).read_bytes()[:16]
            except OSError:
                continue
            if len(head) == 16 and int.from_bytes(head[8:], "little") in pids:
                found.append(name)
    return found


def fail_on_rank(comm, rank):
    """Raise on `rank` (None: nowhere); return this rank."""
    if comm.rank == rank:
        raise ValueError(f"failing on purpose on rank {rank}")
    return comm.rank
