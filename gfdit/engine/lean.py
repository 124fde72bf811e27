"""The round of the common case, without the general round's machinery (same decisions).

Most rounds of most policies need little of `run_round`: no holds, an order
key fixed for each request's life, no pools, no pinned or lost ranks, no
quotas, `skip` on short, no plan, no budgets, and nobody reading a decision
log. For such a round `lean_round` decides what `run_round` would — the same
order, the same hooks asked in the same order, the same grants, growth and
placement — with none of the objects the general round builds for the cases
it handles (result lists, allocator, eligibility, quota and plan checks).

It gives up, returning None before it has changed anything but caches (the
hooks' own, and what its `LeanQueue` keeps), whenever the general round would
do something it does not: a hook that raises or answers a width that is not
an allowed `int` (the general round records the error and applies the hook's
fallback), an order key that cannot be compared, is NaN, is not a tuple or
differs in length from the others, a smallest width larger than the cluster.
The engine then runs the general round, which asks the same pure hooks again
and gets the same answers. Keys must be totally ordered (the
`Policy.order_key` contract): for keys that are not (sets, a NaN nested in a
key's element), the kept queue and a fresh sort may disagree on the order,
and on that alone (a request that stops waiting still leaves the queue
itself: `LeanQueue.discard`).

Whether a policy qualifies is worked out once per policy (`LeanCheck`); the
round's own conditions (no log, no lost or pinned ranks, nobody held) are
checked by the engine each round. tests/engine/test_engine_lean.py compares
whole simulations with and without it, tests/engine/test_engine_lean_inputs.py
the engine's other inputs (pins, lost ranks, restarts, cancels, swaps, a
shadow's rounds).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import islice
from math import inf as _INF
from math import isnan
from typing import TYPE_CHECKING

from .placement import Allocator, place, stays
from .policy import Policy, Why
from .scheduling import Grant, RoundResult, grow_grants, static_sort_key, widest_within
from .tracked import Tracked
from .view import Round

if TYPE_CHECKING:
    from .class_facts import ClassFacts
    from .cluster import Cluster


class LeanCheck:
    """Whether a policy's rounds can be lean, for the last two policies asked (the live one and the
    one before it: a shadow's rounds are general, `Engine.decide`)."""

    def __init__(self) -> None:
        self._known: list[tuple[Policy, bool]] = []

    def of(self, policy: Policy, class_facts: ClassFacts) -> bool:
        """Whether `policy`'s rounds qualify (`class_facts`: the engine's, for its classes' pools and shares)."""
        known = self._known
        for other, lean in known:
            if other is policy:
                return lean
        class_pools, shares = class_facts.of(policy)
        lean = bool(getattr(policy, "static_order", False) and getattr(policy, "never_holds", False)
                    and policy.on_short == "skip" and not getattr(policy, "plan", False)
                    and getattr(policy, "grow_budget", None) is None
                    and getattr(policy, "migration_budget", None) is None
                    and not policy.stage_pools and not class_pools and not shares)
        self._known = [(policy, lean), *known[:1]]
        return lean


class LeanQueue:
    """The waiting requests in one static-order policy's order, kept across rounds.

    `items` holds each filed request as one flat tuple, its sort key then itself: (order key's
    elements..., arrival, id, request). The sort key `_order_static` sorts on is (order key,
    arrival, id); with every order key a tuple of one length, the flat tuples compare exactly as
    those do, one level deep instead of two (twice as fast to file and find), and ids are unique,
    so a request is never compared. The engine reports every request that starts or stops
    waiting (`add`, `discard`); a new request is keyed and filed at the next lean round. Kept for
    one policy at a time; another policy rebuilds it.
    """

    __slots__ = ("policy", "items", "fresh", "size", "passed")

    def __init__(self) -> None:
        self.policy: Policy | None = None  # whose order `items` holds; None: nothing kept
        self.items: list[tuple] = []
        self.fresh: list[Tracked] = []  # waiting, not yet filed
        self.size = -1  # the length of every filed order key (-1: none filed yet)
        # what the last lean round learnt of the head of the queue: (count, least, latest, until):
        # its first `count` items were passed over by promises of `self.policy` made at `latest` or
        # before, holding until `until` or later, for widths of `least` or more (and within the
        # cluster); None: nothing known
        self.passed: tuple | None = None

    def restarted(self) -> None:
        """A request lost its progress (`Tracked.restart`): if it waits among the passed-over head, the
        promise it was passed over by no longer holds."""
        self.passed = None

    def add(self, req: Tracked) -> None:
        """`req` waits again (it arrived, or its task ended)."""
        if self.policy is not None:
            self.fresh.append(req)

    def discard(self, req: Tracked) -> None:
        """`req` stopped waiting (its task started, or it ended)."""
        if self.policy is None:
            return
        key = req.queue_key
        if key is None:
            self.fresh.remove(req)
            return
        items = self.items
        if items[0][-1] is req:  # the most urgent: usually the one that starts
            at = 0
        else:
            at = bisect_left(items, key)  # its key alone sorts just before its item
            if at == len(items) or items[at][-1] is not req:  # keys not totally ordered: found by a look at each
                at = next(i for i, item in enumerate(items) if item[-1] is req)
        del items[at]
        req.queue_key = None
        passed = self.passed
        if passed is not None and at < passed[0]:  # one passed over less (what is known holds for the rest)
            self.passed = (passed[0] - 1, *passed[1:]) if passed[0] > 1 else None

    def reset(self) -> None:
        for item in self.items:
            item[-1].queue_key = None
        self.policy, self.items, self.fresh, self.size, self.passed = None, [], [], -1, None

    def ordered(self, policy: Policy, view: Round, waiting: dict[str, Tracked]) -> list | None:
        """The waiting requests in `policy`'s order, as flat (key..., request) tuples; None when a key
        cannot be computed or compared (the general round reports it), is not a number (NaN), is
        not a tuple, or differs in length from the others (the general round sorts them)."""
        if self.policy is not policy:
            self.reset()
            self.policy, self.fresh = policy, list(waiting.values())
        fresh, items = self.fresh, self.items
        while fresh:
            req = fresh[-1]
            checked = req.lean_key  # (policy, flat key): computed and checked once per policy
            if checked is not None and checked[0] is policy:
                key = checked[1]
            else:
                try:
                    order, arrival, rid = static_sort_key(policy, view, req)  # the same all its life
                    if type(order) is not tuple or _has_nan(order) or arrival != arrival:
                        raise TypeError("an order key that is not a tuple, or NaN (`sorted` is not total)")
                except Exception:  # noqa: BLE001 -- the general round reports it (or sorts it)
                    self.reset()
                    return None
                key = (*order, arrival, rid)
                req.lean_key = (policy, key)
            if len(key) != self.size:
                if self.size != -1:  # keys of two lengths: flat tuples would not compare as nested ones
                    self.reset()
                    return None
                self.size = len(key)
            try:
                at = bisect_right(items, key)  # (as `insort`: after its equals; ids make keys unique)
            except Exception:  # noqa: BLE001 -- keys that cannot be compared: the general round reports it
                self.reset()
                return None
            items.insert(at, (*key, req))
            req.queue_key = key
            fresh.pop()
            passed = self.passed
            if passed is not None and at < passed[0]:  # filed among those passed over: they end before it
                self.passed = (at, *passed[1:]) if at else None
        return items


