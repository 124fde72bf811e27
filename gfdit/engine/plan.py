"""A choice for the round as a whole: widths for the competing candidates chosen together.

With `plan` (a policy attribute; `.gfp`: `param plan = true`) the round first
asks which candidates can meet their deadline if they start now: candidate i
meets it at width w when `now + est_i(w) <= deadline_i`, and its cheapest such
width m_i is the only one worth giving it (any wider one meets it too, with
more ranks). Maximising the number of deadlines met this round with the free
ranks is then a knapsack with unit values, which taking the smallest m_i first
solves exactly (ties: the policy's order). Those candidates get m_i ranks
(rule `engine:plan`); everyone else is then allocated as usual, in order, with
what is left (their width rules, `on short`, growth). TetriServe's idea;
bounded: the first `PLAN_LIMIT` candidates in order are considered.
"""

from __future__ import annotations

from .tracked import Tracked
from .view import Round

PLAN_LIMIT = 256


def plan_widths(view: Round, ordered: list[Tracked], widths: tuple[int, ...], free: int) -> dict[str, int]:
    """Request id -> width for the candidates that meet their deadline this round, most of them."""
    options = []
    for index, req in enumerate(ordered[:PLAN_LIMIT]):
        room = req.deadline - view.now
        cheapest = next((w for w in widths if w <= free and req.remaining_s(w) <= room), None)
        if cheapest is not None:
            options.append((cheapest, index, req.id))
    chosen: dict[str, int] = {}
    for width, _, rid in sorted(options):
        if width > free:
            break  # sorted by width: nothing later fits either
        chosen[rid] = width
        free -= width
    return chosen
