"""The worker process: one per device, driven by the controller over ZeroMQ.

Start-up: set one compute thread (CPU), join the pool's one torch.distributed
world (`gfdit.comm.world.init_world`), load the model adapter, connect a DEALER
to the controller's ROUTER, prove the pool's secret (`WorkerHello`, see
`gfdit.workers.auth`; the secret comes in the environment, never on the command
line) and send `WorkerReady`. In
emulated mode (`--emulate`) none of that torch work happens: see
`gfdit.workers.emulated`.

Then, strictly in the order received:
  * `RunTask`: migrate the request's state per `plan_migration` (post sends
    without waiting, receive what this rank lacks, drop it if this rank leaves
    the request), compute this rank's part, answer `TaskDone` with timings
    (``migrate``, ``compute``, ``total`` seconds; ``migrate_wait``: of which
    waiting for the sender; ``compute_cpu``: the computing thread's CPU seconds in
    compute; ``recv_bytes``/``sent_bytes``)
    or with ``ok=False`` and the error; the worker goes on. A task whose
    previous stage of the same dispatch (``after``) failed on this rank fails at
    once ("skipped": nothing computed, no collective entered). An empty denoise
    chunk (``step_begin == step_end``) only moves the state. The group's index-0
    member of a decode task attaches the images as payload frames.
  * `DropState`: forget a request's state.
  * `Shutdown`: processed in order like any message (the tasks sent before it
    run first), then the worker completes its posted sends and exits 0.
A message that cannot be decoded is logged and answered with `WorkerError`;
the worker goes on. A side thread sends `Heartbeat`s on its own DEALER
(which proves the secret too). A worker whose parent (the controller, or on another
host the node agent) is gone says so (`WorkerError(fatal=True)`) and exits.

Run as ``python -m gfdit.workers.process --rank R --world-size N --controller ADDR ...``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
import traceback
from collections import deque

import zmq

from gfdit.protocol import (
    STAGES,
    DropState,
    Heartbeat,
    ProtocolError,
    RunTask,
    Shutdown,
    TaskDone,
    WorkerError,
    WorkerHello,
    WorkerReady,
)
from gfdit.workers import auth, transport
from gfdit.workers.migration import PendingSends, plan_migration, post_send, receive
from gfdit.workers.profile import StageClock

POLL_MS = 500
FAILED_KEPT = 64  # failed task ids a worker remembers, for the stages queued after them


class SkippedStage(RuntimeError):
    """A stage not run because its dispatch's previous stage failed on this rank."""


class StateMissing(LookupError):
    """A task needs a request state this rank does not hold."""


