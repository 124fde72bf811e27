"""One scheduling round: hold -> order -> width -> allocate -> grow -> place.

`run_round` asks the policy's hooks about the candidates (requests whose next
task is ready and not running) and returns who runs on which ranks. It mutates
no request; the engine applies the result. Admission happens earlier, at submit.

Semantics (docs/engine.md has the full account):
- hold: a candidate whose `hold` hook returns a Why sits this round out.
- order: sort by the policy's key, ties by arrival then id.
- width: the wanted width must be in `policy.widths`; one larger than every
  rank the candidate may use is capped to the largest allowed width that fits
  its pool (logged as rule ``engine:cap``).
- allocate: a width that fits the free ranks is granted; otherwise `on_short`:
  (with skip or shrink, a candidate for whose ranks not even the smallest
  allowed width fits is passed over without asking its width hook: the
  answer could not change anything)
  skip (go on with the next), shrink (largest allowed width that fits, if any),
  reserve (stop: nobody after it gets ranks this round, and nothing grows).
- grow: while ranks stay free, the most urgent placed candidate whose `grow`
  hook answers moves to the smallest allowed wider width that fits, stays within
  the hook's bound and finishes strictly sooner by the cost model; then the
  search restarts from the most urgent (urgency is `order by` order). A
  candidate's `req.width` stays the width of its last task throughout, so a
  request keeps growing while it gains, up to the bound.
- place: see `placement.py`.
A hook that raises is reported as an error (`HookError`: the rule's location,
from `RuleError.rule`, or ``python:NAME.HOOK``) and the round goes on with that
hook's fallback (docs/engine.md, "Rule errors"): hold -> not held; order ->
the whole round in arrival order; width -> the smallest allowed width; grow ->
no growth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Callable

from .placement import Allocator, place
from .plan import plan_widths
from .policy import Policy, RuleError, Why
from .promise import promised
from .quotas import Quotas
from .tracked import Tracked
from .view import Round


@dataclass(slots=True)
class Grant:
    """A candidate given ranks this round."""

    req: Tracked
    width: int
    eligible: frozenset[int] | None  # None: any rank
    why: Why
    action: str  # "fit", "shrink" or "cap+fit"/"cap+shrink"
    wanted: int
    grown: tuple[Why, ...] = ()  # the grow rules that widened it, in order
    group: tuple[int, ...] = ()


@dataclass(slots=True)
class HookError:
    """A hook raised for `req`: `rule` is where (a source location, or ``python:NAME.HOOK``)."""

    req: Tracked
    hook: str
    rule: str
    message: str


@dataclass(slots=True)
class RoundResult:
    grants: list[Grant] = field(default_factory=list)
    held: list[tuple[Tracked, Why]] = field(default_factory=list)
    errors: list[HookError] = field(default_factory=list)
    unplaceable: list[tuple[Tracked, str]] = field(default_factory=list)
    reserved: tuple[Tracked, Why] | None = None  # the candidate `reserve` stopped the round for
    passed: list[tuple[Tracked, Why]] = field(default_factory=list)  # competed, got no ranks: why
    # (`passed` is filled only when the view explains: the decision log is its one reader)
    order_keys: dict[str, tuple] = field(default_factory=dict)  # request id -> its order key (explain only)


def run_round(policy: Policy, view: Round, candidates: list[Tracked], alloc: Allocator,
              eligible_of: Callable[[Tracked], frozenset[int] | None] | None,
              shares: bool | None = None) -> RoundResult:
    """Decide one round. `alloc` holds the free ranks; `eligible_of` gives a candidate's usable ranks
    (None: any rank; `eligible_of` None: every candidate may use any rank). `shares` False: the
    caller knows no class has a share (no quotas to count); None: look."""
    out = RoundResult()
    competing = _hold(policy, view, candidates, out)
    ordered = _order(policy, view, competing, out)
    quotas = Quotas.of(policy, view) if shares is None else Quotas(policy, view) if shares else None
    if getattr(policy, "plan", False) and quotas is None and not alloc.pooled and (eligible_of is None or all(
            eligible_of(req) is None for req in ordered)):
        ordered = _planned(policy, view, ordered, alloc, out)
    smallest = policy.widths[0]
    # a candidate whose promised width (gfdit/engine/promise.py) is more than the free ranks is
    # passed over without a call when nothing else could change the outcome: no pools, no quotas,
    # `skip` on short, and nobody reading the decision log
    quick = eligible_of is None and quotas is None and not view.explain and policy.on_short == "skip"
    eligible_of = eligible_of or _anywhere
    now, usable = view.now, alloc.usable
    for index, req in enumerate(ordered):
        left = alloc.left
        if left < smallest:  # nothing more can fit
            if view.explain:
                _pass_all(ordered[index:], "engine:full", alloc, out)
            break
        answer = None if view.explain else promised(req, policy, now)
        if quick and answer is not None and left < answer[0] <= usable:
            continue  # what it would want does not fit, and nothing else could change that
        if not _allocate(policy, view, req, alloc, eligible_of(req), out, quotas, answer):
            if view.explain:
                _pass_all(ordered[index + 1:], "engine:reserve", alloc, out)  # behind the reserved one
            break
    if out.reserved is None:
        grow_grants(policy, view, out.grants, alloc, out, quotas)
    place(out.grants, alloc, policy.placement)
    budget = getattr(policy, "migration_budget", None)
    if budget is not None:
        _migration_budget(out, budget, view.explain)
    return out


def _planned(policy: Policy, view: Round, ordered: list[Tracked], alloc: Allocator,
             out: RoundResult) -> list[Tracked]:
    """Grant the round's plan (gfdit/engine/plan.py); returns the candidates left, in order."""
    chosen = plan_widths(view, ordered, policy.widths, alloc.left)
    for req in ordered:
        width = chosen.get(req.id)
        if width is not None:
            alloc.add(req, None, width)
            out.grants.append(Grant(req, width, None, Why("engine:plan", {"width": width, "free": view.free}),
                                    "fit", width))
    return [req for req in ordered if req.id not in chosen]


