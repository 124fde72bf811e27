"""What a `RunTask` must satisfy before the pool sends it (nothing is sent otherwise)."""

from __future__ import annotations

from gfdit.protocol import RunTask


def check_task(task: RunTask, num_workers: int, running) -> None:
    """Raise ValueError for a malformed task; `running`: the ids of tasks in flight."""
    if not isinstance(task, RunTask):
        raise ValueError(f"expected a RunTask, got {type(task).__name__}")
    if task.task_id in running:
        raise ValueError(f"task {task.task_id} is already running")
    for name, ranks in (("group", task.group), ("state_ranks", task.state_ranks)):
        bad = [r for r in ranks if not 0 <= r < num_workers]
        if bad:
            raise ValueError(f"task {task.task_id}: {name} ranks {bad} outside the pool of {num_workers}")
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"task {task.task_id}: {name} {ranks} repeats a rank")
    if not task.group:
        raise ValueError(f"task {task.task_id}: empty group")
    if task.stage != "encode" and not task.state_ranks:
        raise ValueError(f"task {task.task_id}: a {task.stage} task needs state_ranks")
    if not 0 <= task.step_begin <= task.step_end:
        raise ValueError(f"task {task.task_id}: bad step range [{task.step_begin}, {task.step_end})")
