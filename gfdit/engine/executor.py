"""Executors run the engine's dispatches; `SimExecutor` does it on a virtual clock.

An executor takes `Dispatch`es (`start`) and reports the tasks that ended
(`ended`). The simulator's executor knows every end time in advance; the live
server's executors learn them from workers, so `next_end` may be None there.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Protocol

from .task import Dispatch


@dataclass(frozen=True, slots=True)
class TaskEnd:
    """A task finished (ok) or failed (ok=False, with an error) at time `at`."""

    task_id: str
    at: float
    ok: bool = True
    error: str | None = None


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
    """Runs dispatched tasks and reports their ends."""

    def start(self, dispatch: Dispatch, now: float) -> None:
        """Begin running `dispatch` at `now`."""

    def ended(self, now: float) -> list[TaskEnd]:
        """Tasks that ended at or before `now`, in end order (each reported once)."""

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

    def ended(self, now: float) -> list[TaskEnd]:
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            end, _, task_id = heapq.heappop(heap)
            if self.fail_rate and self._rng.random() < self.fail_rate:
                out.append(TaskEnd(task_id, end, False, "simulated failure"))
            else:
                out.append(TaskEnd(task_id, end))
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