def _migration_budget(out: RoundResult, budget: int, explain: bool) -> None:
    """Keep the grants (most urgent first) until `budget` of them move state; the rest wait."""
    kept, moving = [], 0
    for grant in out.grants:  # in order: the most urgent first
        holders = grant.req.holders
        moves = bool(holders) and any(r not in holders for r in grant.group)
        if moves and moving >= budget:
            if explain:
                _pass(out, grant.req, Why("engine:migration_budget", {"budget": budget, "width": grant.width}))
            continue
        moving += moves
        kept.append(grant)
    out.grants = kept


def _hold(policy: Policy, view: Round, candidates: list[Tracked], out: RoundResult) -> list[Tracked]:
    if getattr(policy, "never_holds", False):
        return candidates
    competing = []
    hold = policy.hold
    for req in candidates:
        try:
            why = hold(view, req)
        except Exception as exc:  # noqa: BLE001 -- a policy hook is untrusted: contain it
            _error(policy, req, "hold", exc, out)
            why = None  # fallback: not held
        if why is None:
            competing.append(req)
        else:
            out.held.append((req, why if isinstance(why, Why) else Why(f"{policy.name}.hold")))
    return competing


def _order(policy: Policy, view: Round, competing: list[Tracked], out: RoundResult) -> list[Tracked]:
    if not view.explain and getattr(policy, "static_order", False):
        return _order_static(policy, view, competing, out)
    return _order_general(policy, view, competing, out)


def _order_general(policy: Policy, view: Round, competing: list[Tracked], out: RoundResult) -> list[Tracked]:
    keyed: list[tuple[Any, float, str, int]] = []  # ids are unique: the index is never compared
    order_key = policy.order_key
    static = getattr(policy, "static_order", False)
    failed = False
    for index, req in enumerate(competing):
        try:
            key = static_sort_key(policy, view, req)[0] if static else order_key(view, req)
        except Exception as exc:  # noqa: BLE001 -- contained hook error
            _error(policy, req, "order", exc, out)
            key, failed = (), True
        keyed.append((key, req.req.arrival, req.req.id, index))
    if view.explain:
        out.order_keys.update((item[2], item[0]) for item in keyed)
    try:
        if not failed:
            keyed.sort()
    except TypeError as exc:  # keys of different types cannot be compared
        for item in keyed:
            out.errors.append(HookError(competing[item[3]], "order", _where(policy, "order"),
                                        f"incomparable keys: {exc}"))
        failed = True
    if failed:  # fallback: the whole round in arrival order
        keyed.sort(key=lambda item: item[1:])
    return [competing[item[3]] for item in keyed]


