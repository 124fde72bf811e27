"""A pool of local worker processes and the controller side of the worker plane.

    pool = WorkerPool(4, "tiny", backend="p2p")       # starts 4 workers, one world
    result = pool.run(RunTask(...))                   # blocking, for scripts/tests
    pool.submit(task); events = pool.poll(0.05)       # non-blocking, for the engine loop
    pool.drop("req-1"); pool.close()

The pool binds a ROUTER (an ``ipc://`` socket in its 0700 temporary directory,
or the loopback address given), starts N ``python -m gfdit.workers.process``
children and waits for their `WorkerReady`. Only connections that proved the
pool's secret are heard, each only for its own rank (`gfdit.workers.auth`). `submit` sends a task to every rank
that takes part (the group, then the migration senders outside it: see
`gfdit.workers.migration.task_ranks`) in one global order — the pool is the single
sequencer — and tells ranks that leave the request without sending to drop its
state. `poll` gathers the members' `TaskDone`s into one `TaskFinished` per task
(images from the group's index-0 member) and watches the workers: a process that
exits or misses heartbeats yields one `WorkerDead` naming the rank and the tasks
it had, and those tasks finish failed.

Recovery: a torch.distributed world cannot lose a member, so a pool with a dead
worker refuses new tasks until `restart()`, which tears every worker down and
starts a fresh world (all request states are lost; the server retries or fails
those requests). `close()` leaves no process behind.

Several hosts (`nodes=NodeSpec(...)`, a tcp:// `address`): ranks 0..K-1 run
here, the other nodes' agents join through `gfdit.workers.remote`, the world
meets at a TCPStore on this host, and a restart re-forms it without the nodes
that lost a worker (docs/workers.md, "Several hosts").

Emulated mode (`emulate=cost_model`): workers sleep instead of computing and
join no world; a task without `emulate_s` gets it from the cost model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import zmq

from gfdit.comm.errors import PoolError as PoolError  # the one pool error; re-exported for callers
from gfdit.protocol import (
    DropState,
    Heartbeat,
    ProtocolError,
    RunTask,
    Shutdown,
    TaskDone,
    WorkerError, WorkerHello,
    WorkerReady,
)
from gfdit.protocol_nodes import NodeWelcome
from gfdit.workers import auth, transport
from gfdit.workers.emulated import task_seconds
from gfdit.workers.migration import task_ranks
from gfdit.workers.nodes import NodeSpec, gloo_env, pool_secret, tcp_host_port, worker_argv
from gfdit.workers.remote import NodesMissing, RemoteNodes, RemoteProcess, rendezvous_store
from gfdit.workers.task_check import check_task

if TYPE_CHECKING:
    import numpy as np

SETTLE_S = 1.0  # several hosts: how long a restart listens for more losses before re-forming


@dataclass(frozen=True)
class TaskFinished:
    """Every rank of a task answered (or one died). `images` come from group index 0."""

    task_id: int
    request_id: str
    stage: str
    ok: bool
    error: str | None
    ranks: tuple[int, ...]
    timings: dict[int, dict[str, float]]
    images: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerDead:
    """A worker process exited or went silent; `task_ids` were running on it."""

    rank: int
    reason: str
    task_ids: tuple[int, ...]


@dataclass(frozen=True)
class WorkerFault:
    """A worker reported a problem outside any task (e.g. a malformed message)."""

    rank: int
    message: str
    fatal: bool


PoolEvent = TaskFinished | WorkerDead | WorkerFault


@dataclass
class _Pending:
    task: RunTask
    ranks: tuple[int, ...]
    dones: dict[int, TaskDone] = field(default_factory=dict)
    images: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Child:
    rank: int
    process: subprocess.Popen | RemoteProcess
    log: Path | None  # None: on another host
    last_seen: float
    ready: bool = False
    dead: bool = False
    reason: str = ""  # what a worker that could not start reported (its one-line WorkerError)


class WorkerPool:
    """N local worker processes in one world, driven over ZeroMQ. See the module doc."""

    def __init__(self, num_workers: int, model: str = "tiny", *, backend: str = "p2p",
                 emulate=None, device: str = "cpu", address: str | None = None,
                 dtype: str = "float32", adapter: str = "", heartbeat_s: float = 1.0,
                 heartbeat_timeout_s: float = 30.0, start_timeout_s: float = 600.0,
                 collective_timeout_s: float = 120.0, nodes: NodeSpec | None = None) -> None:
        if num_workers < 1:
            raise ValueError(f"a pool needs at least one worker, got {num_workers}")
        self.num_workers = num_workers
        self.model, self.backend, self.emulate = model, backend, emulate
        self.device, self.dtype, self.adapter = device, dtype, adapter
        self.heartbeat_s, self.heartbeat_timeout_s = heartbeat_s, heartbeat_timeout_s
        self.start_timeout_s, self.collective_timeout_s = start_timeout_s, collective_timeout_s
        self._address = address  # None: an ipc:// socket in the pool's private directory
        self._environ = dict(os.environ)  # a restart starts the same workers as the start
        self._context = zmq.Context()
        self._router: zmq.Socket | None = None
        self._peers = auth.PeerBook(auth.new_secret())
        self._children: dict[int, _Child] = {}
        self._pending: dict[int, _Pending] = {}
        self._backlog: list[PoolEvent] = []
        self._seq = 0
        self._dir: Path | None = None
        self.dead_ranks: set[int] = set()
        self.limits = None  # ModelLimits from rank 0's WorkerReady
        # several hosts: node agents join through `_remote`; ranks 0..K-1 stay here (docs/workers.md)
        self._remote = RemoteNodes(nodes, self._welcome) if nodes is not None and nodes.nnodes > 1 else None
        self._local = nodes.nproc_per_node if self._remote is not None else num_workers
        self._store = None  # the rendezvous TCPStore (several hosts)
        self._nonce = ""
        self.start()

    # ---- life cycle ------------------------------------------------------
    def start(self, join_s: float | None = None, rejoin: bool = False) -> None:
        """Bind, start the workers, wait until every one is ready (or raise PoolError; `rejoin`: agents wait)."""
        self._dir = Path(tempfile.mkdtemp(prefix="gfdit-pool-"))  # mode 0700: this user only
        self._nonce = auth.new_secret()
        remote = self._remote
        self._peers = auth.PeerBook(pool_secret(remote.spec.token, self._nonce) if remote else auth.new_secret())
        self._router = self._context.socket(zmq.ROUTER)
        for opt, value in ((zmq.ROUTER_MANDATORY, 1), (zmq.LINGER, 0), (zmq.MAXMSGSIZE, transport.MAX_MESSAGE_BYTES)):
            self._router.setsockopt(opt, value)
        self._router.bind(self._address or _private_address(self._dir))
        self.address = self._router.getsockopt(zmq.LAST_ENDPOINT).decode()
        if remote is not None:
            self._address = self.address  # a restart binds the same port: the agents reconnect to it
            self.num_workers = remote.world_size
        self._init_method = self._rendezvous()
        for rank in range(self._local):
            self._children[rank] = self._spawn(rank)
        try:
            self._await_ready(self.start_timeout_s if join_s is None else join_s)
        except BaseException as exc:  # the agents wait for the next world when one is coming
            self.close(rejoin=rejoin or isinstance(exc, NodesMissing))
            raise

    def _rendezvous(self) -> str:
        """One host: a file in the private directory. Several: a TCPStore on the head."""
        if self._remote is None:
            return f"file://{self._dir / 'world'}"
        host, _ = tcp_host_port(self.address)
        self._store = rendezvous_store(host, self.start_timeout_s)
        return f"tcp://{host}:{self._store.port}"

    def _welcome(self, node_rank: int, slot: int) -> NodeWelcome:
        return NodeWelcome(
            node_rank=node_rank, slot=slot, nproc_per_node=self._local, world_size=self.num_workers,
            model=self.model, init_method=self._init_method, nonce=self._nonce, backend=self.backend,
            device=self.device, dtype=self.dtype, adapter=self.adapter, emulate=self.emulate is not None,
            heartbeat_s=self.heartbeat_s, timeout_s=self.collective_timeout_s)

    def _spawn(self, rank: int) -> _Child:
        args = worker_argv(sys.executable, self._welcome(0, 0), rank, self.address)
        env = dict(self._environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env[auth.SECRET_ENV] = self._peers.secret  # the environment, never argv (`ps` shows argv)
        if self._remote is not None:  # the world spans hosts: the store is on TCP, gloo on the head's interface
            env["TORCHELASTIC_USE_AGENT_STORE"] = "True"
            env.update(gloo_env(env, *tcp_host_port(self.address)))
        elif sys.platform.startswith("linux"):
            env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        log = self._dir / f"worker-{rank}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        return _Child(rank, process, log, last_seen=time.monotonic())

    def _await_ready(self, join_s: float) -> None:
        """Until every rank is ready; other hosts' agents must have said hello within `join_s`."""
        deadline = time.monotonic() + self.start_timeout_s
        join_deadline = time.monotonic() + min(join_s, self.start_timeout_s)
        while len(self._children) < self.num_workers or not all(c.ready for c in self._children.values()):
            for child in self._children.values():
                if child.process.poll() is not None:
                    raise self._start_failed(child)
            if self._remote is not None and time.monotonic() > join_deadline:
                self._remote.check_joined(join_s)
            if time.monotonic() > deadline:
                waiting = [r for r in range(self.num_workers) if not (r in self._children and self._children[r].ready)]
                raise PoolError(f"workers {waiting} not ready after {self.start_timeout_s:.0f} s")
            self._receive(timeout=0.2)

    def _start_failed(self, child: _Child) -> PoolError:
        """The one line a worker that exited while starting reported, else its log's tail."""
        self._receive(timeout=0.5)  # its WorkerError may still be on the way
        if self._remote is not None and child.rank >= self._local:
            self._remote.lose(child.rank)  # the next try re-forms without its node
        if child.reason:
            return PoolError(f"worker {child.rank} could not start: {child.reason}")
        return PoolError(f"worker {child.rank} exited with code {child.process.returncode} while starting:\n"
                         f"{self._tail(child)}")

    def restart(self) -> None:
        """Tear every worker down and start a fresh world; every state is lost. Several hosts: re-formed without
        the nodes that lost a worker (heard for `SETTLE_S` first) or that do not rejoin within heartbeat_timeout_s."""
        if self._remote is not None and self._router is not None:  # None: an earlier try failed and closed
            settle = time.monotonic() + SETTLE_S  # every node's report of the same failure
            while (left := settle - time.monotonic()) > 0:  # (_receive returns after the first burst)
                self._receive(left)
            self._check_liveness()
        while True:
            self.close(rejoin=True)
            self._context = zmq.Context()
            self._children, self._pending, self.dead_ranks, self._backlog = {}, {}, set(), []
            try:
                return self.start(join_s=self.heartbeat_timeout_s, rejoin=True)
            except NodesMissing as exc:
                self._remote.drop(exc.nodes)

    def close(self, grace_s: float = 10.0, rejoin: bool = False) -> None:
        """Ask every worker to shut down, kill what remains after `grace_s`, free everything.
        Node agents are told to stop their workers, and (`rejoin`) to join the next world."""
        if self._router is not None:
            for child in self._children.values():
                if child.process.poll() is None and child.rank in self._peers.main:
                    self._send(child.rank, Shutdown(reason="pool closing"), quiet=True)
                elif child.process.poll() is None:
                    child.process.kill()  # never said hello: nothing to ask
        deadline = time.monotonic() + grace_s
        for child in self._children.values():
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self._router is not None:
            if self._remote is not None:
                self._remote.stop_all(self._router, "world re-formed" if rejoin else "pool closing", rejoin)
            self._router.close(linger=0 if self._remote is None else 1000)
            self._router = None
        self._store = None
        self._context.term()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pids(self) -> dict[int, int]:
        return {rank: child.process.pid for rank, child in self._children.items()}

    # ---- tasks -----------------------------------------------------------
    def submit(self, task: RunTask) -> int:
        """Send `task` to every rank that takes part; return its sequence number.

        Raises ValueError for a malformed task (nothing is sent) and PoolError
        when the pool has a dead worker (call `restart`)."""
        check_task(task, self.num_workers, self._pending)
        if self._router is None:
            raise PoolError("the pool is closed")
        if self.dead_ranks:
            raise PoolError(f"ranks {sorted(self.dead_ranks)} are dead; restart() the pool")
        self._seq += 1
        changes = {"seq": self._seq}
        if self.emulate is not None and task.emulate_s is None:
            changes["emulate_s"] = task_seconds(self.emulate, task)
        task = msgspec.structs.replace(task, **changes)
        ranks = task_ranks(task.group, task.state_ranks)
        self._pending[task.task_id] = _Pending(task, ranks)
        for rank in ranks:
            self._send(rank, task)
        leaving = sorted(set(task.state_ranks) - set(ranks))
        for rank in leaving:
            self._send(rank, DropState(request_id=task.request_id))
        return self._seq

    def drop(self, request_id: str, ranks=None) -> None:
        """Tell `ranks` (default: every live worker) to forget a request's state."""
        targets = range(self.num_workers) if ranks is None else ranks
        for rank in targets:
            if rank not in self.dead_ranks:
                self._send(rank, DropState(request_id=request_id))

    def running(self) -> tuple[int, ...]:
        """Ids of the tasks submitted and not finished yet."""
        return tuple(self._pending)

    def status(self) -> dict:
        """A JSON-friendly summary for status pages: workers, deaths, running tasks."""
        return {"workers": self.num_workers, "model": self.model, "backend": self.backend,
                "emulated": self.emulate is not None, "address": self.address,
                "refused_messages": self._peers.refused + (self._remote.refused if self._remote else 0),
                "nodes": {0: "head", **self._remote.hosts()} if self._remote else {0: "head"},
                "dead": sorted(self.dead_ranks), "running": sorted(self._pending), "seq": self._seq}

    def poll(self, timeout: float = 0.0) -> list[PoolEvent]:
        """Events since the last call, waiting up to `timeout` seconds for the first."""
        if self._router is None:
            raise PoolError("the pool is closed")
        if not self._backlog:
            self._receive(timeout)
        self._receive(0.0)
        self._check_liveness()
        events, self._backlog = self._backlog, []
        return events

    def run(self, task: RunTask, timeout: float | None = None, check: bool = True) -> TaskFinished:
        """Submit `task` and wait for it; other events stay queued for `poll`.

        Raises PoolError if it failed (with `check`), TimeoutError after `timeout`."""
        self.submit(task)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._backlog):
                if isinstance(event, TaskFinished) and event.task_id == task.task_id:
                    del self._backlog[i]
                    if check and not event.ok:
                        raise PoolError(f"task {task.task_id} ({task.stage} of {task.request_id}) "
                                        f"failed: {event.error}")
                    return event
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {task.task_id} not finished after {timeout} s")
            self._receive(0.1)
            self._check_liveness()

    # ---- receiving ---------------------------------------------------------
    def _receive(self, timeout: float) -> None:
        """Handle the messages that arrive within `timeout` (those waiting; at most RECEIVE_BATCH)."""
        wait_ms = int(timeout * 1000)
        for _ in range(transport.RECEIVE_BATCH):
            if not self._router.poll(wait_ms):
                return
            frames = self._router.recv_multipart(copy=True)
            self._handle(frames[0], frames[1:])
            wait_ms = 0

    def _handle(self, identity: bytes, frames: list[bytes]) -> None:
        try:
            msg, payload = transport.decode(frames, transport.TO_CONTROLLER)
        except ProtocolError as exc:
            if identity in self._peers.ranks:
                self._backlog.append(WorkerFault(-1, f"bad message from {identity!r}: {exc}", False))
            else:
                self._peers.refuse(identity, f"undecodable: {exc}")
            return
        if isinstance(msg, transport.FROM_NODE):
            self._node_message(identity, msg)
            return
        child = self._children.get(msg.rank)
        if child is None or child.dead:
            self._peers.refuse(identity, f"message for rank {msg.rank}, not a live worker of this pool")
            return
        if isinstance(msg, WorkerHello):
            self._peers.hello(identity, msg.rank, msg.channel, msg.proof)
            return
        if not self._peers.speaks_for(identity, msg.rank):
            return
        child.last_seen = time.monotonic()
        if isinstance(msg, WorkerReady):
            child.ready = True
            if msg.rank == 0:
                self.limits = msg.limits  # the model's limits (None when emulated), for intake
        elif isinstance(msg, TaskDone):
            self._task_done(msg, payload)
        elif isinstance(msg, WorkerError) and msg.fatal and child.ready:
            self._declare_dead(child, msg.message)  # it cannot go on: the world needs a restart
        elif isinstance(msg, WorkerError):
            child.reason = msg.message if msg.fatal else child.reason
            self._backlog.append(WorkerFault(msg.rank, msg.message, msg.fatal))
        elif not isinstance(msg, Heartbeat):
            self._backlog.append(WorkerFault(msg.rank, f"unexpected {type(msg).__name__}", False))

    def _node_message(self, identity: bytes, msg) -> None:
        if self._remote is None:
            self._peers.refuse(identity, f"{type(msg).__name__} to a pool of one host")
            return
        for rank, process in self._remote.handle(self._router, identity, msg):
            self._children[rank] = _Child(rank, process, None, last_seen=time.monotonic())

    def _task_done(self, done: TaskDone, payload: list[bytes]) -> None:
        pending = self._pending.get(done.task_id)
        if pending is None or done.rank not in pending.ranks:
            self._backlog.append(WorkerFault(done.rank, f"TaskDone for unknown task {done.task_id}", False))
            return
        pending.dones[done.rank] = done
        if done.ok and done.rank == pending.task.group[0] and done.outputs:
            try:
                pending.images = transport.images_from_payload(done.outputs, payload)
            except ProtocolError as exc:
                pending.dones[done.rank] = msgspec.structs.replace(done, ok=False, error=f"bad output: {exc}")
        if len(pending.dones) == len(pending.ranks):
            self._finish(pending)

    def _finish(self, pending: _Pending, error: str | None = None) -> None:
        del self._pending[pending.task.task_id]
        errors = [f"rank {r}: {d.error}" for r, d in sorted(pending.dones.items()) if not d.ok]
        if error:
            errors.insert(0, error)
        task = pending.task
        self._backlog.append(TaskFinished(
            task.task_id, task.request_id, task.stage, not errors, "; ".join(errors) or None,
            pending.ranks, {r: dict(d.timings) for r, d in pending.dones.items()}, pending.images))

    def _check_liveness(self) -> None:
        now = time.monotonic()
        for child in self._children.values():
            if child.dead:
                continue
            code = child.process.poll()
            if code is not None:
                self._declare_dead(child, f"process exited with code {code}: {self._tail(child, 5)}")
            elif now - child.last_seen > self.heartbeat_timeout_s:
                self._declare_dead(child, f"no heartbeat for {now - child.last_seen:.1f} s")

    def _declare_dead(self, child: _Child, reason: str) -> None:
        """Record the death and make it final: a silent worker is killed, never trusted again."""
        child.dead = True
        if child.process.poll() is None:
            child.process.kill()
        if self._remote is not None and child.log is None:
            self._remote.lose(child.rank)  # its node is out of the next world
        self.dead_ranks.add(child.rank)
        hit = [p for p in self._pending.values() if child.rank in p.ranks and child.rank not in p.dones]
        self._backlog.append(WorkerDead(child.rank, reason, tuple(p.task.task_id for p in hit)))
        for pending in hit:
            self._finish(pending, error=f"rank {child.rank} died ({reason})")

    def _send(self, rank: int, msg, quiet: bool = False) -> None:
        try:
            identity = self._peers.main[rank]
            self._router.send_multipart([identity, *transport.encode(msg)])
        except KeyError:
            if not quiet:
                raise PoolError(f"worker {rank} has not connected") from None
        except zmq.ZMQError as exc:
            if not quiet:
                raise PoolError(f"cannot reach worker {rank}: {exc}") from exc

    def _tail(self, child: _Child, lines: int = 30) -> str:
        if child.log is None:
            return child.process.reason or "(on another host)"
        try:
            text = child.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


def _private_address(directory: Path) -> str:
    """``ipc://`` in the pool's own 0700 directory where the platform has it (only
    this user can connect), else an OS-chosen loopback port."""
    path = directory / "control"
    if sys.platform == "win32" or len(str(path)) > 100:  # AF_UNIX paths are short
        return "tcp://127.0.0.1:*"
    return f"ipc://{path}"
