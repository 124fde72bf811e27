"""What the engine tells its driver: typed events, drained with `Engine.take_events()`.

Every input (`submit`, `cancel`, `fail`, `task_done`, `ranks_lost`, ...) and
every round (`schedule`) may append events; the driver drains them after each
call it makes. The simulator keeps the `Finished` outcomes for its report; the
live server maps every event to a client's progress message and its metrics,
and keeps no copy of request state of its own: the engine is the only owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from .request import Outcome
from .task import Dispatch


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """A task was dispatched. `first`: the request's first task since it arrived
    (`queue_s` = arrival to now). The task moves to new ranks when `dispatch.group`
    differs from `dispatch.state_ranks`."""

    dispatch: Dispatch
    request_class: str
    steps: int  # the request's total denoise steps
    first: bool
    queue_s: float


@dataclass(frozen=True, slots=True)
class Advanced:
    """A task ended well: the request's trajectory moved on to `dispatch.steps[1]` (the
    request's state now lives on `dispatch.group`)."""

    dispatch: Dispatch


@dataclass(frozen=True, slots=True)
class Held:
    """A request began to sit out rounds (a hold rule, or a hook error): it was not held before."""

    request_id: str
    stage: str
    step: int
    steps: int
    reason: str


@dataclass(frozen=True, slots=True)
class Retrying:
    """A request's task failed or its ranks were lost; it will run again (`reason` says why)."""

    request_id: str
    stage: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finished:
    """A request ended (completed, failed, cancelled) or was rejected. `outputs` is what
    the executor reported with the task that completed it (the server: its images)."""

    outcome: Outcome
    outputs: object = None


EngineEvent = TaskStarted | Advanced | Held | Retrying | Finished
