"""Trajectory tasks, and the dispatch order the engine hands an executor.

A task is a contiguous piece of one request's trajectory: optionally the
encode stage, denoise steps [step_begin, step_end), optionally the decode
stage. With a `chunk` of c steps a request is cut into encode, chunks of up to
c steps, decode; with `chunk = all` (None) its whole remaining trajectory is
one task. Tasks are cut lazily, when the request's next task is dispatched, so
a policy swap that changes `chunk` applies to every task not yet cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .policy import Stage
from .request import Request


@dataclass(slots=True)
class Task:
    """One trajectory task in flight (engine-internal; executors see `Dispatch`)."""

    id: str
    request_id: str
    encode: bool
    step_begin: int
    step_end: int
    decode: bool
    group: tuple[int, ...] = ()
    start: float = 0.0
    duration_est: float = 0.0  # compute only, from the cost model
    migration_s: float = 0.0

    @property
    def stage(self) -> Stage:
        """The stage the task starts with (what policies and the decision log see)."""
        if self.encode:
            return "encode"
        return "denoise" if self.step_end > self.step_begin else "decode"

    @property
    def stages(self) -> tuple[Stage, ...]:
        return _STAGES_OF[self.encode, self.step_end > self.step_begin, self.decode]


_STAGES_OF: dict[tuple[bool, bool, bool], tuple[Stage, ...]] = {  # (encode, denoise, decode) -> stages
    (e, s, d): tuple(name for name, on in (("encode", e), ("denoise", s), ("decode", d)) if on)
    for e in (False, True) for s in (False, True) for d in (False, True)}


def cut_next_task(task_id: str, request_id: str, encoded: bool, steps_done: int,
                  steps: int, chunk: int | None) -> Task:
    """The next task of a request that has done `encoded` / `steps_done` of `steps`."""
    if chunk is None:
        return Task(task_id, request_id, not encoded, steps_done, steps, True)
    if not encoded:
        return Task(task_id, request_id, True, steps_done, steps_done, False)
    if steps_done < steps:
        end = steps_done + chunk
        return Task(task_id, request_id, False, steps_done, end if end < steps else steps, False)
    return Task(task_id, request_id, False, steps, steps, True)


class Dispatch(NamedTuple):
    """Run this task now: what an executor needs, and nothing it must not touch (immutable: a named
    tuple, which is built several times faster than a frozen dataclass; one is built per task).

    `group` is the ordered rank tuple that runs it. `state_ranks` are the ranks
    holding the request's state now (empty before its first task, or after a
    restart): ranks of `group` not in `state_ranks` receive the state before the
    task runs (migration), ranks of `state_ranks` not in `group` drop it.
    `migration_bytes` / `migration_s` are the cost model's estimate of that move.
    `stages` lists what the task covers, in order; `steps` is the denoise step
    range [a, b) (empty, a == b, for encode-only or decode-only tasks).
    `Engine._start` builds it with `tuple.__new__` (every field, in order, no defaults applied):
    a new field must be given there too.
    """

    task_id: str
    request_id: str
    stage: Stage
    stages: tuple[Stage, ...]
    steps: tuple[int, int]
    group: tuple[int, ...]
    state_ranks: tuple[int, ...]
    migration_bytes: int
    migration_s: float
    duration_est: float  # compute seconds by the cost model, migration excluded
    request: Request | None = None  # the request it belongs to (its `payload` is how to run it)
