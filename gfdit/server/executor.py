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

It is an `Executor` of the engine (gfdit/engine/executor.py): `start(dispatch,
now)` and `poll(now, timeout)` reporting the engine's `ExecutorEvent`s, which
the engine loop hands to the engine with `feed`, exactly as the simulator does.
The request and its generation parameters travel on the dispatch
(`dispatch.request.payload` is the `GenParams`).
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import zmq

from gfdit.engine.costmodel import CostModel
from gfdit.engine.executor import ExecutorEvent, ExecutorGone, RanksBack, RanksLost, StageEnd, TaskEnd
from gfdit.engine.request import Request
from gfdit.engine.task import Dispatch
from gfdit.protocol import RunTask

log = logging.getLogger("gfdit.server.executor")


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

    def __init__(self, pool, cost_model: CostModel, *, emulated: bool, time_scale: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 spans_nodes: Callable[[tuple[int, ...]], bool] = lambda group: False):
        """`clock`: the engine's now, stamped on every `TaskEnd`. `spans_nodes`: the cluster's
        (emulated workers then charge a group across hosts as the engine prices it)."""
        self.spans_nodes = spans_nodes
        self.pool = pool
        self.close_grace_s = 10.0  # how long close() lets workers finish their task (0: kill at once)
        self.clock = clock
        self.cost_model = cost_model
        self.emulated = emulated
        self.time_scale = time_scale
        self._wire = itertools.count(1)
        self._flights: dict[str, _Flight] = {}
        self._wire_to_task: dict[int, str] = {}
        self._recovering: threading.Thread | None = None
        self.gone = False
        self._backlog: list[ExecutorEvent] = []
        self._lock = threading.Lock()
        self.restarts = 0

    @property
    def running(self) -> int:
        """Dispatches in flight."""
        return len(self._flights)

    def next_end(self) -> float | None:
        return None  # learnt from the workers

    @property
    def limits(self):
        """What the served model can generate (`ModelLimits`), None when emulated."""
        return self.pool.limits

    @property
    def recovering(self) -> bool:
        return self._recovering is not None

    def start(self, dispatch: Dispatch, now: float) -> None:
        """Send a dispatch's stages to the pool, back to back."""
        from gfdit.workers.pool import PoolError

        flight = _Flight(dispatch, [], time.monotonic())
        self._flights[dispatch.task_id] = flight
        try:
            self._send_stages(dispatch, flight)
        except (PoolError, ValueError) as exc:  # the pool refused: the task fails, the engine retries
            self._flights.pop(dispatch.task_id)
            with self._lock:
                self._backlog.append(TaskEnd(dispatch.task_id, now, False, str(exc), state_intact=False))

    def _send_stages(self, dispatch: Dispatch, flight: _Flight) -> None:
        request = dispatch.request
        if request is None or request.payload is None:
            raise ValueError(f"dispatch {dispatch.task_id} carries no request parameters")
        params = request.payload
        state_ranks = dispatch.state_ranks
        begin, end = dispatch.steps
        after = 0  # the previous stage's wire id: a worker on which it failed skips this one
        for index, stage in enumerate(dispatch.stages):
            wire_id = next(self._wire)
            steps = (begin, end) if stage == "denoise" else ((begin, begin) if stage == "encode" else (end, end))
            task = RunTask(
                task_id=wire_id, request_id=dispatch.request_id, stage=stage,
                step_begin=steps[0], step_end=steps[1], group=dispatch.group,
                state_ranks=state_ranks, params=params,
                emulate_s=self._emulate_s(dispatch, request, stage, first=index == 0), after=after,
            )
            self.pool.submit(task)
            flight.wire_ids.append(wire_id)
            self._wire_to_task[wire_id] = dispatch.task_id
            state_ranks, after = dispatch.group, wire_id

    def _emulate_s(self, dispatch: Dispatch, request: Request, stage: str, first: bool) -> float | None:
        if not self.emulated:
            return None
        encode, step, decode = self.cost_model.parts(request.shape, len(dispatch.group))
        begin, end = dispatch.steps
        prepare = self.cost_model.prepare_s(request.shape, len(dispatch.group)) if begin == 0 < end else 0.0
        seconds = {"encode": encode, "denoise": prepare + step * (end - begin), "decode": decode}
        factor = self.cost_model.cross_node.group_factor if self.spans_nodes(dispatch.group) else 1.0
        return (seconds[stage] * factor + (dispatch.migration_s if first else 0.0)) * self.time_scale

    def drop(self, request_id: str) -> None:
        """Every worker forgets the request's state (it ended)."""
        from gfdit.workers.pool import PoolError

        if not self.gone and not self.recovering and not self.pool.dead_ranks:
            try:
                self.pool.drop(request_id)
            except PoolError as exc:  # a worker just died: the next poll reports it (and restarts the world)
                log.warning("could not drop %s on every worker: %s", request_id, exc)

    def poll(self, now: float, timeout: float = 0.0, wake=None) -> list[ExecutorEvent]:
        """Events since the last call; waits up to `timeout` for the first, or until
        `wake` (anything with a `fileno()`) becomes readable. Task ends are stamped
        with `clock()` when read, not `now`: the workers set the pace."""
        with self._lock:
            events, self._backlog = self._backlog, []
        if self.gone:
            time.sleep(min(timeout, 0.01))
            return events
        if self._recovering is not None:
            if events:
                self._recovering = None
                self.gone = any(isinstance(e, ExecutorGone) for e in events)
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

    def _translate(self, event) -> list[ExecutorEvent]:
        from gfdit.workers.pool import TaskFinished, WorkerDead, WorkerFault

        if isinstance(event, TaskFinished):
            return self._stage_finished(event)
        if isinstance(event, WorkerDead):  # one restart per world, however many members it reports dead
            return [] if self._recovering is not None else self._worker_dead(event)
        if isinstance(event, WorkerFault):
            log.warning("worker %s reported: %s", event.rank, event.message)
        return []

    def _stage_finished(self, event) -> list[ExecutorEvent]:
        task_id = self._wire_to_task.pop(event.task_id, None)
        flight = self._flights.get(task_id) if task_id is not None else None
        if flight is None:
            return []  # a stage of a dispatch that already failed or was aborted
        flight.migrate_s += max((t.get("migrate", 0.0) for t in event.timings.values()), default=0.0)
        flight.worker_s += max((t.get("total", 0.0) for t in event.timings.values()), default=0.0)
        d = flight.dispatch
        last = event.task_id == flight.wire_ids[-1]
        if event.ok and not last:
            return [StageEnd(d.task_id, d.request_id, event.stage, d.steps[1] if event.stage == "denoise"
                             else d.steps[0], len(d.group))]
        del self._flights[task_id]
        for wire_id in flight.wire_ids:
            self._wire_to_task.pop(wire_id, None)
        outputs = encode_images(event.images) if event.ok and event.images else None
        return [TaskEnd(d.task_id, self.clock(), event.ok, event.error, state_intact=False, outputs=outputs,
                        wall_s=time.monotonic() - flight.started, worker_s=flight.worker_s,
                        migrate_s=flight.migrate_s)]

    def _worker_dead(self, event) -> list[ExecutorEvent]:
        log.error("worker %d died: %s; restarting the pool", event.rank, event.reason)
        self._flights.clear()
        self._wire_to_task.clear()
        self.restarts += 1
        ranks = tuple(range(self.pool.num_workers))
        self._recovering = threading.Thread(target=self._restart, name="gfdit-pool-restart", daemon=True)
        self._recovering.start()
        return [RanksLost(ranks, f"worker {event.rank} died ({event.reason.splitlines()[0][:200]})")]

    def _restart(self) -> None:
        back: list[ExecutorEvent] = []
        for attempt in range(1, RESTART_TRIES + 1):
            try:
                self.pool.restart()
                back = [RanksBack(tuple(range(self.pool.num_workers)))]
                break
            except Exception as exc:  # noqa: BLE001 -- top of the restart thread: report, keep serving
                log.error("pool restart %d/%d failed: %s", attempt, RESTART_TRIES, exc)
                back = [ExecutorGone(f"workers could not be restarted: {str(exc).splitlines()[0][:300]}")]
        with self._lock:
            self._backlog.extend(back)

    def close(self) -> None:
        if self._recovering is not None:
            self._recovering.join(timeout=120)
        if not self.gone:
            self.pool.close(grace_s=self.close_grace_s)


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
