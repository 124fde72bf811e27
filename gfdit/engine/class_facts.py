"""What a policy's classes ask of every round, worked out once per policy.

Whether any class has a rank pool (the round must then look up each
candidate's ranks) or a share (the round must count quotas) does not change
once a policy is built; asking every class every round was a measurable part
of a simulated round. `ClassFacts` belongs to one engine and remembers the
answers for the last two policies it was asked about: the live one and, on a
server with a shadow candidate, that candidate.
"""

from __future__ import annotations

from .policy import Policy


class ClassFacts:
    """(any class has a pool, any class has a share) per policy, for the last two policies asked."""

    def __init__(self) -> None:
        self._known: list[tuple[Policy, bool, bool]] = []

    def of(self, policy: Policy) -> tuple[bool, bool]:
        for known, pools, shares in self._known:
            if known is policy:
                return pools, shares
        specs = policy.classes.values()
        pools = any(getattr(s, "pool", None) for s in specs)
        shares = any(getattr(s, "share", None) is not None for s in specs)
        self._known = [(policy, pools, shares), *self._known[:1]]
        return pools, shares
