"""The engine's record of one accepted request: its progress, and its read-only view.

`Tracked` is both what the engine mutates (only the engine) and the
`RequestView` that policy hooks read: hooks see properties, never the
underscore fields. Times are seconds; `clock.now` is the engine's current time.
"""

from __future__ import annotations

import math

from .costmodel import CostModel
from .policy import ClassSpec, Stage
from .request import Request, State
from .task import Dispatch, Task


class Clock:
    """The engine's notion of now, set at every engine entry point."""

    __slots__ = ("now",)

    def __init__(self, now: float = 0.0):
        self.now = now


class Tracked:
    """An accepted request's progress through its trajectory (implements RequestView)."""

    __slots__ = ("req", "id", "_clock", "_cm", "_parts", "_prepare", "state", "deadline", "priority",
                 "preemptible", "t_single", "encoded", "steps_done", "last_width",
                 "holders", "last_end", "paused_total", "held_since",
                 "task", "dispatch", "started", "ending", "attempts", "migrations", "migration_s",
                 "busy_rank_s", "run_s", "reason", "finish", "order_memo", "memos", "width_memo", "queue_key",
                 "lean_key", "chunk_memo",
                 "_rem_steps", "_rem_encoded", "_rem")

    def __init__(self, req: Request, spec: ClassSpec | None, cm: CostModel, clock: Clock):
        self.req = req
        self.id = req.id  # read many times a round: a plain attribute, not a property
        self._clock = clock
        self._cm = cm
        self._parts: dict[int, tuple[float, float, float]] = {}
        self._prepare: dict[int, float] = {}
        self._rem: dict[int, float] = {}  # remaining_s per width, for (_rem_steps, _rem_encoded)
        self._rem_steps, self._rem_encoded = -1, False
        self.t_single = req.t_single if req.t_single is not None else cm.t_single(req.shape)
        self.deadline = _deadline(req, spec, self.t_single)
        self.priority = req.priority if req.priority is not None else (spec.priority if spec else 0)
        self.preemptible = req.preemptible if req.preemptible is not None else bool(spec and spec.preemptible)
        self.state = State.QUEUED
        self.encoded = False
        self.steps_done = 0
        self.last_width = 0
        self.holders: tuple[int, ...] = ()
        self.last_end = req.arrival
        self.paused_total = 0.0
        self.held_since: float | None = None
        self.task: Task | None = None
        self.dispatch: Dispatch | None = None  # what the executor runs for `task`
        self.started = False  # a task of it was ever dispatched
        self.ending: tuple[State, str] | None = None  # cancel / fail asked while a task runs
        self.attempts = 1
        self.migrations = 0
        self.migration_s = 0.0
        self.busy_rank_s = 0.0
        self.run_s = 0.0  # time its ended tasks ran (migration included)
        self.reason: str | None = None
        self.finish: float | None = None
        self.order_memo: tuple | None = None  # ((key, arrival, id), policy) of a static order key
        self.memos: dict | None = None  # answers of width choices with their horizon (gfdit.dsl.horizon)
        self.width_memo: tuple | None = None  # a policy's width promise (gfdit.engine.promise)
        self.queue_key: tuple | None = None  # its sort key in the engine's LeanQueue (gfdit.engine.lean)
        self.lean_key: tuple | None = None  # (policy, sort key) once a LeanQueue checked the key (no NaN)
        self.chunk_memo: tuple | None = None  # (policy, chunk) when no chunk rule applies (engine.chunking)

    # ---- cost-model parts at a width (cached per request) ---------------
    def parts(self, width: int) -> tuple[float, float, float]:
        hit = self._parts.get(width)
        if hit is None:
            hit = self._parts[width] = self._cm.parts(self.req.shape, width)
        return hit

    def prepare_s(self, width: int) -> float:
        """The DiT's set-up at `width` (paid by the task with the first denoise step); cached."""
        hit = self._prepare.get(width)
        if hit is None:
            hit = self._prepare[width] = self._cm.prepare_s(self.req.shape, width)
        return hit

    def remaining_s(self, width: int) -> float:
        """All remaining work at `width`; memoised until `steps_done` or `encoded` changes (a waiting
        request is asked every round, its progress changes once per task)."""
        if self._rem_steps != self.steps_done or self._rem_encoded != self.encoded:
            self._rem = {}
            self._rem_steps, self._rem_encoded = self.steps_done, self.encoded
        hit = self._rem.get(width)
        if hit is None:
            encode, step, decode = self._parts.get(width) or self.parts(width)
            prepare = self.prepare_s(width) if self.steps_done == 0 else 0.0
            hit = self._rem[width] = ((0.0 if self.encoded else encode) + prepare
                                      + (self.req.steps - self.steps_done) * step + decode)
        return hit

    def task_s(self, task: Task, width: int) -> float:
        encode, step, decode = self._parts.get(width) or self.parts(width)
        prepare = self.prepare_s(width) if task.step_begin == 0 < task.step_end else 0.0
        return ((encode if task.encode else 0.0) + prepare + (task.step_end - task.step_begin) * step
                + (decode if task.decode else 0.0))

    def restart(self) -> None:
        """Lose all progress: the trajectory starts again from encode."""
        self.encoded = False
        self.steps_done = 0
        self.holders = ()
        self.last_width = 0
        self.width_memo = None  # made for the progress it had

    # ---- RequestView ----------------------------------------------------
    @property
    def request_class(self) -> str:
        return self.req.request_class

    @property
    def arrival(self) -> float:
        return self.req.arrival

    @property
    def age(self) -> float:
        return self._clock.now - self.req.arrival

    @property
    def waited(self) -> float:
        return self._clock.now - self.last_end if self.task is None else 0.0

    @property
    def queued(self) -> float:
        """Total time with no task in flight since arrival (held time included)."""
        running = self._clock.now - self.task.start if self.task is not None else 0.0
        return self._clock.now - self.req.arrival - self.run_s - running

    @property
    def paused(self) -> float:
        held = self._clock.now - self.held_since if self.held_since is not None else 0.0
        return self.paused_total + held

    @property
    def tokens(self) -> int:
        return self.req.tokens

    @property
    def steps(self) -> int:
        return self.req.steps

    @property
    def steps_left(self) -> int:
        return self.req.steps - self.steps_done

    @property
    def stage(self) -> Stage:
        if not self.encoded:
            return "encode"
        return "denoise" if self.steps_done < self.req.steps else "decode"

    @property
    def width(self) -> int:
        """Its running task's width; else its last finished task's, 0 if none ran yet."""
        return len(self.task.group) if self.task is not None else self.last_width

    @property
    def ranks(self) -> tuple[int, ...]:
        return self.holders

    def __repr__(self) -> str:
        return f"Tracked({self.req.id}, {self.state.value}, {self.stage}, {self.steps_done}/{self.req.steps})"


def _deadline(req: Request, spec: ClassSpec | None, t_single: float) -> float:
    if req.deadline is not None:
        return req.deadline
    if spec is None:
        return math.inf
    if spec.slo_factor is not None:
        return req.arrival + spec.slo_factor * t_single
    if spec.slo_seconds is not None:
        return req.arrival + spec.slo_seconds
    return math.inf
