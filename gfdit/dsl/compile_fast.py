"""Choices over a constant width set whose test is one cost call: the width rule's common shape.

`min k in widths where finish(k) <= req.deadline` and `argmin k in widths by
finish(k)` are what most width rules say. Compiled generically, every k costs
a handful of closure calls; here the k-invariant side (a literal, a param, a
request field, a cluster count: values that cannot fail) is read once, the
view's cost method is looked up once, and the loop calls it directly. Same
values, same order of evaluation for everything that can fail, same error
location (the cost call's `file:line:col`). On the engine's own `Round`,
`finish(k)` and `slack(k)` are computed in the loop from the request's
`remaining_s(k)` with the float operations `Round` itself does (`now + rem`,
`deadline - now - rem`): the same values without a method call per k; and
when no k passes the `where`, an `else argmin|argmax k in SAME by SAME_COST(k)`
picks among the values that loop already computed.
"""

from __future__ import annotations

import operator
from operator import attrgetter

from gfdit.dsl import ast
from gfdit.dsl.horizon import MISS, NEW, best_until, flip_time, found_until, recall, remember
from gfdit.dsl.names import COST_FUNCTIONS, REQUEST_FIELDS
from gfdit.dsl.static import is_static
from gfdit.engine.policy import RuleError
from gfdit.engine.view import Round

COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
           "==": operator.eq, "!=": operator.ne}
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def variable_cost_call(node: object, slot: int) -> ast.Call | None:
    """`node` if it is `COST(k)` with k the choice variable at `slot`."""
    if isinstance(node, ast.Call) and node.ref is not None and node.ref.kind == "cost" and node.ref.slot < 0:
        arg = node.args[0].value
        if isinstance(arg, ast.Name) and arg.ref is not None and arg.ref.kind == "var" and arg.ref.slot == slot:
            return node
    return None


def _cannot_fail(node: object) -> bool:
    """A value read without any call that could raise: a literal, a param, a request field, a cluster count."""
    if isinstance(node, (ast.Num, ast.Dur)):
        return True
    if isinstance(node, ast.Field):
        return node.ref is not None and node.ref.kind == "req"
    if isinstance(node, ast.Name):
        return node.ref is not None and node.ref.kind in ("param", "cluster")
    return False


def fast_pick(compiler, node: ast.Choice, values: tuple, fallback):
    """`min|max k in CONST where COST(k) OP X` (or `X OP COST(k)`) as one loop; None if not that shape."""
    where = node.where
    if not isinstance(where, ast.Binary) or where.op not in COMPARE:
        return None
    call, other, op = variable_cost_call(where.left, node.slot), where.right, where.op
    if call is None:
        call, other, op = variable_cost_call(where.right, node.slot), where.left, FLIPPED[where.op]
    if call is None or not _cannot_fail(other):
        return None
    method, test = COST_FUNCTIONS[call.func][0], COMPARE[op]
    bound = compiler.compile(other).fn
    # a request field (the usual bound, e.g. req.deadline) read in C, not through its compiled closure
    read = attrgetter(REQUEST_FIELDS[other.ref.key][1]) if isinstance(other, ast.Field) else None
    loc = compiler.where(call.span)
    ordered = values if node.kind == "min" else tuple(reversed(values))
    lower = _same_best(compiler, node, values, call.func)  # None: the `else` is not `arg* k by COST(k)`
    back = node.kind != "min"

    increasing = method == "finish"  # finish(k) grows with now, slack(k) shrinks
    shrinking = None if op in ("==", "!=") else (op in ("<", "<=")) == increasing  # passing set over time

    keeps = shrinking is not None

    on_round, minus = method in _ROUND_FORMS, method == "slack"  # `_round_form`, decided once

    def pick(v, q, e):
        x = bound(v, q, e) if read is None else read(q)
        if not on_round or type(v) is not Round:
            try:
                cost = getattr(v, method)
                for k in ordered:
                    if test(cost(q, k), x):
                        return k
            except RuleError:
                raise
            except Exception as exc:  # noqa: BLE001 -- the cost call's error, located
                raise RuleError(loc, exc) from exc
            return fallback(v, q, e)
        now = v.now
        kept = recall(pick, q, now, x) if keeps else NEW
        if kept is not MISS and kept is not NEW:
            return kept
        keep = kept is MISS and isinstance(x, (int, float))  # asked before at this progress: keep the horizon
        base, rem = (q.deadline - now if minus else now), q.remaining_s
        try:
            seen, rems = [], []
            for k in ordered:
                r = rem(k)
                value = base - r if minus else base + r
                rems.append(r)
                if test(value, x):
                    if keep:
                        until = flip_time(minus, q.deadline, x, r) if shrinking else \
                            found_until(minus, q.deadline, x, rems, len(seen), False)  # found_until(.., shrinking)
                        remember(pick, q, now, x, until, k)
                    return k
                seen.append(value)
            if lower is None:
                return fallback(v, q, e)
            in_order = seen[::-1] if back else seen
            k = _arg_best(values, in_order, lower)
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the cost call's error, located
            raise RuleError(loc, exc) from exc
        if keep:
            if back:
                rems.reverse()  # now in the order of `values`
            until = best_until(minus, q.deadline, rems, values.index(k), now)
            if not shrinking:  # a k that fails now may pass later
                until = min([until] + [flip_time(minus, q.deadline, x, r) for r in rems])
            remember(pick, q, now, x, until, k)
        return k

    pick.stable = shrinking is not None and is_static(other, compiler.lets)  # see kept_until
    return pick