def _order_static(policy: Policy, view: Round, competing: list[Tracked], out: RoundResult) -> list[Tracked]:
    """`_order` for a key that never changes while a request lives (`static_order`): each request's
    sort key (key, arrival, id) is computed once and kept (`order_memo`), then the round sorts on it."""
    try:
        for req in competing:
            static_sort_key(policy, view, req)
        return sorted(competing, key=_SORT_KEY)
    except Exception:  # noqa: BLE001 -- a key that fails or cannot be compared: the general path reports it
        return _order_general(policy, view, competing, out)


def static_sort_key(policy: Policy, view: Round, req: Tracked) -> tuple:
    """`req`'s (order key, arrival, id) under a `static_order` policy: computed once per policy and
    kept in `req.order_memo` (a failing key hook raises, and nothing is kept)."""
    memo = req.order_memo
    if memo is None or memo[1] is not policy:
        req.order_memo = memo = ((policy.order_key(view, req), req.req.arrival, req.req.id), policy)
    return memo[0]


def widest_within(widths: tuple[int, ...], ranks: int) -> int:
    """The largest of the (ascending) allowed widths that is at most `ranks` (the smallest fits)."""
    return [w for w in widths if w <= ranks][-1]


_SORT_KEY = attrgetter("order_memo")  # (sort key, ...): ids are unique, so only the sort key is compared


def _allocate(policy: Policy, view: Round, req: Tracked, alloc: Allocator,
              eligible: frozenset[int] | None, out: RoundResult, quotas: Quotas | None,
              answer: tuple[int, Why] | None) -> bool:
    """Grant `req` a width if it fits; False means `reserve` stopped the round. `answer`: the
    policy's promised (width, why), if any (None: ask its width hook)."""
    capacity = alloc.capacity(eligible)
    if policy.widths[0] > capacity:
        if policy.widths[0] > capacity + alloc.lost:  # not even with every lost rank back
            out.unplaceable.append((req, f"no allowed width {list(policy.widths)} fits its "
                                         f"{capacity} usable ranks"))
        else:
            _pass(out, req, Why("engine:lost", {"free": alloc.left, "usable": capacity}))
        return True
    if (eligible is not None or alloc.pooled) and policy.on_short != "reserve" \
            and not alloc.fits(eligible, policy.widths[0]):
        _pass(out, req, Why("engine:pool", {"free": alloc.left, "smallest": policy.widths[0]}))
        return True  # nothing allowed fits its pool now: whatever it wants, it waits
    if answer is not None:
        wanted, why = answer
    else:
        try:
            wanted, why = policy.width(view, req)
            if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted not in policy.widths:
                raise ValueError(f"width {wanted!r} is not one of the policy's widths {list(policy.widths)}")
        except Exception as exc:  # noqa: BLE001 -- contained hook error
            rule = _error(policy, req, "width", exc, out)
            wanted, why = policy.widths[0], Why("engine:fallback", {"failed": rule, "width": policy.widths[0]})
    width, action = wanted, "fit"
    if width > capacity:
        width, action = widest_within(policy.widths, capacity), "cap+fit"
    limit = quotas.limit(req) if quotas is not None else None
    if limit is not None and width > limit:  # more than its class may ever hold: capped, never waited for
        width, action = widest_within(policy.widths, limit), "cap+fit"
    room = quotas.room(req) if quotas is not None else None
    if room is not None and width > room:  # its class's share is spent: shrink into it or wait
        within = [w for w in policy.widths if w <= room]
        if policy.on_short != "shrink" or not within:
            _pass(out, req, Why("engine:quota", {"wanted": wanted, "room": room, "free": alloc.left}))
            return True
        width, action = within[-1], action.replace("fit", "shrink")
    if not alloc.fits(eligible, width):
        if policy.on_short == "reserve":
            out.reserved = (req, Why("engine:reserve", {"wanted": width, "free": alloc.free_count()}))
            return False
        smaller = [w for w in policy.widths if w < width and alloc.fits(eligible, w)] \
            if policy.on_short == "shrink" else []
        if not smaller:
            if view.explain:
                _short(out, req, why, wanted, width, alloc, policy.on_short)
            return True
        width, action = smaller[-1], action.replace("fit", "shrink")
    alloc.add(req, eligible, width)
    if quotas is not None:
        quotas.take(req, width)
    why = why if isinstance(why, Why) else Why(f"{policy.name}.width")
    out.grants.append(Grant(req, width, eligible, why, action, wanted))
    return True


