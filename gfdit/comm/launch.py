"""Spawn N local processes that each join one world, and run functions in them.

For tests, benchmarks and local pools (workers reuse it)::

    from gfdit.comm.launch import LocalPool

    def gather(comm, n):                     # module-level: it is pickled by reference
        g = comm.group((3, 1)) if comm.rank in (1, 3) else comm.group((0, 2))
        return comm.all_gather(g, torch.full((n,), comm.rank), 0)

    with LocalPool(4, backends=("p2p", "shm"), timeout_s=30,
                   backend_options={"shm": {"arena_bytes": 16 << 20}}) as pool:
        outs = pool.run(gather, 8, backend="shm")    # one result per rank
        outcomes = pool.run_outcomes(gather, 8)      # or per-rank Outcome, never raising

Each process sets OMP_NUM_THREADS=1 and torch.set_num_threads(1), joins a world
with `init_world` through a TCPStore this process hosts on a kernel-chosen port
(held for the pool's life, so no other process can take it in between), opens the requested backends (the
first one creates the world) and then serves `run` calls until closed. A rank
that raises returns the error and stays usable only if the comm is intact; a
rank that dies is reported as such. Functions and arguments travel by pickle
between this process and its own children only.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from gfdit.comm.errors import PoolError


def free_port() -> int:
    """A free TCP port on loopback (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One rank's result of a `LocalPool.run_outcomes` call."""

    rank: int
    ok: bool
    value: Any = None
    error: str = ""  # "ExceptionType: message" when not ok
    traceback: str = ""
    seconds: float = 0.0


class RanksFailed(PoolError):
    """Some ranks of a LocalPool call failed; `outcomes` holds every rank's result."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        bad = [o for o in outcomes if not o.ok]
        lines = [f"rank {o.rank}: {o.error}\n{o.traceback}" for o in bad]
        super().__init__(f"{len(bad)} of {len(outcomes)} ranks failed:\n" + "\n".join(lines))


class LocalPool:
    """N processes on this host, one torch.distributed world, functions run on demand."""

    def __init__(self, world_size: int, *, backends=("p2p",), timeout_s: float = 60.0,
                 start_timeout_s: float = 180.0, env: dict[str, str] | None = None,
                 backend_options: dict[str, dict] | None = None) -> None:
        if world_size < 1:
            raise ValueError("world_size must be at least 1")
        self.world_size = world_size
        self.backends = tuple(backends)
        self.timeout_s = timeout_s
        ctx = mp.get_context("spawn")
        self._store = _rendezvous_store(world_size, start_timeout_s)
        init_method = f"tcp://127.0.0.1:{self._store.port}"
        self._conns, self._procs = [], []
        child_env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "TORCHELASTIC_USE_AGENT_STORE": "True", **(env or {})}
        saved = {k: os.environ.get(k) for k in child_env}
        os.environ.update(child_env)
        try:
            for rank in range(world_size):
                parent, child = ctx.Pipe()
                args = (rank, world_size, init_method, self.backends, timeout_s,
                        backend_options or {}, child)
                proc = ctx.Process(target=_serve, args=args, daemon=True,
                                   name=f"gfdit-comm-rank{rank}")
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        ready = self._collect(range(world_size), start_timeout_s)
        if not all(o.ok for o in ready):
            self.close()
            raise RanksFailed(ready)
        self.pids = [o.value for o in ready]

    def run(self, fn: Callable, *args, backend: str | None = None,
            timeout_s: float | None = None) -> list[Any]:
        """Run fn(comm, *args) on every rank; return the results in rank order or raise RanksFailed."""
        outcomes = self.run_outcomes(fn, *args, backend=backend, timeout_s=timeout_s)
        if not all(o.ok for o in outcomes):
            raise RanksFailed(outcomes)
        return [o.value for o in outcomes]

    def run_outcomes(self, fn: Callable, *args, backend: str | None = None,
                     timeout_s: float | None = None) -> list[Outcome]:
        """Run fn(comm, *args) on every live rank; one Outcome per rank, never raising."""
        name = backend or self.backends[0]
        if name not in self.backends:
            raise ValueError(f"backend {name!r} not opened in this pool; opened: {self.backends}")
        live = []
        for rank, conn in enumerate(self._conns):
            try:
                conn.send(("run", fn, args, name))
                live.append(rank)
            except (BrokenPipeError, OSError):
                pass
        wait = timeout_s if timeout_s is not None else 2 * self.timeout_s + 30
        got = {o.rank: o for o in self._collect(live, wait)}
        return [got.get(r) or Outcome(r, False, error=self._death(r)) for r in range(self.world_size)]

    def kill(self, rank: int) -> None:
        """SIGKILL one rank (for failure tests)."""
        self._procs[rank].kill()

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 20
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
        self._store = None

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _collect(self, ranks, timeout_s: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout_s
        pending, done = set(ranks), []
        while pending and time.monotonic() < deadline:
            for rank in list(pending):
                conn = self._conns[rank]
                try:
                    if conn.poll(0.01):
                        done.append(conn.recv())
                        pending.discard(rank)
                    elif not self._procs[rank].is_alive():
                        done.append(Outcome(rank, False, error=self._death(rank)))
                        pending.discard(rank)
                except (EOFError, OSError):
                    done.append(Outcome(rank, False, error=self._death(rank)))
                    pending.discard(rank)
        done += [Outcome(r, False, error=f"no answer within {timeout_s:.0f} s") for r in pending]
        return sorted(done, key=lambda o: o.rank)

    def _death(self, rank: int) -> str:
        proc = self._procs[rank] if rank < len(self._procs) else None
        code = proc.exitcode if proc is not None else None
        return f"process died (exit code {code})"


def _rendezvous_store(world_size: int, timeout_s: float):
    """The world's TCPStore, hosted here on a port the kernel picks and this process
    holds: no window in which another process can take the port. The children
    join it as clients (torch's agent-store mode)."""
    from datetime import timedelta

    import torch.distributed as dist

    return dist.TCPStore("127.0.0.1", 0, world_size, is_master=True,
                         timeout=timedelta(seconds=timeout_s), wait_for_workers=False)


def _serve(rank, world_size, init_method, backends, timeout_s, options, conn) -> None:
    """Child main: join the world, open backends, run functions until told to close."""
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
        from gfdit.comm.world import init_world

        first = init_world(rank, world_size, init_method=init_method, backend=backends[0],
                           timeout_s=timeout_s, backend_options=options.get(backends[0]))
        comms = {backends[0]: first}
        for name in backends[1:]:
            comms[name] = first.using(name, **options.get(name, {}))
        conn.send(Outcome(rank, True, os.getpid()))
    except Exception as e:  # process top level: report and exit
        conn.send(Outcome(rank, False, error=f"{type(e).__name__}: {e}",
                          traceback=traceback.format_exc()))
        return
    _loop(rank, comms, conn)
    for name in reversed(list(comms)):
        comms[name].close()


def _loop(rank, comms, conn) -> None:
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "close":
            return
        _, fn, args, name = msg
        start = time.perf_counter()
        try:
            value = fn(comms[name], *args)
            out = Outcome(rank, True, value, seconds=time.perf_counter() - start)
        except Exception as e:  # process top level: the error goes back to the caller
            out = Outcome(rank, False, error=f"{type(e).__name__}: {e}",
                          traceback=traceback.format_exc(), seconds=time.perf_counter() - start)
        conn.send(out)
