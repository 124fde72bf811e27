"""Rank accounting within a round (`Allocator`) and concrete rank choice (`place`).

Allocation works on counts: a grant of width w needs w free ranks of its pool.
With pools (rank sets that restrict some stages) a set of grants is feasible
when the pools can serve them all at once; this is checked greedily, most
restricted grant first, which is exact for pools that are disjoint or nested
(the usual aux/main split) and conservative otherwise.

Placement turns counts into ranks, in the policy's preference order:
- sticky: first reuse free ranks that already hold the request's state (no
  migration), most urgent request first;
- compact: then fill from a single node when one can take the rest (the node
  holding the ranks chosen so far if it can, else the fullest node that fits);
- lowest: otherwise, the lowest free ranks.
If sticky choices would make a pool infeasible, placement is redone without
sticky. A group is the sorted tuple of its ranks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .scheduling import Grant


class Allocator:
    """Free ranks of this round and the widths granted so far."""

    def __init__(self, free: set[int], usable: int, ranks_per_node: int, lost: int = 0):
        self.free = free
        self.usable = usable  # ranks not lost
        self.lost = lost
        self.ranks_per_node = ranks_per_node
        self.demands: list[tuple[frozenset[int] | None, int]] = []
        self.left = len(free)  # free ranks not yet granted
        self.pooled = False
        self._blocked: dict[frozenset[int] | None, int] = {}  # pool -> smallest width known not to fit

    def free_count(self) -> int:
        return self.left

    def capacity(self, eligible: frozenset[int] | None) -> int:
        return self.usable if eligible is None else len(eligible)

    def fits(self, eligible: frozenset[int] | None, width: int) -> bool:
        if width > self.left:
            return False
        if eligible is None and not self.pooled:
            return True
        blocked = self._blocked.get(eligible)
        if blocked is not None and width >= blocked:
            return False  # grants only ever grow within a round: still no room
        if feasible(self.demands + [(eligible, width)], self.free):
            return True
        self._blocked[eligible] = width if blocked is None else min(blocked, width)
        return False

    def add(self, req: object, eligible: frozenset[int] | None, width: int) -> None:
        self.demands.append((eligible, width))
        self.left -= width
        self.pooled = self.pooled or eligible is not None

    def fits_more(self, index: int, width: int) -> bool:
        eligible, old = self.demands[index]
        if width - old > self.left:
            return False
        if not self.pooled:
            return True
        trial = list(self.demands)
        trial[index] = (eligible, width)
        return feasible(trial, self.free)

    def grow(self, index: int, width: int) -> None:
        eligible, old = self.demands[index]
        self.demands[index] = (eligible, width)
        self.left -= width - old


def feasible(demands: Sequence[tuple[frozenset[int] | None, int]], free: set[int]) -> bool:
    """Can every (pool, width) demand get its own ranks from `free` at once?"""
    order = sorted(demands, key=lambda d: len(free) if d[0] is None else len(d[0] & free))
    left = set(free)
    for eligible, width in order:
        avail = sorted(left if eligible is None else eligible & left)
        if len(avail) < width:
            return False
        left.difference_update(avail[:width])
    return True


def place(grants: "list[Grant]", alloc: Allocator, prefs: Sequence[str]) -> None:
    """Give every grant concrete ranks (sets `grant.group`)."""
    if not grants:
        return
    if len(grants) == 1 and "sticky" in prefs and stays(grants[0], alloc.free):
        return
    if "sticky" in prefs and _place(grants, alloc, prefs, sticky=True):
        return
    if not _place(grants, alloc, prefs, sticky=False):
        raise AssertionError("placement failed after a feasible allocation")  # an engine bug


def stays(grant: "Grant", free: set[int]) -> bool:
    """A lone sticky grant whose request's state sits on exactly `width` free, eligible ranks keeps
    them: what `_place` would choose (all its holders, nothing else needed), without its work."""
    holders = grant.req.holders
    if len(holders) != grant.width or not free.issuperset(holders) or \
            (grant.eligible is not None and not grant.eligible.issuperset(holders)):
        return False
    grant.group = holders if len(holders) == 1 else tuple(sorted(holders))
    return True


def _place(grants: "list[Grant]", alloc: Allocator, prefs: Sequence[str], sticky: bool) -> bool:
    free = set(alloc.free)
    chosen: list[list[int]] = [[] for _ in grants]
    if sticky:
        for i, grant in enumerate(grants):
            own = [r for r in grant.req.holders if r in free
                   and (grant.eligible is None or r in grant.eligible)][: grant.width]
            chosen[i] = own
            free.difference_update(own)
    order = range(len(grants))
    if alloc.pooled:
        order = sorted(order, key=lambda i: len(free) if grants[i].eligible is None
                       else len(grants[i].eligible & free))
    compact = "compact" in prefs
    for i in order:
        grant = grants[i]
        need = grant.width - len(chosen[i])
        if need == 0:
            continue
        avail = sorted(free if grant.eligible is None else grant.eligible & free)
        if len(avail) < need:
            return False
        picked = _compact(avail, need, chosen[i], alloc.ranks_per_node) if compact else None
        picked = picked or avail[:need]
        chosen[i].extend(picked)
        free.difference_update(picked)
    for grant, ranks in zip(grants, chosen, strict=True):
        grant.group = tuple(sorted(ranks))
    return True


def _compact(avail: list[int], need: int, have: list[int], per_node: int) -> list[int] | None:
    """`need` ranks from one node: the node of `have` if it fits, else the fullest that fits."""
    by_node: dict[int, list[int]] = {}
    for rank in avail:
        by_node.setdefault(rank // per_node, []).append(rank)
    home = {r // per_node for r in have}
    if len(home) == 1:
        node = next(iter(home))
        if len(by_node.get(node, ())) >= need:
            return by_node[node][:need]
    fitting = [(len(ranks), node) for node, ranks in by_node.items() if len(ranks) >= need]
    if not fitting:
        return None
    _, node = min(fitting)
    return by_node[node][:need]
