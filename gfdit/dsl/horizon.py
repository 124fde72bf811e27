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
the memo changes cost, never decisions (tests/dsl/test_dsl_horizon.py compares
both at every instant and over whole simulations).
"""

from __future__ import annotations

import math
import sys

from gfdit.engine.tracked import Tracked

MISS = object()  # recall: nothing kept holds
NEW = object()  # recall: the first answer at this progress
_MARGIN = 1e-9  # relative; float rounding is ~1e-16
_FINITE = sys.float_info.max
_TIES = 2.0 ** 46  # an answer chosen by arg-best holds while |values| < gap * _TIES (no new ties)


def recall(fn: object, q: object, now: float, x: object) -> object:
    """The answer `fn` kept for `q` if it still holds at `now` for bound `x`; NEW when `fn` has not
    answered for `q` at its present progress before (noted now); else MISS.

    A horizon is worth computing only for a request asked again at the same progress: nearly
    every request asked just after a task of it ended is dispatched at once, and a task's end
    voids what was kept. So the caller keeps nothing after a NEW (the note never holds: `now` is
    never in [inf, -inf]) and keeps the horizon of a later answer at that progress."""
    if type(q) is not Tracked:
        return NEW  # nothing is kept for it anyway
    memos = q.memos
    if memos is None:
        memos = q.memos = {}
    m = memos.get(fn)
    steps, encoded = q.steps_done, q.encoded
    if m is None or m[0] != steps or m[1] != encoded:
        memos[fn] = (steps, encoded, None, None, math.inf, -math.inf, None)
        return NEW
    if not m[4] <= now <= m[5] or m[2] != q.deadline or m[3] != x:  # another time, deadline or bound
        return MISS
    return m[6]


def remember(fn: object, q: object, now: float, x: object, until: float, answer: object) -> None:
    """Keep `answer` for `q` until `until` (nothing is kept when that is already past)."""
    if until > _FINITE:  # at now = inf every value is ±inf: nothing kept holds there
        until = _FINITE
    if type(q) is not Tracked or not until >= now:
        return
    if q.memos is None:
        q.memos = {}
    q.memos[fn] = (q.steps_done, q.encoded, q.deadline, x, now, until, answer)


def flip_time(minus: bool, deadline: float, x: float, rem: float) -> float:
    """A conservative time at which `k`'s test can first change: `now + rem` reaching x (finish),
    or `deadline - now - rem` reaching x (slack); -inf when it cannot be bounded."""
    t = deadline - rem - x if minus else x - rem
    if t != t:  # NaN
        return -math.inf
    if t == math.inf or t == -math.inf:
        return t
    return t - _MARGIN * (1.0 + abs(x) + abs(rem) + abs(t) + (abs(deadline) if minus else 0.0))


def found_until(minus: bool, deadline: float, x: float, rems: list[float], index: int, shrinking: bool) -> float:
    """How long the first passing k (at `index` of the tested order, `rems` its est values in
    that order) stays the answer: until it fails (shrinking) or an earlier one passes."""
    if shrinking:
        return flip_time(minus, deadline, x, rems[index])
    return min((flip_time(minus, deadline, x, rems[j]) for j in range(index)), default=math.inf)


def best_until(minus: bool, deadline: float, rems: list[float], chosen: int, now: float) -> float:
    """How long an arg-best over `now ± rem(k)` keeps choosing `chosen` (an index of `rems`, in
    the order ties are broken): while rounding cannot make any other value tie with it (an earlier
    one) or pass it (a later one tied with it now). Two values whose `rem` differ by `gap` keep their
    order while their magnitude is below gap × 2^52; `_TIES` leaves a margin of 64. Values with
    exactly equal `rem` tie forever, and the earlier one keeps winning."""
    gaps = [abs(r - rems[chosen]) for r in rems if r != rems[chosen]]
    if not gaps:
        return math.inf
    scale = max(abs(r) for r in rems) + (abs(deadline) if minus else 0.0)
    limit = min(gaps) * _TIES - scale  # |now| below this: no rounding can reorder two values
    if math.isnan(limit) or not abs(now) < limit:
        return -math.inf
    return limit


def kept_until(fn: object, q: object, now: float) -> float | None:
    """Until when the answer `fn` gave for `q` holds at `now` (None: nothing kept that holds now).
    Used for a `fn` whose bound is fixed for the request's life (its `stable` attribute)."""
    memos = q.memos if type(q) is Tracked else None
    m = memos.get(fn) if memos else None
    if m is None or m[0] != q.steps_done or m[1] != q.encoded or not m[4] <= now <= m[5]:
        return None  # made at another progress, or `now` is outside its horizon
    return m[5]
