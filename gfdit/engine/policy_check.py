"""Checks a policy's configuration before the engine accepts it (at start or on a swap)."""

from __future__ import annotations

from typing import Iterable

from .costmodel import CostModel
from .pinning import task_ranks
from .policy import ON_SHORT_MODES, PLACEMENTS, STAGES, Policy


class PolicyError(ValueError):
    """A policy that cannot be used, whoever found out: the engine (its configuration cannot run
    here; the message lists every problem), the policy language (a `.gfp` does not compile:
    `diagnostics` holds every located problem in source order and the message renders them,
    `file:line:col` and caret) or `gfdit.policies` (an unknown name or a missing file)."""

    def __init__(self, message: str, diagnostics: Iterable = ()) -> None:
        super().__init__(message)
        self.diagnostics = list(diagnostics)

    @property
    def errors(self) -> list:
        """The diagnostics of severity error (the rest are warnings)."""
        return [d for d in self.diagnostics if d.severity == "error"]


def check_policy(policy: Policy, cost_model: CostModel, gpus: int) -> None:
    """Raise `PolicyError` listing every problem with `policy` on `gpus` ranks."""
    problems: list[str] = []
    widths = tuple(policy.widths)
    if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
        problems.append(f"widths must be positive integers, got {list(widths)}")
    elif list(widths) != sorted(set(widths)):
        problems.append(f"widths must be ascending without repeats, got {list(widths)}")
    else:
        if not any(w <= gpus for w in widths):
            problems.append(f"no width in {list(widths)} fits {gpus} GPUs")
        # every listed width, even one above the GPU count: hooks price them all
        # (`argmin k in widths by finish(k)`), and an unpriced one fails every round
        missing = [w for w in widths if w not in cost_model.layouts]
        if missing:
            problems.append(f"the cost model has no layout for widths {missing} "
                            f"(it has {list(cost_model.widths)}); narrow the policy's "
                            f"widths, e.g. --param widths={','.join(map(str, cost_model.widths))}")
    chunk = policy.chunk
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        problems.append(f"chunk must be a positive integer or None (all), got {chunk!r}")
    if policy.on_short not in ON_SHORT_MODES:
        problems.append(f"on_short must be one of {list(ON_SHORT_MODES)}, got {policy.on_short!r}")
    bad_place = [p for p in policy.placement if p not in PLACEMENTS]
    if bad_place:
        problems.append(f"unknown placement {bad_place}; known: {list(PLACEMENTS)}")
    sized_for = getattr(policy, "pools_sized_for", None)
    if sized_for is not None and sized_for != gpus:
        problems.append(f"its pools sized by the cluster (`rest`, `{{0 .. gpus - 1}}`) are sized for "
                        f"{sized_for} GPUs, not {gpus}: fit it to this cluster first "
                        "(gfdit.policies.fit_to; gfdit simulate and serve do)")
    for name, ranks in policy.pools.items():
        bad = sorted(r for r in ranks if not isinstance(r, int) or not 0 <= r < gpus)
        if bad or not ranks:
            problems.append(f"pool {name!r} must name ranks in 0..{gpus - 1}, got {sorted(ranks)}")
    for stage, pool in policy.stage_pools.items():
        if stage not in STAGES:
            problems.append(f"stage_pools names unknown stage {stage!r}; stages: {list(STAGES)}")
        if pool not in policy.pools:
            problems.append(f"stage {stage!r} is placed in unknown pool {pool!r}; pools: {sorted(policy.pools)}")
    problems += _pool_capacity(policy, widths)
    problems += _class_pools(policy, widths)
    if policy.tick is not None and not (isinstance(policy.tick, (int, float)) and policy.tick > 0):
        problems.append(f"tick must be a positive number of seconds or None, got {policy.tick!r}")
    budget = getattr(policy, "migration_budget", None)
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
        problems.append(f"migration_budget must be a positive integer or None (a request that must move "
                        f"state would never run), got {budget!r}")
    if problems:
        raise PolicyError(f"policy {getattr(policy, 'name', '?')!r}: " + "; ".join(problems))


def _pool_capacity(policy: Policy, widths: tuple) -> list[str]:
    """With `chunk = all` one task covers every stage, so it needs ranks in all of their pools at
    once; pools that share fewer than the smallest width would fail every request. (A single
    stage's pool smaller than every width is left to the round: it fails the request with a reason.)"""
    pools = [frozenset(policy.pools[pool]) for stage, pool in policy.stage_pools.items()
             if stage in STAGES and pool in policy.pools]
    if policy.chunk is not None or len(pools) < 2 or not widths \
            or not all(isinstance(w, int) for w in widths):
        return []
    shared, smallest = frozenset.intersection(*pools), min(widths)
    if len(shared) >= smallest or any(len(p) < smallest for p in pools):
        return []
    return [f"with chunk = all one task runs {', '.join(sorted(policy.stage_pools))} together, but "
            f"their pools share {len(shared)} rank(s), fewer than the smallest width {smallest}: "
            "no request could run"]


def _class_pools(policy: Policy, widths: tuple) -> list[str]:
    """A class pinned to a pool (`class L { pool = big }`) must name a known pool whose ranks, within each
    stage pool its tasks use, hold the smallest width: otherwise every request of the class would fail."""
    if not widths or not all(isinstance(w, int) for w in widths):
        return []
    problems = []
    for name, spec in policy.classes.items():
        pool = getattr(spec, "pool", None)
        if pool is None:
            continue
        if pool not in policy.pools:
            problems.append(f"class {name!r} is pinned to unknown pool {pool!r}; pools: {sorted(policy.pools)}")
            continue
        for stages, ranks, pools in task_ranks(policy, frozenset(policy.pools[pool]), [f"class pool {pool}"]):
            if len(ranks) < min(widths):
                problems.append(f"class {name!r}: its {'/'.join(stages)} task may use {len(ranks)} rank(s) "
                                f"within {', '.join(pools)}, fewer than the smallest width {min(widths)}: "
                                "none of its requests could run")
                break
    return problems
