"""Group descriptors: an ordered tuple of global ranks, formed locally.

Forming a group sends no message and creates no communicator: it validates the
ranks and derives this rank's index and a stable id, in O(size). Every process
that forms a group from the same ranks gets the same id, so the id can tag that
group's messages on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ID_MASK = (1 << 63) - 1
_FNV_PRIME = 1099511628211
_FNV_OFFSET = 14695981039346656037


def group_id(ranks: tuple[int, ...]) -> int:
    """A stable 63-bit id of an ordered rank tuple (FNV-1a over the ranks)."""
    h = _FNV_OFFSET
    for r in ranks:
        h = ((h ^ (r + 1)) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return (h ^ len(ranks)) & _ID_MASK


@dataclass(frozen=True, slots=True)
class Group:
    """An ordered tuple of global ranks, seen from global rank `rank`.

    `ranks[i]` is the member at index i: collectives concatenate, scatter and
    address members in this order, so (3, 1) and (1, 3) are different groups.
    `rank` need not be a member (a descriptor can describe any group), but only
    members may run the group's collectives.
    """

    ranks: tuple[int, ...]
    rank: int
    _index: int = field(init=False, repr=False, compare=False)
    _id: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ranks = self.ranks
        if type(ranks) is not tuple:
            ranks = tuple(ranks)
            object.__setattr__(self, "ranks", ranks)
        if not ranks:
            raise ValueError("a group needs at least one rank")
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"group ranks must be distinct, got {ranks}")
        for r in ranks:
            if type(r) is not int or r < 0:
                raise ValueError(f"group ranks must be non-negative ints, got {ranks}")
        index = ranks.index(self.rank) if self.rank in ranks else -1
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_id", group_id(ranks))

    @classmethod
    def form(cls, ranks, rank: int) -> "Group":
        """Form the group of `ranks` (any iterable of ints) as seen by `rank`."""
        return cls(tuple(ranks), rank)

    @property
    def size(self) -> int:
        return len(self.ranks)

    @property
    def index(self) -> int:
        """This rank's position in `ranks`; -1 when it is not a member."""
        return self._index

    @property
    def id(self) -> int:
        """Stable id derived from the ordered ranks (same in every process)."""
        return self._id

    @property
    def is_member(self) -> bool:
        return self._index >= 0

    def __str__(self) -> str:
        return f"group{self.ranks}"
