"""How many denoise steps the next task of a request covers (its chunk).

In order: the policy's `chunk_rule` (a `.gfp` file's `chunk [when C] = E` rules: the first
that matches, asked only when the next task is a denoise one; it answers `(steps, Why)`), else the request's class's
own (`class L { chunk = 10 }`), else the policy's `chunk`. Under `chunk = all` (None) a task
is the whole rest of the trajectory and neither rule nor class chunk applies. A policy
without a chunk rule pays one attribute check for it.

A chunk rule that raises is a rule error like any hook's (hook `chunk`): counted and logged
by the engine, and the class's or the policy's chunk applies to that task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .policy import Policy, class_spec
from .scheduling import hook_error
from .tracked import Tracked

if TYPE_CHECKING:
    from .engine import Engine


def chunk_of(policy: Policy, tracked: Tracked, now: float, engine: "Engine") -> int | None:
    """Steps of `tracked`'s next task under `policy`: its chunk rule's, its class's, else the policy's.
    `engine` (the one cutting the task at `now`) gives the rule its round view and takes its errors."""
    if (memo := tracked.chunk_memo) is not None and memo[0] is policy:
        return memo[1]  # `policy` has no rule and a chunk: the class's or its own, the same for all its tasks
    chunk = policy.chunk
    if chunk is None:
        return None
    rule = getattr(policy, "chunk_rule", None)
    if rule is not None:
        if tracked.stage == "denoise":
            steps = _by_rule(rule, policy, tracked, now, engine)
            if steps is not None:
                return steps
    if policy.classes:
        own = getattr(class_spec(policy.classes, tracked.req.request_class), "chunk", None)
        if own is not None:
            chunk = own
    if rule is None:
        tracked.chunk_memo = (policy, chunk)
    return chunk


def _by_rule(rule, policy: Policy, tracked: Tracked, now: float, engine: "Engine") -> int | None:
    """The rule's steps on the engine's view as the task is cut (the round's earlier grants already
    hold their ranks), at most the steps left, noted in the decision log (event `chunk`, before the
    task's `dispatch`: the steps the task covers); None when no rule matches or the rule failed (then
    counted and logged)."""
    try:
        answer = rule(engine.view(now, engine.log is not None), tracked)
    except Exception as exc:  # noqa: BLE001 -- a policy hook is untrusted: fall back, count, log
        engine.record_hook_error(now, hook_error(policy, tracked, "chunk", exc))
        return None
    if answer is None:
        return None
    steps, why = min(answer[0], tracked.steps_left), answer[1]
    engine.note(now, "chunk", tracked, rule=why.rule, steps=steps, values=dict(why.values) or None)
    return steps