def _has_nan(values: tuple) -> bool:
    try:
        return any(map(isnan, values))  # numbers (the usual key): in C
    except (TypeError, OverflowError):  # a string, an int too large for a float
        return any(v != v for v in values)


def lean_round(policy: Policy, view: Round, waiting: dict[str, Tracked], queue: LeanQueue,
               cluster: Cluster) -> list[Grant] | None:
    """The grants of `run_round` for a lean policy on a lean round over the `waiting` requests
    (the engine's, in arrival order), placed; None: run the general round."""
    ordered = queue.ordered(policy, view, waiting)
    if ordered is None:
        return None
    widths, usable, now = policy.widths, cluster.gpus, view.now
    smallest = widths[0]
    if smallest > usable:
        return None
    left = len(cluster.free)
    grants: list[Grant] = []
    width_of = policy.width
    # the head of the queue passed over by promises last round is passed over again at once while
    # every one of those promises holds and none of their widths fits (`LeanQueue.passed`: known
    # for `policy`, as `ordered` starts over for another)
    passed = queue.passed
    if passed is not None and left < passed[1] and passed[2] <= now <= passed[3]:
        count, least, latest, until = passed
        scan = islice(ordered, count, None)
    else:
        count, least, latest, until = 0, _INF, -_INF, _INF
        scan = ordered
    head = True  # every item so far was passed over by its promise
    for item in scan:
        if left < smallest:
            break
        req = item[-1]
        m = req.width_memo  # a promise (gfdit/engine/promise.py), inlined; a waiting request's progress
        # cannot change, and the engine drops its promise when a task of it ends or it restarts
        promised = m is not None and m[0] is policy and m[3] <= now <= m[4]
        if promised:
            wanted = m[5]
            if left < wanted <= usable:  # what it wants does not fit, and nothing else could change that
                if head:
                    count += 1
                    least, latest, until = min(least, wanted), max(latest, m[3]), min(until, m[4])
                continue
        head = False
        if promised:
            why = m[6]
        else:
            try:
                wanted, why = width_of(view, req)
            except Exception:  # noqa: BLE001 -- the general round reports it
                return None
            if type(wanted) is not int or wanted not in widths:
                return None
        width, action = wanted, "fit"
        if width > usable:
            width, action = widest_within(widths, usable), "cap+fit"
        if width > left:
            continue  # skip: nothing is logged when nobody reads the decision log
        left -= width
        grants.append(Grant(req, width, None, why if isinstance(why, Why) else Why(f"{policy.name}.width"),
                            action, wanted))
    queue.passed = (count, least, latest, until) if count else None  # the head: items are filed or
    if not grants:  # removed only between rounds, so what was learnt of it holds as the round ends
        return grants
    if left == 0 and len(grants) == 1 and "sticky" in policy.placement and stays(grants[0], cluster.free):
        return grants  # nothing left to grow into, and it keeps the ranks it holds: what `place` does
    alloc = Allocator(set(cluster.free), usable, cluster.ranks_per_node)
    for grant in grants:
        alloc.add(grant.req, None, grant.width)
    if left > 0:  # the general round asks every grant's grow hook while ranks are left
        out = RoundResult()
        grow_grants(policy, view, grants, alloc, out)
        if out.errors:
            return None
    place(grants, alloc, policy.placement)
    return grants
