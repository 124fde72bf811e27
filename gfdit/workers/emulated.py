"""Emulated compute: a worker that takes as long as the cost model says.

In emulated mode a worker loads no model, imports no torch and joins no
torch.distributed world: there is nothing to communicate. Each task sleeps
`RunTask.emulate_s` seconds, which the controller computes from the engine's
cost model (`task_seconds`, migration included). The worker still keeps the
same bookkeeping as a real one (which requests it holds state for, migration
per `plan_migration`, drop), so the control plane — ordering, migration
senders, drops, heartbeats, failures — runs exactly as for real workers. A
task whose state is missing fails the same way. This is how 8-64 "GPUs" run on
one machine: a worker process costs a Python interpreter and a few MB.
"""

from __future__ import annotations

import time

from gfdit.protocol import RunTask
from gfdit.shapes import params_shape
from gfdit.workers.migration import plan_migration


class EmulatedError(RuntimeError):
    """An emulated task that cannot run (no duration, no state)."""


class EmulatedRuntime:
    """Sleeps instead of computing; holds request ids instead of tensors."""

    device = "emulated"

    def limits(self) -> None:
        """No model, no limits: the server applies only its configured ones."""
        return None

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.states: set[str] = set()

    def migrate(self, task: RunTask) -> dict[str, float]:
        """Bookkeeping of `plan_migration`; the time is part of `emulate_s`."""
        plan = plan_migration(task.group, task.state_ranks)
        sends_here = any(sender == self.rank for sender in plan.values())
        if sends_here and task.request_id not in self.states:
            raise EmulatedError(f"rank {self.rank} must send state of {task.request_id!r} but holds none")
        if self.rank in plan:
            self.states.add(task.request_id)
        if self.rank in task.state_ranks and self.rank not in task.group:
            self.states.discard(task.request_id)
        return {}

    def compute(self, task: RunTask) -> list:
        if task.emulate_s is None or task.emulate_s < 0:
            raise EmulatedError(f"task {task.task_id}: emulated mode needs emulate_s >= 0, got {task.emulate_s}")
        if task.stage != "encode" and task.request_id not in self.states:
            raise EmulatedError(f"rank {self.rank} holds no state for request {task.request_id!r}")
        time.sleep(task.emulate_s)
        if task.stage == "encode":
            self.states.add(task.request_id)
        return []

    def stage_timings(self) -> dict[str, float]:
        return {}

    def breaks_world(self, exc: BaseException) -> bool:
        return False  # there is no world to break

    def drop(self, request_id: str) -> None:
        self.states.discard(request_id)

    def close(self) -> None:
        self.states.clear()


def task_seconds(cost_model, task: RunTask, text_tokens: int = 512) -> float:
    """Wall time of `task` by the engine's `CostModel` (migration included).

    `text_tokens` is the prompt length the cost model's text_encode stage takes;
    the request's latent tokens follow `gfdit.shapes.latent_tokens`.
    """
    shape = params_shape(task.params, text_tokens, cfg=task.params.guidance_scale not in (None, 0, 1))
    width = len(task.group)
    stage_seconds = {
        "encode": lambda: cost_model.encode_s(shape, width),
        "denoise": lambda: ((task.step_end - task.step_begin) * cost_model.step_s(shape, width)
                            + (cost_model.prepare_s(shape, width) if task.step_begin == 0 < task.step_end else 0.0)),
        "decode": lambda: cost_model.decode_s(shape, width),
    }
    if task.stage not in stage_seconds:
        raise ValueError(f"unknown stage {task.stage!r}; known: {', '.join(stage_seconds)}")
    plan = plan_migration(task.group, task.state_ranks)
    migrate = 0.0
    if plan:
        migration = cost_model.migration
        migrate = migration.seconds(migration.state_bytes(shape), len(set(task.state_ranks)), len(plan))
    return stage_seconds[task.stage]() + migrate