class ModelRuntime:
    """Real compute: the adapter's stages on this rank, state moved over the world."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from gfdit.comm.world import init_world

        torch.set_num_threads(1)
        self.rank = args.rank
        self.device = _device_for(args.device, args.rank)
        self.comm = init_world(args.rank, args.world_size, init_method=args.init_method,
                               backend=args.backend, device=self.device, timeout_s=args.timeout_s)
        _prepare_static_groups(self.comm)
        self.adapter = _load_adapter(args, self.device)
        self.clock = StageClock(self.adapter)
        self.states: dict[str, object] = {}
        self.pending = PendingSends()

    def migrate(self, task: RunTask) -> dict[str, float]:
        """Post this rank's sends, receive what it lacks, drop what it leaves.

        A sender outside the group does not wait for its sends (it may start its
        next task at once; see migration.py). A sender inside the group waits
        for them before computing, since its compute replaces the state the
        sends read from; its receivers are in this same task, so they are
        receiving now."""
        plan = plan_migration(task.group, task.state_ranks)
        sent, works = 0, []
        state = self.states.get(task.request_id)
        for receiver in sorted(r for r, sender in plan.items() if sender == self.rank):
            tensors = None if state is None else state.tensors
            nbytes, posted = post_send(receiver, task.task_id, tensors, getattr(state, "meta", None),
                                       self.pending, f"rank {self.rank} holds no state for {task.request_id!r}",
                                       device=self.device)
            sent, works = sent + nbytes, works + posted
        received, waited = 0, 0.0
        if self.rank in plan:
            tensors, meta, waited = receive(plan[self.rank], task.task_id, device=self.device)
            self.states[task.request_id] = _state_type()(tensors=tensors, meta=meta)
            received = sum(t.numel() * t.element_size() for t in tensors.values())
        if self.rank in task.state_ranks and self.rank not in task.group:
            self.states.pop(task.request_id, None)
        if state is None and works:
            raise StateMissing(f"rank {self.rank} was to send state of {task.request_id!r} but holds none")
        if self.rank in task.group:
            for work in works:
                work.wait()
        self.pending.reap()
        return {"sent_bytes": float(sent), "recv_bytes": float(received), "migrate_wait": waited}

    def compute(self, task: RunTask) -> list:
        if task.stage == "encode":
            self.states[task.request_id] = self.adapter.encode(task.params)
            return []
        state = self.states.get(task.request_id)
        if state is None:
            raise StateMissing(f"rank {self.rank} holds no state for request {task.request_id!r}")
        if task.stage == "denoise":
            if task.step_begin == task.step_end:
                return []  # an empty chunk only places the state (migration alone)
            self.adapter.denoise(state, task.step_begin, task.step_end, self._sp(task.group))
            return []
        return self.adapter.decode(state) if task.group[0] == self.rank else []

    def stage_timings(self) -> dict[str, float]:
        """Seconds spent in the pipeline's timed stages by the last compute (profiling)."""
        return self.clock.take()

    def _sp(self, ranks):
        if len(ranks) == 1:
            return None
        from gfdit.workers.adapter import SPContext

        return SPContext(self.comm, self.comm.group(ranks))

    def breaks_world(self, exc: BaseException) -> bool:
        """True for a failure of the world's communication: a collectives error, or
        one raised inside torch.distributed (a peer gone, a pair closed)."""
        from gfdit.comm.errors import CommError

        if isinstance(exc, CommError):
            return True
        frames = traceback.extract_tb(exc.__traceback__)
        return any(f"torch{os.sep}distributed" in frame.filename for frame in frames)

    def drop(self, request_id: str) -> None:
        self.states.pop(request_id, None)

    def limits(self):
        """The model's `ModelLimits` (sent in `WorkerReady`), if its adapter states them."""
        limits = getattr(self.adapter, "limits", None)
        return limits() if callable(limits) else None

    def close(self) -> None:
        if not self.pending.wait_all(timeout_s=10.0):
            _log(self.rank, "some state sends never completed (their receivers are gone)")
        self.comm.close()


