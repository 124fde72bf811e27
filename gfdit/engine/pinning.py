"""A request pinned to ranks (`Request.ranks`), judged at intake.

The engine runs a pinned request's tasks only on its ranks, intersected with its
class's pool (`class L { pool = big }`) and each task's stages' pools (`place`):
see `gfdit.engine.eligibility`. A pin that can never run is refused when submitted,
with the reason, instead of failing later as unplaceable: a rank outside the
cluster, or a task whose allowed ranks are fewer than the policy's smallest width.
A policy reloaded after a request was accepted can still make its pin impossible;
that request then fails with the unplaceable reason (it is never lost).
"""

from __future__ import annotations

from typing import Iterator

from .policy import STAGES, Policy, class_spec
from .request import Request


def pin_problem(request: Request, policy: Policy, gpus: int) -> str | None:
    """Why `request`'s pinned ranks can never run under `policy` on `gpus` ranks; None if they can
    (or it is not pinned)."""
    own = request.ranks
    if own is None:
        return None
    outside = sorted(r for r in own if r >= gpus)
    if outside:
        return f"pinned ranks {outside} are outside the cluster (ranks 0..{gpus - 1})"
    spec = class_spec(policy.classes, request.request_class)
    pool = getattr(spec, "pool", None)
    allowed = own & frozenset(policy.pools.get(pool, ())) if pool else own
    for stages, ranks, pools in task_ranks(policy, allowed, [f"class pool {pool}"] if pool else []):
        if len(ranks) < policy.widths[0]:
            within = f" within {', '.join(pools)}" if pools else ""
            return (f"pinned ranks {sorted(own)} leave {len(ranks)} rank(s){within} for its "
                    f"{'/'.join(stages)} task, fewer than the smallest width {policy.widths[0]}")
    return None


def task_ranks(policy: Policy, allowed: frozenset[int],
               labels: list[str]) -> Iterator[tuple[tuple[str, ...], frozenset[int], list[str]]]:
    """For each task a request runs under `policy` (one with `chunk = all`, else one per stage): its
    stages, the ranks of `allowed` its stages' pools leave, and `labels` plus the pools that narrowed them."""
    tasks = [STAGES] if policy.chunk is None else [(stage,) for stage in STAGES]  # chunk = all: one task
    for stages in tasks:
        ranks, pools = allowed, list(labels)
        for stage in stages:
            stage_pool = policy.stage_pools.get(stage)
            if stage_pool in policy.pools:
                ranks = ranks & frozenset(policy.pools[stage_pool])
                pools.append(f"{stage} pool {stage_pool}")
        yield stages, ranks, pools
