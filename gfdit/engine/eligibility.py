"""Which ranks a candidate's next task may use: stage pools, its class's pool, its own pin, minus
lost ranks.

`Eligibility.of(policy)` is asked once per round: None when nothing restricts
any candidate (no stage pools, no class pools, no pinned request, no lost
rank), the common case, which lets the round skip every per-candidate check;
else a function from a candidate to its ranks (None: any rank), cached by
what decides it (the policy's revision, the kind of next task, the class pool,
the request's pin) until the cluster or the policy changes (`clear`).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from .cluster import Cluster
from .policy import STAGES, Policy, Stage, class_spec
from .tracked import Tracked

NEXT_STAGES: dict[str, tuple[Stage, ...]] = {  # the kinds of next task, and the stages each covers
    **{stage: (stage,) for stage in STAGES}, "whole": STAGES, "rest": STAGES[1:],
}


class Eligibility:
    """The engine's rank restrictions per candidate, and what it knows of them."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.pinned = 0  # active requests with their own ranks (`Request.ranks`)
        self._cache: dict[tuple, frozenset[int] | None] = {}
        self._for: Policy | None = None  # the policy the cached answers are for

    def clear(self) -> None:
        """The cluster's lost ranks changed: forget every cached answer."""
        self._cache.clear()

    def of(self, policy: Policy, class_pools: bool) -> Callable[[Tracked], frozenset[int] | None] | None:
        """This round's restriction function under `policy` (`class_pools`: whether any of its classes
        has a pool, gfdit/engine/class_facts.py), or None when nothing restricts."""
        if not (policy.stage_pools or self.cluster.lost or self.pinned or class_pools):
            return None
        if policy is not self._for:  # another policy (a swap, a shadow, a copy fitted to another size)
            self._cache.clear()
            self._for = policy
        return partial(self.ranks_for, policy=policy)

    def ranks_for(self, tracked: Tracked, policy: Policy) -> frozenset[int] | None:
        """Ranks the candidate's next task may use under `policy` (None: any rank)."""
        whole = policy.chunk is None
        if not tracked.encoded:
            kind = "whole" if whole else "encode"
        elif tracked.steps_done < tracked.req.steps:
            kind = "rest" if whole else "denoise"
        else:
            kind = "decode"
        spec = class_spec(policy.classes, tracked.req.request_class)
        pinned = getattr(spec, "pool", None)
        own = tracked.req.ranks  # the request's own pin
        key = (kind, pinned, own)  # for the policy `of` last set up (`_for`)
        if key in self._cache:
            return self._cache[key]
        ranks: frozenset[int] | None = frozenset(policy.pools.get(pinned, ())) if pinned else None
        if own is not None:
            ranks = own if ranks is None else ranks & own
        for stage in NEXT_STAGES[kind]:
            pool = policy.stage_pools.get(stage)
            if pool is not None:
                members = frozenset(policy.pools[pool])
                ranks = members if ranks is None else ranks & members
        lost = self.cluster.lost
        if ranks is not None or lost:
            ranks = (ranks if ranks is not None else frozenset(self.cluster.ranks)) - lost
        self._cache[key] = ranks
        return ranks
