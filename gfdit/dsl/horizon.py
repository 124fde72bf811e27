"""How long a width choice's answer holds while its request waits: a memo with a time horizon.

A waiting request is asked its width every round, and its answer rarely
changes: `min k in widths where finish(k) <= req.deadline` compares
`now + est(k)` with a value fixed while the request waits, and `est(k)` is
fixed until its next task ends. Each `k`'s test flips at most once as `now`
grows (floating-point addition and subtraction are monotone), so the answer
found at `t0` stays the answer until a flip that matters: the chosen k failing
(when tests can only go from passing to failing) or an earlier k passing (the
other way round). That time is computed once, a safety margin far above any
rounding error taken off, and the answer is kept on the request with it.

A kept answer is used only when everything it was computed from is unchanged:
the same closure (a new policy or reload compiles new ones), the same progress
(`steps_done`, `encoded`), the same deadline and the same bound, and `now` in
[t0, horizon]. Values are therefore exactly those a fresh evaluation gives;
the memo changes cost, never decisions (tests/dsl/test_horizon.py compares
both on every round of simulations).
"""

from __future__ import annotations

import math
import sys

from gfdit.engine.tracked import Tracked

MISS = object()
_MARGIN = 1e-9  # relative; float rounding is ~1e-16
_FINITE = sys.float_info.max
_TIES = 2.0 ** 46  # an answer chosen by arg-best holds while |values| < gap * _TIES (no new ties)


def recall(fn: object, q: object, now: float, x: object) -> object:
    """The answer `fn` kept for `q` if it still holds at `now` for bound `x`, else MISS."""
    memos = q.memos if type(q) is Tracked else None
    if not memos:
        return MISS
    m = memos.get(fn)
    if m is None or m[0] != q.steps_done or m[1] != q.encoded or m[2] != q.deadline or m[3] != x \
            or not m[4] <= now <= m[5]:
        return MISS
    return m[6]


def remember(fn: object, q: object, now: float, x: object, until: float, answer: object) -> None:
    """Keep `answer` for `q` until `until` (nothing is kept when that is already past)."""
    until = min(until, _FINITE)  # at now = inf every value is ±inf: nothing kept holds there
    if type(q) is not Tracked or not until >= now:
        return
    if q.memos is None:
        q.memos = {}
    q.memos[fn] = (q.steps_done, q.encoded, q.deadline, x, now, until, answer)


def flip_time(minus: bool, deadline: float, x: float, rem: float) -> float:
    """A conservative time at which `k`'s test can first change: `now + rem` reaching x (finish),
    or `deadline - now - rem` reaching x (slack); -inf when it cannot be bounded."""
    t = deadline - rem - x if minus else x - rem
    if math.isnan(t):
        return -math.inf
    if math.isinf(t):
        return t
    return t - _MARGIN * (1.0 + abs(x) + abs(rem) + abs(t) + (abs(deadline) if minus else 0.0))


def found_until(minus: bool, deadline: float, x: float, rems: list[float], index: int, shrinking: bool) -> float:
    """How long the first passing k (at `index` of the tested order, `rems` its est values in
    that order) stays the answer: until it fails (shrinking) or an earlier one passes."""
    if shrinking:
        return flip_time(minus, deadline, x, rems[index])
    return min((flip_time(minus, deadline, x, rems[j]) for j in range(index)), default=math.inf)


def best_until(minus: bool, deadline: float, rems: list[float], chosen: int) -> float:
    """How long an arg-best over `now ± rem(k)` keeps choosing `chosen` (an index of `rems`, in
    the order ties are broken): until rounding could make an earlier value tie with it."""
    gaps = [abs(rems[j] - rems[chosen]) for j in range(chosen)]
    if not gaps:
        return math.inf
    scale = max(abs(r) for r in rems) + (abs(deadline) if minus else 0.0)
    until = min(gaps) * _TIES - scale
    return until if not math.isnan(until) else -math.inf
