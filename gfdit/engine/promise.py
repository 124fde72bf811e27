"""A policy's promise about its width answer: the same width until a given time.

A waiting request is asked its width every round although the answer seldom
changes. A policy that can prove how long its answer holds (a compiled `.gfp`
width rule: gfdit/dsl/horizon.py) records it on the request with `promise`;
the scheduling round then uses the promised answer instead of calling the
width hook, and passes over a candidate whose promised width is more than the
free ranks without any call (scheduling.py). A promise holds only for the
policy object that made it, the request's progress when it was made
(`steps_done`, `encoded`: its next stage and its remaining work), and `now`
within [made, until]; anything else asks the hook again. The engine also drops a
request's promise when a task of it ends or it restarts (its progress changes
then), which lets the lean round (lean.py) check only the policy and the time.
Decisions are the same with or without promises; only their cost changes.
"""

from __future__ import annotations

from .policy import Policy, Why
from .tracked import Tracked


def promise(req: Tracked, policy: Policy, now: float, until: float, width: int, why: Why) -> None:
    """`policy` answers `width` (`why`) for `req` at every `now` in [now, until] while its progress
    stays as it is now."""
    if until >= now:
        req.width_memo = (policy, req.steps_done, req.encoded, now, until, width, why)


def promised(req: Tracked, policy: Policy, now: float) -> tuple[int, Why] | None:
    """The (width, why) `policy` promised for `req` at `now`, or None."""
    m = req.width_memo
    if m is None or m[0] is not policy or m[1] != req.steps_done or m[2] is not req.encoded \
            or not m[3] <= now <= m[4]:
        return None
    return m[5], m[6]
