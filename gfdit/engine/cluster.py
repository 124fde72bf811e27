"""The cluster: ranks, the nodes they sit on, which are free, which are lost.

Ranks are 0..gpus-1, `ranks_per_node` to a node (rank r is on node
r // ranks_per_node). A rank is in exactly one of: free, busy (running a task),
lost (its worker died; it comes back through `restore`). A group is an ordered
tuple of ranks. Where each request's state lives is tracked by the engine on
the request itself (`Tracked.holders`).
"""

from __future__ import annotations


class ClusterError(ValueError):
    """An impossible rank operation: taking a rank twice, freeing a free one."""


class Cluster:
    """Which ranks are free; the engine is its only writer."""

    def __init__(self, gpus: int, ranks_per_node: int | None = None):
        if not isinstance(gpus, int) or gpus < 1:
            raise ClusterError(f"a cluster needs at least one GPU, got {gpus!r}")
        per_node = ranks_per_node or gpus
        if per_node < 1:
            raise ClusterError(f"ranks_per_node must be positive, got {per_node}")
        self.gpus = gpus
        self.ranks_per_node = per_node
        self.several_nodes = per_node < gpus  # whether any group can cross hosts at all
        self.ranks: tuple[int, ...] = tuple(range(gpus))
        self.free: set[int] = set(self.ranks)
        self.lost: set[int] = set()

    def node_of(self, rank: int) -> int:
        return rank // self.ranks_per_node

    def spans_nodes(self, group: tuple[int, ...]) -> bool:
        """True when `group`'s ranks are on more than one node."""
        per_node = self.ranks_per_node
        return self.several_nodes and len(group) > 1 and len({r // per_node for r in group}) > 1

    def reaches_new_node(self, group: tuple[int, ...], holders: tuple[int, ...]) -> bool:
        """True when a rank of `group` lacking the state is on a node where no holder is."""
        if not self.several_nodes:
            return False
        held = {r // self.ranks_per_node for r in holders}
        return any(r // self.ranks_per_node not in held for r in group if r not in holders)

    @property
    def busy(self) -> int:
        return self.gpus - len(self.free) - len(self.lost)

    def take(self, group: tuple[int, ...]) -> None:
        """Mark the ranks of `group` busy; every one must be free."""
        free = self.free
        if not free.issuperset(group):
            raise ClusterError(f"ranks {[r for r in group if r not in free]} of group {group} are not free")
        if len(group) > 1 and len(set(group)) != len(group):
            raise ClusterError(f"group {group} names a rank twice")
        free.difference_update(group)

    def release(self, group: tuple[int, ...]) -> None:
        """Return a finished task's ranks; lost ones stay lost."""
        for rank in group:
            if rank in self.free:
                raise ClusterError(f"rank {rank} released twice")
            if rank not in self.lost:
                self.free.add(rank)

    def lose(self, ranks: tuple[int, ...]) -> None:
        self._check(ranks)
        self.lost.update(ranks)
        self.free.difference_update(ranks)

    def restore(self, ranks: tuple[int, ...]) -> tuple[int, ...]:
        """Lost ranks come back free; returns those that were lost."""
        self._check(ranks)
        back = tuple(r for r in ranks if r in self.lost)
        self.lost.difference_update(back)
        self.free.update(back)
        return back

    def _check(self, ranks: tuple[int, ...]) -> None:
        bad = [r for r in ranks if not isinstance(r, int) or not 0 <= r < self.gpus]
        if bad:
            raise ClusterError(f"ranks {bad} are not in 0..{self.gpus - 1}")
