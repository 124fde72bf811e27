"""Executors run the engine's dispatches; `SimExecutor` does it on a virtual clock.

Every executor (this simulator's, the live server's `ProcessExecutor`) has the
`Executor` shape: `start(dispatch, now)`, and `poll(now, timeout)` for what
happened since, as `ExecutorEvent`s. `feed(engine, event, now)` is the one way
a driver hands those events to the engine: the simulator and the server call it
alike. The simulator's executor knows every end time in advance; a live one
learns them from workers, so its `next_end` is None.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .task import Dispatch

if TYPE_CHECKING:
    from .engine import Engine


class TaskEnd(NamedTuple):
    """A dispatched task finished (ok) or failed (ok=False, with an error) at engine time `at`
    (immutable: a named tuple, built several times faster than a frozen dataclass).

    `state_intact=False`: the executor cannot vouch for the request's state (a
    failed denoise may have half-updated it), so a retry starts from encode.
    `outputs` is what a final task produced (the server: image descriptors and
    frames); the engine hands it on with the request's `Finished` event and
    never reads it. `wall_s` / `worker_s` / `migrate_s` are measured by live
    executors (wall time at the executor, the workers' own time, migration).
    """

    task_id: str
    at: float
    ok: bool = True
    error: str | None = None
    state_intact: bool = True
    outputs: object = None
    wall_s: float = 0.0
    worker_s: float = 0.0
    migrate_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StageEnd:
    """One stage of a multi-stage task finished: progress only (the request's state
    changes when the whole task ends)."""

    task_id: str
    request_id: str
    stage: str
    step_end: int
    width: int


@dataclass(frozen=True, slots=True)
class RanksLost:
    """Ranks died (their tasks are lost with them)."""

    ranks: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class RanksBack:
    """Lost ranks are usable again."""

    ranks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ExecutorGone:
    """Nothing can run any more (e.g. the worker pool could not be restarted)."""

    reason: str


ExecutorEvent = TaskEnd | StageEnd | RanksLost | RanksBack | ExecutorGone


def feed(engine: "Engine", event: ExecutorEvent, now: float) -> str | None:
    """Hand one executor event to the engine (what the simulator and the server both do).
    Returns `task_done`'s answer for a `TaskEnd`, else None."""
    if isinstance(event, TaskEnd):
        return engine.task_done(event.task_id, event.at, event.ok, event.error, event.state_intact,
                                outputs=event.outputs)
    if isinstance(event, RanksLost):
        engine.ranks_lost(event.ranks, event.reason, now)
    elif isinstance(event, RanksBack):
        engine.ranks_restored(event.ranks, now)
    elif isinstance(event, ExecutorGone):
        for request_id in list(engine.active):
            engine.fail(request_id, event.reason, now)
    return None  # StageEnd: progress only


@dataclass(frozen=True, slots=True)
class Span:
    """One task on one group, for timelines: [start, end), migration first."""

    request_id: str
    task_id: str
    stage: str
    steps: tuple[int, int]
    group: tuple[int, ...]
    start: float
    end: float
    migration_s: float


class Executor(Protocol):
    """Runs dispatched tasks and reports what happened to them."""

    def start(self, dispatch: Dispatch, now: float) -> None:
        """Begin running `dispatch` at `now`."""

    def poll(self, now: float, timeout: float = 0.0) -> list[ExecutorEvent]:
        """Events since the last call, each reported once: a virtual executor's up to
        `now`; a live one waits up to `timeout` wall seconds for the first."""

    def next_end(self) -> float | None:
        """When the next running task will end, if known."""

    @property
    def running(self) -> int:
        """How many tasks are in flight."""


class SimExecutor:
    """Virtual time: a task takes its migration time plus the cost model's compute time.

    `fail_rate` (0..1, seeded) makes tasks fail at their end, to exercise the
    engine's retry path in tests. `spans`, when `record` is set, keeps one Span
    per task for timelines.
    """

    def __init__(self, record: bool = False, fail_rate: float = 0.0, seed: int = 0):
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._rng = random.Random(seed)
        self.fail_rate = fail_rate
        self.spans: list[Span] | None = [] if record else None

    def start(self, dispatch: Dispatch, now: float) -> None:
        end = now + dispatch.migration_s + dispatch.duration_est
        self._seq += 1
        heapq.heappush(self._heap, (end, self._seq, dispatch.task_id))
        if self.spans is not None:
            self.spans.append(Span(dispatch.request_id, dispatch.task_id, dispatch.stage, dispatch.steps,
                                   dispatch.group, now, end, dispatch.migration_s))

    def poll(self, now: float, timeout: float = 0.0) -> list[ExecutorEvent]:
        fails = self.fail_rate
        return [TaskEnd(task_id, end, False, "simulated failure") if fails and self._rng.random() < fails
                else TaskEnd(task_id, end) for task_id, end in self.ended(now)]

    def ended(self, now: float) -> list[tuple[str, float]]:
        """(task id, end) of the tasks that ended by `now`, all well (`poll` without events or
        failures: what the simulator uses when `fail_rate` is 0)."""
        heap, out = self._heap, []
        while heap and heap[0][0] <= now:
            end, _, task_id = heapq.heappop(heap)
            out.append((task_id, end))
        return out

    def next_end(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def forget(self, task_ids: set[str]) -> None:
        """Drop tasks the engine aborted (their ranks were lost)."""
        self._heap = [item for item in self._heap if item[2] not in task_ids]
        heapq.heapify(self._heap)

    @property
    def running(self) -> int:
        return len(self._heap)
