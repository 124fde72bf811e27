"""Pools sized by the cluster: `pool main = rest` and `pool aux = {0 .. gpus / 4 - 1}`.

A range `{A .. B}` holds ranks A to B inclusive; each end is a whole-number
expression of numbers, number params and `gpus` (`+ - * /`, unary `-`,
`min(a, b)`, `max(a, b)`), rounded down, and the range is cut to the cluster's
ranks. `rest` holds every rank of the cluster that no other stage pool (a pool
named by `place STAGES in POOL`) holds. Their ranks are known only once the
cluster is: `size_pools` evaluates them when a policy is fitted to a cluster
(`gfdit.policies.fit_to`: a server's start and every reload, `gfdit simulate`).

The checker evaluates them on every cluster size from 1 to CHECK_GPUS and
reports a range that is empty on every size (E310, and a second `rest`, which
the first leaves empty), one that reaches outside the cluster on every size
where it holds a rank (E311: `{1 .. gpus}`), and two stage pools, one of them
sized, that share a rank on some size (E312).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

from gfdit.dsl import ast
from gfdit.dsl.compile import divide
from gfdit.dsl.diagnostics import Report

CHECK_GPUS = 256  # the checker tries every cluster size from 1 to this
End = Callable[[int], float]  # a range end as a function of the cluster size
RANGE_FORM = "a whole-number expression of numbers, number params and `gpus`, e.g. {0 .. gpus / 4 - 1}"


@dataclass(frozen=True)
class SizedPool:
    """A pool whose ranks depend on the cluster's size: a range (`low`, `high`) or `rest` (None)."""

    span: ast.Span
    low: End | None = None
    high: End | None = None

    def bounds(self, gpus: int) -> tuple[int, int]:
        """The range's first and last rank on `gpus` ranks, each kept within -1 .. gpus (what lies
        beyond is cut anyway); (0, -1) when it is empty (its end below its start)."""
        low, high = (math.floor(min(max(end(gpus), -1e18), 1e18)) if not math.isnan(end(gpus)) else None
                     for end in (self.low, self.high))  # type: ignore[union-attr]
        if low is None or high is None or low > high:
            return 0, -1
        return max(low, -1), min(high, gpus)


def sized_pool(pool: ast.PoolDecl, params: Mapping[str, ast.ParamDecl], used: set[str],
               report: Report) -> SizedPool | None:
    """The `SizedPool` of a `rest` or range declaration, or None after reporting a bad end (E305);
    the params its ends read are added to `used`."""
    if isinstance(pool.ranks, ast.RestRanks):
        return SizedPool(pool.ranks.span)
    name = pool.name.name
    low, high = (_end(e, params, used, report, name) for e in (pool.ranks.low, pool.ranks.high))
    if low is None or high is None:
        return None
    for which, end, expr in (("start", low, pool.ranks.low), ("end", high, pool.ranks.high)):
        bad = next((g for g in range(1, CHECK_GPUS + 1) if not math.isfinite(end(g))), None)
        if bad is not None:
            report.add("E305", expr.span, f"pool {name}: the range's {which} is not finite on a "
                       f"{bad}-GPU cluster ({end(bad)})", RANGE_FORM)
            return None
    return SizedPool(pool.ranks.span, low, high)


def _end(expr: ast.Expr, params: Mapping[str, ast.ParamDecl], used: set[str], report: Report,
         pool: str) -> End | None:
    make = _ENDS.get(type(expr))
    if make is None:
        report.add("E305", expr.span, f"pool {pool}: a range end must be {RANGE_FORM}")
        return None
    return make(expr, params, used, report, pool)


def _number(expr: ast.Num, *_) -> End:
    return lambda gpus, value=float(expr.value): value


def _name(expr: ast.Name, params, used, report, pool) -> End | None:
    if expr.id == "gpus":
        return float
    param = params.get(expr.id)
    if param is not None:
        used.add(expr.id)
    if param is None or param.kind != "number":
        what = f"a {param.kind} param" if param is not None else "not a param"
        report.add("E305", expr.span, f"pool {pool}: '{expr.id}' is {what}; a range end must be "
                   f"{RANGE_FORM}")
        return None
    return lambda gpus, value=float(param.value): value


def _unary(expr: ast.Unary, params, used, report, pool) -> End | None:
    if expr.op != "-":
        report.add("E305", expr.span, f"pool {pool}: a range end must be {RANGE_FORM}")
        return None
    operand = _end(expr.operand, params, used, report, pool)
    return None if operand is None else (lambda gpus: -operand(gpus))


_OPS: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": divide,
    "min": min, "max": max,
}


def _binary(expr: ast.Binary, params, used, report, pool) -> End | None:
    if expr.op not in _OPS:
        report.add("E305", expr.span, f"pool {pool}: '{expr.op}' in a range end, which must be {RANGE_FORM}")
        return None
    return _combine(expr.op, [expr.left, expr.right], params, used, report, pool)