class Worker:
    """The message loop of one worker process around a runtime (model or emulated)."""

    def __init__(self, args: argparse.Namespace, runtime) -> None:
        self.rank = args.rank
        self.runtime = runtime
        self.context = zmq.Context()
        self.socket = _dealer(self.context, args, "main")
        self.current_task: int | None = None
        self.last_seq = 0  # the controller's sequence numbers only grow (0: not numbered)
        self.failed: deque[int] = deque(maxlen=FAILED_KEPT)  # ids of the last tasks that failed here
        self.exit_code = 0
        self.stopping = threading.Event()
        self.parent = os.getppid()
        self.heartbeat = threading.Thread(
            target=self._beat, args=(args,), name="heartbeat", daemon=True)

    def serve(self) -> int:
        """Announce readiness, then run messages in order until `Shutdown`."""
        self.heartbeat.start()
        self._send(WorkerReady(rank=self.rank, pid=os.getpid(), device=str(self.runtime.device),
                               limits=self.runtime.limits()))
        handlers = {RunTask: self._run_task, DropState: self._drop, Shutdown: self._shutdown}
        try:
            while not self.stopping.is_set():
                msg = self._next_message()
                if msg is not None:
                    handlers[type(msg)](msg)
        finally:
            self.stopping.set()
            self.runtime.close()
            self.heartbeat.join(timeout=2.0)
            self.socket.close(linger=1000)
            self.context.term()
        return self.exit_code

    def _next_message(self):
        if not self.socket.poll(POLL_MS):
            if os.getppid() != self.parent:  # the pool, or on another host the node agent, is gone
                _log(self.rank, "parent process is gone; exiting")
                self._send(WorkerError(rank=self.rank, fatal=True, message="its parent process (the pool or "
                                       "its host's node agent) is gone"))  # the head need not wait for heartbeats
                self.stopping.set()
            return None
        frames = self.socket.recv_multipart()
        try:
            msg, _ = transport.decode(frames, transport.TO_WORKER)
        except ProtocolError as exc:
            _log(self.rank, f"ignored a malformed message: {exc}")
            self._send(WorkerError(rank=self.rank, message=f"malformed message ignored: {exc}"))
            return None
        return msg

    def _run_task(self, task: RunTask) -> None:
        """Run one task and answer `TaskDone`; a failure is reported, not raised.

        A failure inside the world's communication leaves peers' gloo pairs and
        message counters out of step, so this rank then reports itself fatally
        broken (`WorkerError(fatal=True)`) and stops: the pool restarts the world."""
        self.current_task = task.task_id
        timings: dict[str, float] = {}
        start = time.perf_counter()
        outputs, payload, error, broken = [], [], None, False
        try:
            outputs, payload = self._execute(task, timings, start)
        except SkippedStage as exc:
            error = str(exc)
        except Exception as exc:  # the task's top level: report, keep serving
            error, broken = f"{type(exc).__name__}: {exc}", self.runtime.breaks_world(exc)
            _log(self.rank, f"task {task.task_id} ({task.stage} of {task.request_id}) failed:\n"
                 + traceback.format_exc())
        timings["total"] = time.perf_counter() - start
        self.current_task = None
        if error is not None:
            self.failed.append(task.task_id)
        done = TaskDone(task_id=task.task_id, request_id=task.request_id, rank=self.rank,
                        ok=error is None, timings=timings, error=error, outputs=outputs)
        self._send(done, payload)
        if broken:
            self._send(WorkerError(rank=self.rank, fatal=True,
                                   message=f"communication failed in task {task.task_id} ({error}); "
                                           "the world must be restarted"))
            self.exit_code = 3
            self.stopping.set()

    def _execute(self, task: RunTask, timings: dict[str, float], start: float):
        if task.stage not in STAGES:
            raise ValueError(f"unknown stage {task.stage!r}; known: {', '.join(STAGES)}")
        if self.rank not in task.group and self.rank not in task.state_ranks:
            raise ValueError(f"rank {self.rank} is neither in group {task.group} nor holds the state")
        if task.after and task.after in self.failed:  # its previous stage failed here: nothing to build on
            raise SkippedStage(f"skipped: the previous stage of this dispatch (task {task.after}) failed")
        if task.seq and task.seq <= self.last_seq:
            raise ValueError(f"task seq {task.seq} after seq {self.last_seq}: the controller must "
                             "send every rank its tasks in one increasing order")
        self.last_seq = max(self.last_seq, task.seq)
        timings.update(self.runtime.migrate(task))
        timings["migrate"] = time.perf_counter() - start
        if self.rank not in task.group:
            return [], []
        begin, begin_cpu = time.perf_counter(), time.thread_time()
        images = self.runtime.compute(task)
        timings["compute"] = time.perf_counter() - begin
        timings["compute_cpu"] = time.thread_time() - begin_cpu
        timings.update(self.runtime.stage_timings())
        return transport.images_to_payload(images)

    def _drop(self, msg: DropState) -> None:
        self.runtime.drop(msg.request_id)

    def _shutdown(self, msg: Shutdown) -> None:
        _log(self.rank, f"shutting down ({msg.reason or 'asked'})")
        self.stopping.set()

    def _send(self, msg, payload=()) -> None:
        self.socket.send_multipart(transport.encode(msg, payload), copy=False)

    def _beat(self, args: argparse.Namespace) -> None:
        context = zmq.Context()
        socket = _dealer(context, args, "heartbeat")
        try:
            while not self.stopping.wait(args.heartbeat_s):
                beat = Heartbeat(rank=self.rank, time=time.time(), task_id=self.current_task)
                socket.send_multipart(transport.encode(beat))
        finally:
            socket.close(linger=0)
            context.term()


def _dealer(context: zmq.Context, args: argparse.Namespace, channel: str) -> zmq.Socket:
    """A DEALER to the controller that has already said its `WorkerHello` (sent first, so
    it arrives first: ZMQ keeps a connection's messages in order)."""
    identity = auth.new_identity(args.rank, channel)
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.IDENTITY, identity)
    socket.connect(args.controller)
    hello = WorkerHello(rank=args.rank, channel=channel, proof=auth.proof(args.secret, args.rank, channel, identity))
    socket.send_multipart(transport.encode(hello))
    return socket


