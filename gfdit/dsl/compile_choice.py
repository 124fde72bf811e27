"""Closures for the two looping forms: choices over a width set and aggregates over requests."""

from __future__ import annotations

import math

from gfdit.dsl import ast
from gfdit.dsl.closure import Compiled, const
from gfdit.dsl.compile_fast import fast_best, fast_pick


def compile_choice(compiler, node: ast.Choice) -> Compiled:
    """`min|max k in S [where C] [else F]` and `argmin|argmax k in S [where C] by E [else F]`."""
    domain = compiler.compile(node.domain)
    where = compiler.compile(node.where) if node.where is not None else None
    by = compiler.compile(node.by) if node.by is not None else None
    orelse = compiler.compile(node.orelse) if node.orelse is not None else None
    slot = node.slot
    if domain.is_const and where is None and by is None:
        values = domain.const
        return const(values[0] if node.kind == "min" else values[-1])
    fixed = domain.const if domain.is_const else None  # a constant set: no call per evaluation
    dom = domain.fn
    fallback = orelse.fn if orelse is not None else (lambda v, q, e: None)
    if fixed is not None:  # the common shapes, one loop each (gfdit.dsl.compile_fast)
        fast = fast_pick(compiler, node, fixed, fallback) if by is None and where is not None \
            else fast_best(node, fixed, fallback, compiler.where) if by is not None else None
        if fast is not None:
            return Compiled(fast)
    if by is None:
        w = where.fn if where is not None else (lambda v, q, e: True)
        first = node.kind == "min"
        ordered = None if fixed is None else (fixed if first else tuple(reversed(fixed)))

        def pick(v, q, e):
            if ordered is not None:
                values = ordered
            else:
                values = dom(v, q, e) if first else tuple(reversed(dom(v, q, e)))
            for k in values:
                e[slot] = k
                if w(v, q, e):
                    return k
            return fallback(v, q, e)

        return Compiled(pick)
    key, w, lower = by.fn, (where.fn if where is not None else None), node.kind == "argmin"

    def best(v, q, e):
        found, best_value = None, None
        for k in (fixed if fixed is not None else dom(v, q, e)):
            e[slot] = k
            if w is not None and not w(v, q, e):
                continue
            value = key(v, q, e)
            if found is None or (value < best_value if lower else value > best_value):
                found, best_value = k, value
        return found if found is not None else fallback(v, q, e)

    return Compiled(best)


def compile_aggregate(compiler, node: ast.Call) -> Compiled:
    """count/any/sum/min/max over `waiting` or `running`, the element `r` at its slot."""
    first = node.args[0]
    if node.func == "count" and first.where is None and isinstance(first.value, ast.Name):
        if first.value.id in COUNT_OF:  # count(waiting): one call, no loop
            return Compiled(COUNT_OF[first.value.id])
    source = compiler.compile(node.args[0].value).fn
    where_node = node.args[0].where
    where = compiler.compile(where_node).fn if where_node is not None else None
    value = compiler.compile(node.args[1].value).fn if len(node.args) > 1 else None
    slot = node.ref.slot
    return Compiled(AGGREGATE_BUILDERS[node.func](source, where, value, slot))


COUNT_OF = {"waiting": lambda v, q, e: len(v.waiting), "running": lambda v, q, e: len(v.running)}


def _count(source, where, value, slot):
    if where is None:
        return lambda v, q, e: len(source(v, q, e))

    def count(v, q, e):
        n = 0
        for x in source(v, q, e):
            e[slot] = x
            if where(v, q, e):
                n += 1
        return n

    return count


def _any(source, where, value, slot):
    if where is None:
        return lambda v, q, e: len(source(v, q, e)) > 0

    def any_(v, q, e):
        for x in source(v, q, e):
            e[slot] = x
            if where(v, q, e):
                return True
        return False

    return any_


def _fold(start, combine):
    def build(source, where, value, slot):
        def fold(v, q, e):
            acc = start
            for x in source(v, q, e):
                e[slot] = x
                if where is None or where(v, q, e):
                    acc = combine(acc, value(v, q, e))
            return acc

        return fold

    return build


AGGREGATE_BUILDERS = {
    "count": _count,
    "any": _any,
    "sum": _fold(0, lambda a, b: a + b),
    "min": _fold(math.inf, min),
    "max": _fold(-math.inf, max),
}