def _call(expr: ast.Call, params, used, report, pool) -> End | None:
    if expr.func not in ("min", "max") or len(expr.args) != 2 or expr.on is not None or any(
            a.where is not None for a in expr.args):
        report.add("E305", expr.span, f"pool {pool}: a range end calls only min(a, b) and max(a, b)",
                   RANGE_FORM)
        return None
    return _combine(expr.func, [a.value for a in expr.args], params, used, report, pool)


def _combine(op: str, operands: list[ast.Expr], params, used, report, pool) -> End | None:
    left, right = (_end(e, params, used, report, pool) for e in operands)
    if left is None or right is None:
        return None
    apply = _OPS[op]
    return lambda gpus: apply(left(gpus), right(gpus))


_ENDS = {ast.Num: _number, ast.Name: _name, ast.Unary: _unary, ast.Binary: _binary, ast.Call: _call}


def size_pools(fixed: Mapping[str, frozenset[int]], sized: Mapping[str, SizedPool],
               stage_pools: Mapping[str, str], gpus: int) -> dict[str, frozenset[int]]:
    """Every pool's ranks on a cluster of `gpus` ranks: `fixed` ones as declared, ranges cut to the
    cluster, then `rest`: the cluster's ranks in no other stage pool (`sized` in declaration order)."""
    pools = dict(fixed)
    rest = []
    for name, pool in sized.items():
        if pool.low is None:
            rest.append(name)
            continue
        low, high = pool.bounds(gpus)
        pools[name] = frozenset(range(max(low, 0), min(high, gpus - 1) + 1))
    for name in rest:  # the first takes every rank left; a second (E310) has none
        taken = [pools[p] for p in set(stage_pools.values()) if p not in rest and p in pools]
        pools[name] = frozenset(range(gpus)).difference(*taken) if name == rest[0] else frozenset()
    return pools


def check_sized_pools(fixed: Mapping[str, frozenset[int]], sized: Mapping[str, SizedPool],
                      stage_pools: Mapping[str, str], report: Report) -> None:
    """E310 (empty on every size, a second `rest`), E311 (outside the cluster on every size where it
    holds a rank), E312 (two stage pools, one sized, that share a rank on some size)."""
    rests = [name for name, pool in sized.items() if pool.low is None]
    for name in rests[1:]:
        report.add("E310", sized[name].span, f"pool {name}: a second `rest` pool is always empty "
                   f"(pool {rests[0]} takes every rank no other stage pool holds)", "give it ranks, or drop it")
    for name, pool in sized.items():
        if pool.low is not None:
            _check_range(name, pool, report)
    _check_overlaps(fixed, sized, stage_pools, report)


def _check_range(name: str, pool: SizedPool, report: Report) -> None:
    sizes = [(g, *pool.bounds(g)) for g in range(1, CHECK_GPUS + 1)]
    held = [(g, low, high) for g, low, high in sizes if low <= high]
    if not held:
        report.add("E310", pool.span, f"pool {name} holds no rank on any cluster of 1 to {CHECK_GPUS} GPUs "
                   "(its end is below its start)", "ranks run from 0 to gpus - 1: {0 .. gpus - 1}")
    elif all(low < 0 or high > g - 1 for g, low, high in held):
        g, low, high = held[0]
        rank = high if high > g - 1 else low
        report.add("E311", pool.span, f"pool {name} names rank {rank} on a {g}-GPU cluster, outside its "
                   f"ranks 0 .. {g - 1} (and does so on every cluster size)",
                   "the last rank is gpus - 1: {1 .. gpus - 1}")


def _check_overlaps(fixed: Mapping[str, frozenset[int]], sized: Mapping[str, SizedPool],
                    stage_pools: Mapping[str, str], report: Report) -> None:
    names = sorted(set(stage_pools.values()) & (set(fixed) | set(sized)),
                   key=lambda n: (sized[n].span.line if n in sized else 0, n))
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if a in sized or b in sized]
    if not pairs:
        return
    found: dict[tuple[str, str], tuple[int, list[int]]] = {}
    for gpus in range(1, CHECK_GPUS + 1):
        pools = size_pools(fixed, sized, stage_pools, gpus)
        for a, b in pairs:
            shared = pools[a] & pools[b]
            if shared and (a, b) not in found:
                found[a, b] = (gpus, sorted(shared))
    for (a, b), (gpus, shared) in found.items():
        where = sized[b].span if b in sized else sized[a].span
        report.add("E312", where, f"pools {a} and {b} place different stages but share rank(s) "
                   f"{shared} on a {gpus}-GPU cluster", "stage pools sized by the cluster must not "
                   "overlap: end one where the next begins, or write `pool NAME = rest`")