def _prepare_static_groups(comm) -> None:
    """The `newgroup` baseline creates its communicators up front, as a static
    server does: every subset of 2+ ranks in a world of up to 6, else the aligned
    power-of-two blocks (0-1, 2-3, 0-3, ...). Group-free backends need nothing."""
    prepare = getattr(comm.backend, "prepare", None)
    if prepare is None:
        return
    n = comm.world_size
    if n <= 6:
        sets = [tuple(r for r in range(n) if mask >> r & 1) for mask in range(1, 1 << n)]
    else:
        sizes = [1 << k for k in range(1, n.bit_length()) if 1 << k <= n]
        sets = [tuple(range(start, start + size)) for size in sizes for start in range(0, n - size + 1, size)]
    prepare([ranks for ranks in sets if len(ranks) >= 2])


def _device_for(device: str, rank: int) -> str:
    """``cuda`` means this rank's GPU (rank modulo the visible devices); ``cuda:N`` GPU N."""
    if not device.startswith("cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"device {device}: this torch ({torch.__version__}) sees no CUDA GPU; install "
                           "torch's CUDA build and gfdit[cuda] (docs/deploy.md)")
    return device if device != "cuda" else f"cuda:{rank % max(1, torch.cuda.device_count())}"


def _load_adapter(args: argparse.Namespace, device: str):
    """The model adapter: `load_adapter(model)`, or a factory ``module:callable``
    named on the command line (tests and benchmarks; never network input)."""
    import torch

    dtype = getattr(torch, args.dtype)
    if args.adapter:
        module, _, name = args.adapter.partition(":")
        factory = getattr(importlib.import_module(module), name)
        return factory(args.model, device=device, dtype=dtype)
    from gfdit.workers.adapter import load_adapter

    return load_adapter(args.model, device=device, dtype=dtype)


def _state_type():
    from gfdit.workers.adapter import RequestState

    return RequestState


def _log(rank: int, text: str) -> None:
    print(f"[gfdit worker {rank}] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gfdit.workers.process", description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world-size", type=int, required=True)
    p.add_argument("--controller", required=True, help="the controller's ROUTER address")
    p.add_argument("--init-method", default="", help="torch.distributed init method (file:// or tcp://)")
    p.add_argument("--backend", default="p2p", help="collectives backend: p2p, shm, newgroup")
    p.add_argument("--model", default="tiny")
    p.add_argument("--adapter", default="", help="adapter factory module:callable (tests, benchmarks)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--emulate", action="store_true", help="sleep RunTask.emulate_s; no model, no torch")
    p.add_argument("--heartbeat-s", type=float, default=1.0)
    p.add_argument("--timeout-s", type=float, default=120.0, help="collectives and world set-up time-out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.secret = auth.take_secret()
    if not args.secret:
        _log(args.rank, f"no worker-plane secret in ${auth.SECRET_ENV}: the controller would refuse every message")
        return 2
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        if args.emulate:
            from gfdit.workers.emulated import EmulatedRuntime

            runtime = EmulatedRuntime(args.rank)
        else:
            runtime = ModelRuntime(args)
        return Worker(args, runtime).serve()
    except Exception as exc:  # the process's top level: tell the controller, exit non-zero
        _log(args.rank, "fatal:\n" + traceback.format_exc())
        _report_fatal(args, f"{type(exc).__name__}: {exc}")
        return 1


def _report_fatal(args: argparse.Namespace, message: str) -> None:
    context = zmq.Context()
    socket = _dealer(context, args, "fatal")
    socket.send_multipart(transport.encode(WorkerError(rank=args.rank, message=message, fatal=True)))
    socket.close(linger=2000)
    context.term()


if __name__ == "__main__":
    code = main()  # everything is closed: sockets, the process groups, the state sends
    sys.stdout.flush()
    sys.stderr.flush()
    # skip the interpreter's finalisation: it waits on gloo's native threads (~2.5 s per stop of
    # a real tiny-model server here), and nothing of this process needs it any more
    os._exit(code)
