"""The process executor: engine dispatches in, worker-pool tasks out, and back.

The engine hands out `Dispatch`es (a task that may span several stages when a
policy runs a whole trajectory as one task); the worker plane runs one stage
per `RunTask`. The executor cuts each dispatch into its stages and sends them
to the pool back to back: the group's members run them strictly in the order
received, and the pool sends every task to all its ranks in one global order,
so the pool is the single sequencer and collectives of one group never cross.
A dispatch ends when its last stage reports (or when any stage fails).

Emulated workers sleep `emulate_s`: the engine's own estimate (the same numbers
the simulator charges: stage time at the width plus migration) times the time
scale, so a server run and a simulation of the same trace are comparable.

A dead worker takes the whole world down (a torch.distributed world cannot lose
a member): the executor reports every rank lost, restarts the pool on a side
thread (the engine loop keeps serving clients meanwhile) and reports the ranks
back when the fresh world is ready.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

import zmq

from gfdit.engine.costmodel import CostModel
from gfdit.engine.request import Request
from gfdit.engine.task import Dispatch
from gfdit.protocol import GenParams, RunTask

log = logging.getLogger("gfdit.server.executor")


@dataclass(frozen=True)
class TaskEnded:
    """A dispatch finished. `outputs`/`payload` carry the images of a decode."""

    task_id: str
    request_id: str
    ok: bool
    error: str | None = None
    outputs: list[dict[str, str]] = field(default_factory=list)
    payload: list[bytes] = field(default_factory=list)
    migrate_s: float = 0.0
    wall_s: float = 0.0
    worker_s: float = 0.0  # the workers' own time (slowest rank per stage, summed)


@dataclass(frozen=True)
class StageEnded:
    """One stage of a multi-stage dispatch finished (for progress events)."""

    task_id: str
    request_id: str
    stage: str
    step_end: int
    width: int


@dataclass(frozen=True)
class RanksLost:
    ranks: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class RanksBack:
    ranks: tuple[int, ...]


@dataclass(frozen=True)
class PoolGone:
    """The pool could not be restarted: nothing can run any more."""

    reason: str


ExecEvent = TaskEnded | StageEnded | RanksLost | RanksBack | PoolGone
RESTART_TRIES = 2


@dataclass
class _Flight:
    dispatch: Dispatch
    wire_ids: list[int]
    started: float
    migrate_s: float = 0.0
    worker_s: float = 0.0


class ProcessExecutor:
    """Drives a `gfdit.workers.pool.WorkerPool` from the engine loop's thread."""

    def __init__(self, pool, cost_model: CostModel, *, emulated: bool, time_scale: float = 1.0):
        self.pool = pool
        self.cost_model = cost_model
        self.emulated = emulated
        self.time_scale = time_scale
        self._wire = itertools.count(1)
        self._flights: dict[str, _Flight] = {}
        self._wire_to_task: dict[int, str] = {}
        self._recovering: threading.Thread | None = None
        self.gone = False
        self._backlog: list[ExecEvent] = []
        self._lock = threading.Lock()
        self.restarts = 0

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    @property
    def recovering(self) -> bool:
        return self._recovering is not None

    def start(self, dispatch: Dispatch, request: Request, params: GenParams) -> None:
        """Send a dispatch's stages to the pool, back to back."""
        from gfdit.workers.pool import PoolError

        flight = _Flight(dispatch, [], time.monotonic())
        self._flights[dispatch.task_id] = flight
        try:
            self._send_stages(dispatch, request, params, flight)
        except (PoolError, ValueError) as exc:  # the pool refused: the task fails, the engine retries
            self._flights.pop(dispatch.task_id)
            with self._lock:
                self._backlog.append(TaskEnded(dispatch.task_id, dispatch.request_id, False, str(exc)))

    def _send_stages(self, dispatch: Dispatch, request: Request, params: GenParams, flight: _Flight) -> None:
        state_ranks = dispatch.state_ranks
        begin, end = dispatch.steps
        for index, stage in enumerate(dispatch.stages):
            wire_id = next(self._wire)
            steps = (begin, end) if stage == "denoise" else ((begin, begin) if stage == "encode" else (end, end))
            task = RunTask(
                task_id=wire_id, request_id=dispatch.request_id, stage=stage,
                step_begin=steps[0], step_end=steps[1], group=dispatch.group,
                state_ranks=state_ranks, params=params,
                emulate_s=self._emulate_s(dispatch, request, stage, first=index == 0),
            )
            self.pool.submit(task)
            flight.wire_ids.append(wire_id)
            self._wire_to_task[wire_id] = dispatch.task_id
            state_ranks = dispatch.group

    def _emulate_s(self, dispatch: Dispatch, request: Request, stage: str, first: bool) -> float | None:
        if not self.emulated:
            return None
        encode, step, decode = self.cost_model.parts(request.shape, len(dispatch.group))
        seconds = {"encode": encode, "denoise": step * (dispatch.steps[1] - dispatch.steps[0]), "decode": decode}
        return (seconds[stage] + (dispatch.migration_s if first else 0.0)) * self.time_scale

    def drop(self, request_id: str) -> None:
        """Every worker forgets the request's state (it ended)."""
        from gfdit.workers.pool import PoolError

        if not self.gone and not self.recovering and not self.pool.dead_ranks:
            try:
                self.pool.drop(request_id)
            except PoolError as exc:  # a worker just died: the next poll reports it (and restarts the world)
                log.warning("could not drop %s on every worker: %s", request_id, exc)

    def poll(self, timeout: float, wake=None) -> list[ExecEvent]:
        """Events since the last call; waits up to `timeout` for the first, or until
        `wake` (anything with a `fileno()`) becomes readable."""
        with self._lock:
            events, self._backlog = self._backlog, []
        if self.gone:
            time.sleep(min(timeout, 0.01))
            return events
        if self._recovering is not None:
            if events:
                self._recovering = None
                self.gone = any(isinstance(e, PoolGone) for e in events)
            else:
                time.sleep(min(timeout, 0.01))
            return events
        if wake is not None and timeout > 0 and not events:
            poller = zmq.Poller()
            poller.register(self.pool._router, zmq.POLLIN)  # a worker's message: the pool reads it below
            poller.register(wake, zmq.POLLIN)
            poller.poll(timeout * 1000)
            timeout = 0.0
        for event in self.pool.poll(timeout):
            events.extend(self._translate(event))
        return events

    def _translate(self, event) -> list[ExecEvent]:
        from gfdit.workers.pool import TaskFinished, WorkerDead, WorkerFault

        if isinstance(event, TaskFinished):
            return self._stage_finished(event)
        if isinstance(event, WorkerDead):  # one restart per world, however many members it reports dead
            return [] if self._recovering is not None else self._worker_dead(event)
        if isinstance(event, WorkerFault):
            log.warning("worker %s reported: %s", event.rank, event.message)
        return []

    def _stage_finished(self, event) -> list[ExecEvent]:
        task_id = self._wire_to_task.pop(event.task_id, None)
        flight = self._flights.get(task_id) if task_id is not None else None
        if flight is None:
            return []  # a stage of a dispatch that already failed or was aborted
        flight.migrate_s += max((t.get("migrate", 0.0) for t in event.timings.values()), default=0.0)
        flight.worker_s += max((t.get("total", 0.0) for t in event.timings.values()), default=0.0)
        d = flight.dispatch
        last = event.task_id == flight.wire_ids[-1]
        if event.ok and not last:
            return [StageEnded(d.task_id, d.request_id, event.stage, d.steps[1] if event.stage == "denoise"
                               else d.steps[0], len(d.group))]
        del self._flights[task_id]
        for wire_id in flight.wire_ids:
            self._wire_to_task.pop(wire_id, None)
        outputs, payload = encode_images(event.images) if event.ok else ([], [])
        return [TaskEnded(d.task_id, d.request_id, event.ok, event.error, outputs, payload,
                          flight.migrate_s, time.monotonic() - flight.started, flight.worker_s)]

    def _worker_dead(self, event) -> list[ExecEvent]:
        log.error("worker %d died: %s; restarting the pool", event.rank, event.reason)
        self._flights.clear()
        self._wire_to_task.clear()
        self.restarts += 1
        ranks = tuple(range(self.pool.num_workers))
        self._recovering = threading.Thread(target=self._restart, name="gfdit-pool-restart", daemon=True)
        self._recovering.start()
        return [RanksLost(ranks, f"worker {event.rank} died ({event.reason.splitlines()[0][:200]})")]

    def _restart(self) -> None:
        back: list[ExecEvent] = []
        for attempt in range(1, RESTART_TRIES + 1):
            try:
                self.pool.restart()
                back = [RanksBack(tuple(range(self.pool.num_workers)))]
                break
            except Exception as exc:  # noqa: BLE001 -- top of the restart thread: report, keep serving
                log.error("pool restart %d/%d failed: %s", attempt, RESTART_TRIES, exc)
                back = [PoolGone(f"workers could not be restarted: {str(exc).splitlines()[0][:300]}")]
        with self._lock:
            self._backlog.extend(back)

    def close(self) -> None:
        if self._recovering is not None:
            self._recovering.join(timeout=120)
        if not self.gone:
            self.pool.close()


def encode_images(images) -> tuple[list[dict[str, str]], list[bytes]]:
    """PNG frames for the client (raw RGB when Pillow is missing)."""
    outputs, payload = [], []
    for image in images:
        try:
            from PIL import Image
        except ImportError:
            shape = ",".join(str(n) for n in image.shape)
            outputs.append({"mime": "application/x-raw", "shape": shape, "dtype": str(image.dtype)})
            payload.append(image.tobytes())
            continue
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        outputs.append({"mime": "image/png", "shape": ",".join(str(n) for n in image.shape)})
        payload.append(buffer.getvalue())
    return outputs, payload