def _pass(out: RoundResult, req: Tracked, why: Why) -> None:
    out.passed.append((req, why))


def _pass_all(reqs: list[Tracked], rule: str, alloc: Allocator, out: RoundResult) -> None:
    for req in reqs:
        _pass(out, req, Why(rule, {"free": alloc.left}))


def _short(out: RoundResult, req: Tracked, why: object, wanted: int, width: int, alloc: Allocator,
           on_short: str) -> None:
    """A candidate whose width did not fit: the width rule that decided, what it wanted (`capped`:
    the width it tried, when its pool is smaller), what was free, and `on_short`."""
    rule = why.rule if isinstance(why, Why) else "engine:width"
    values = {"wanted": wanted, "free": alloc.left, "on_short": on_short}
    if width != wanted:
        values["capped"] = width
    if isinstance(why, Why):
        values.update({k: v for k, v in why.values.items() if k not in values and k != "width"})
    _pass(out, req, Why(rule, values))


def grow_grants(policy: Policy, view: Round, grants: list[Grant], alloc: Allocator, out: RoundResult,
          quotas: Quotas | None = None) -> None:
    failed: set[int] = set()  # grants whose grow hook raised: asked no more
    budget = getattr(policy, "grow_budget", None)
    grown: set[int] = set()  # grants widened this round (the budget counts requests)
    while alloc.left > 0:
        for index, grant in enumerate(grants):
            if index in failed or (budget is not None and index not in grown and len(grown) >= budget):
                continue
            if _grow_one(policy, view, index, grant, alloc, failed, out, quotas):
                grown.add(index)
                break
        else:
            return


def _grow_one(policy: Policy, view: Round, index: int, grant: Grant, alloc: Allocator,
              failed: set[int], out: RoundResult, quotas: Quotas | None = None) -> bool:
    req = grant.req
    try:
        answer = policy.grow(view, req)
    except Exception as exc:  # noqa: BLE001 -- contained hook error
        failed.add(index)
        _error(policy, req, "grow", exc, out)
        return False
    if answer is None:
        return False
    bound, why = answer
    why = why if isinstance(why, Why) else Why(f"{policy.name}.grow")
    now_s = req.remaining_s(grant.width)
    room = quotas.room(req) if quotas is not None else None
    for w in policy.widths:
        if w <= grant.width or w > bound or (room is not None and w - grant.width > room):
            continue
        if alloc.fits_more(index, w) and req.remaining_s(w) < now_s:
            if quotas is not None:
                quotas.take(req, w - grant.width)
            alloc.grow(index, w)
            grant.width = w
            grant.grown += (why,)
            return True
    return False


def hook_error(policy: Policy, req: Tracked, hook: str, exc: BaseException) -> HookError:
    """What `hook` raising `exc` for `req` reports: the rule's location and the message."""
    if isinstance(exc, RuleError):
        return HookError(req, hook, exc.rule, exc.message)
    return HookError(req, hook, _where(policy, hook), f"{type(exc).__name__}: {exc}")


def _error(policy: Policy, req: Tracked, hook: str, exc: BaseException, out: RoundResult) -> str:
    """Record a hook error; returns the failing rule's location."""
    out.errors.append(hook_error(policy, req, hook, exc))
    return out.errors[-1].rule


def _where(policy: Policy, hook: str) -> str:
    """Where a hook that names no rule failed: ``python:NAME.HOOK``."""
    return f"python:{policy.name}.{hook}"


def _anywhere(req: Tracked) -> None:
    """No pools, no pinned ranks and no lost ranks: every candidate may use any rank."""
    return None
