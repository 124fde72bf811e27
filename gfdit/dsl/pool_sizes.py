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
    ends: tuple[ast.Span, ast.Span] | None = None  # where the range's start and end are written

    def bounds(self, gpus: int) -> tuple[float, float] | None:
        """The range's first and last rank on `gpus` ranks as written, rounded down (not cut to the
        cluster); None when it holds no rank there (its end below its start, or an end not a number)."""
        low, high = _rounded(self.low(gpus)), _rounded(self.high(gpus))  # type: ignore[misc]
        if math.isnan(low) or math.isnan(high) or low > high:
            return None
        return low, high

    def ranks(self, gpus: int) -> frozenset[int]:
        """The range's ranks on a cluster of `gpus` ranks: its bounds cut to 0 .. gpus - 1."""
        bounds = self.bounds(gpus)
        if bounds is None:
            return frozenset()
        low, high = bounds
        return frozenset(range(int(min(max(low, 0), gpus)), int(min(max(high, -1), gpus - 1)) + 1))


def _rounded(value: float) -> float:
    """A range end rounded down to a whole number (one too large to be a rank, or not a number, as is)."""
    return math.floor(value) if abs(value) < 1e18 else value


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
    return SizedPool(pool.ranks.span, low, high, (pool.ranks.low.span, pool.ranks.high.span))


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
        pools[name] = pool.ranks(gpus)
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
    pairs = _stage_pairs(fixed, sized, stage_pools)
    if not rests and not pairs:
        return
    every_size = [size_pools(fixed, sized, stage_pools, gpus) for gpus in range(1, CHECK_GPUS + 1)]
    if rests and not any(pools[rests[0]] for pools in every_size):
        report.add("E310", sized[rests[0]].span, f"pool {rests[0]} = rest holds no rank on any cluster of 1 to "
                   f"{CHECK_GPUS} GPUs: the other stage pools hold every rank",
                   "leave it some ranks: end the other stage pools before the last one, e.g. "
                   "{0 .. gpus / 4 - 1}")
    _check_overlaps(pairs, sized, every_size, report)


def _check_range(name: str, pool: SizedPool, report: Report) -> None:
    sizes = [(g, pool.bounds(g)) for g in range(1, CHECK_GPUS + 1)]
    held = [(g, *bounds) for g, bounds in sizes if bounds is not None]
    if not held:
        report.add("E310", pool.span, f"pool {name} holds no rank on any cluster of 1 to {CHECK_GPUS} GPUs "
                   "(its end is below its start)", "ranks run from 0 to gpus - 1: {0 .. gpus - 1}")
    elif all(low < 0 or high > g - 1 for g, low, high in held):
        _report_outside(name, pool, *held[0], report)


def _report_outside(name: str, pool: SizedPool, gpus: int, low: float, high: float, report: Report) -> None:
    """E311 at the range's end(s) outside a `gpus`-GPU cluster, naming each as written (rounded down)."""
    start, end = pool.ends or (pool.span, pool.span)
    outside = []
    if low < 0:
        outside.append((low, start, "the first rank is 0: start the range at 0 or above"))
    if high > gpus - 1:
        outside.append((high, end, "the last rank is gpus - 1: end the range there or below"))
    ranks = " and ".join(str(rank) for rank, _, _ in outside)
    report.add("E311", outside[0][1] if len(outside) == 1 else pool.span,
               f"pool {name} names rank{'s' if len(outside) > 1 else ''} {ranks} on a {gpus}-GPU cluster, "
               f"outside its ranks 0 .. {gpus - 1} (and does so on every cluster size)",
               "; ".join(hint for _, _, hint in outside))


def _stage_pairs(fixed: Mapping[str, frozenset[int]], sized: Mapping[str, SizedPool],
                 stage_pools: Mapping[str, str]) -> list[tuple[str, str]]:
    """The pairs of stage pools, one of them sized, that must not share a rank on any size."""
    names = sorted(set(stage_pools.values()) & (set(fixed) | set(sized)),
                   key=lambda n: (sized[n].span.line if n in sized else 0, n))
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if a in sized or b in sized]


def _check_overlaps(pairs: list[tuple[str, str]], sized: Mapping[str, SizedPool],
                    every_size: list[dict[str, frozenset[int]]], report: Report) -> None:
    found: dict[tuple[str, str], tuple[int, list[int]]] = {}
    for gpus, pools in enumerate(every_size, start=1):
        for a, b in pairs:
            shared = pools[a] & pools[b]
            if shared and (a, b) not in found:
                found[a, b] = (gpus, sorted(shared))
    for (a, b), (gpus, shared) in found.items():
        where = sized[b].span if b in sized else sized[a].span
        report.add("E312", where, f"pools {a} and {b} place different stages but share rank(s) "
                   f"{shared} on a {gpus}-GPU cluster", "stage pools sized by the cluster must not "
                   "overlap: end one where the next begins, or write `pool NAME = rest`")