def fast_best(node: ast.Choice, values: tuple, fallback, loc_of):
    """`argmin|argmax k in CONST by COST(k)` (no where) as one loop; None if not that shape."""
    call = variable_cost_call(node.by, node.slot) if node.where is None else None
    if call is None:
        return None
    method, lower, loc = COST_FUNCTIONS[call.func][0], node.kind == "argmin", loc_of(call.span)

    def best(v, q, e):
        form = _round_form(v, q, method)
        kept = recall(best, q, v.now, None) if form is not None else NEW
        if kept is not MISS and kept is not NEW:
            return kept
        cost = getattr(v, method) if form is None else None
        base, minus, rem = form if form is not None else (0.0, False, None)
        try:  # the values one at a time, each compared before the next is computed
            found = _arg_best(values, (cost(q, k) if rem is None else base - rem(k) if minus else base + rem(k)
                                       for k in values), lower)
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the cost call's error, located
            raise RuleError(loc, exc) from exc
        if found is None:
            return fallback(v, q, e)
        if kept is MISS:  # asked before at this progress: keep the horizon
            rems = [rem(k) for k in values]
            remember(best, q, v.now, None, best_until(minus, q.deadline, rems, values.index(found), v.now), found)
        return found

    best.stable = True
    return best


_ROUND_FORMS = ("finish", "slack")  # the methods `_round_form` computes in the loop


def _round_form(v, q, method: str) -> tuple[float, bool, object] | None:
    """(base, minus, rem) with `v.METHOD(q, k) == base - rem(k) if minus else base + rem(k)`, the
    float operations of `Round.finish` / `Round.slack`; None for any other view or method."""
    if type(v) is not Round:
        return None
    if method == "finish":
        return v.now, False, q.remaining_s
    if method == "slack":
        return q.deadline - v.now, True, q.remaining_s
    return None


def _same_best(compiler, node: ast.Choice, values: tuple, func: str) -> bool | None:
    """When `node`'s `else` is `argmin|argmax k in SAME_CONST by SAME_COST(k)` (no where), its loop
    would compute exactly the values the `where` loop computed: True for argmin, False for argmax;
    None otherwise."""
    other = node.orelse
    if not isinstance(other, ast.Choice) or other.where is not None or other.by is None or not values:
        return None
    call = variable_cost_call(other.by, other.slot)
    domain = compiler.compile(other.domain)
    if call is None or call.func != func or not domain.is_const or tuple(domain.const) != tuple(values):
        return None
    return other.kind == "argmin"


def _arg_best(values: tuple, seen, lower: bool):
    """The first k of `values` with the lowest (`lower`) or highest of `seen`, its values in the same
    order (a list, or a generator computing each when asked); None when `values` is empty."""
    found, best_value = None, None
    for k, value in zip(values, seen, strict=True):
        if found is None or (value < best_value if lower else value > best_value):
            found, best_value = k, value
    return found
