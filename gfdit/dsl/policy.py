"""A checked policy, compiled: configuration plus hook closures (the engine's `Policy`).

`CompiledPolicy` implements `gfdit.engine.policy.Policy`. Every rule carries its
location (`file:line`) and a few observed terms (the source text of the
values the rule reads, evaluated when it fires), which become `Why.values`.
A rule that raises raises `RuleError` naming `file:line:col`: the cost call
that failed, else the rule (for `order by`, the key).
"""

from __future__ import annotations

import bisect
import copy
import math
from dataclasses import dataclass
from types import MappingProxyType

from gfdit.dsl import ast
from gfdit.dsl.check import Checked
from gfdit.dsl.choice_terms import choice_terms
from gfdit.dsl.compile import ExprCompiler
from gfdit.dsl.declarations import expand_stages
from gfdit.dsl.diagnostics import Diagnostic, Report
from gfdit.dsl.horizon import kept_until
from gfdit.dsl.names import STAGE_NAMES
from gfdit.dsl.pool_sizes import size_pools
from gfdit.dsl.static import is_static
from gfdit.engine.policy import RuleError, Why
from gfdit.engine.promise import promise
from gfdit.engine.tracked import Tracked

MAX_OBSERVED = 6
_NO_FRAME: list = []  # shared by hooks of policies with no choice or aggregate: nothing writes it


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: condition (None: always), value, location, observed terms.

    `frame` is the frame size its closures need (0: none); `fixed` is its
    width when the value is a constant (no call needed at run time); `loc` is
    its `file:line:col`, what a `RuleError` it raises names.
    """

    cond: object
    value: object
    where: str
    observed: tuple
    frame: int = 0
    fixed: int | None = None
    loc: str = ""
    bare: Why | None = None  # Why(where) without values: what a round that does not explain gets
    stable: bool = False  # its value keeps a horizon for the request's life (gfdit.dsl.horizon.kept_until)


class CompiledPolicy:
    """A `.gfp` policy ready for the engine: config fields and pure hooks over a `RoundView`."""

    def __init__(self, checked: Checked, revision: str):
        d = checked.decls
        self.name, self.revision = d.name, revision
        self.chunk, self.widths, self.tick = d.chunk, d.widths, d.tick
        self.on_short, self.placement = d.on_short, d.placement
        self.stage_pools = MappingProxyType(dict(d.stage_pools))
        # pools sized by the cluster (`rest`, `{0 .. gpus - 1}`) are sized for the largest width until
        # `for_cluster` sizes them for the cluster they run on (the engine refuses a mismatch)
        self.pools_sized_for = self.widths[-1] if d.sized_pools else None
        self.pools = MappingProxyType(size_pools(d.pools, d.sized_pools, d.stage_pools, self.widths[-1]))
        self.classes = MappingProxyType(dict(d.classes))
        self.source, self.path = checked.program.source, checked.program.filename
        self.warnings: list[Diagnostic] = [x for x in checked.diagnostics if x.severity == "warning"]
        self.declarations = d  # the checked rules, for check-time probing (gfdit.dsl.probe)
        self._width_set = frozenset(self.widths)
        builder = _RuleBuilder(ExprCompiler(d.lets, checked.program.filename), checked.program, self._allowed)
        self._admits = [builder.rule(a.cond, None, a.span, a.reason) for a in d.admits]
        self._holds = builder.by_stage(d.holds, lambda r: None)
        self._widths = builder.by_stage(d.width_rules, lambda r: r.expr)
        self._grows = builder.by_stage(d.grows, lambda r: r.bound)
        keys = significant_keys(d.orders[0].keys)
        self.order_key = builder.order_function(keys)
        self.static_order = all(is_static(key.expr, d.lets) for key in keys)  # see gfdit.dsl.static
        self.never_holds = not d.holds
        self.grow_budget = d.budgets.get("grow_budget")  # requests widened per round (None: any)
        self.migration_budget = d.budgets.get("migration_budget")  # grants per round that move state
        self.plan = d.plan  # the round's widths chosen together (gfdit/engine/plan.py)
        self._chunks = [builder.rule(c.cond, c.expr, c.span) for c in d.chunk_rules]
        self.chunk_rule = self._chunk_for if self._chunks else None  # gfdit/engine/chunking.py

    def for_cluster(self, gpus: int) -> "CompiledPolicy":
        """This policy with its pools sized by the cluster sized for `gpus` ranks (itself if it has none,
        or they already are); `gfdit.policies.fit_to` calls it at a server's start and on every reload."""
        if self.pools_sized_for is None or self.pools_sized_for == gpus:
            return self
        d = self.declarations
        sized = copy.copy(self)
        sized.pools = MappingProxyType(size_pools(d.pools, d.sized_pools, d.stage_pools, gpus))
        sized.pools_sized_for = gpus
        return sized

    def __repr__(self) -> str:
        return f"CompiledPolicy({self.name!r}, revision={self.revision!r}, path={self.path!r})"

    def admit(self, view, req) -> tuple[str | None, Why | None]:
        rule = None
        try:
            for rule in self._admits:
                frame = [None] * rule.frame if rule.frame else _NO_FRAME
                if not rule.cond(view, req, frame):
                    return rule.value, Why(rule.where, _observe(rule, view, req, frame))
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure of a rule is located at the rule
            raise RuleError(_loc(rule), exc) from exc
        return None, None

    def hold(self, view, req) -> Why | None:
        rule = None
        try:
            for rule in self._holds[req.stage]:
                frame = [None] * rule.frame if rule.frame else _NO_FRAME
                if rule.cond(view, req, frame):
                    return Why(rule.where, _observe(rule, view, req, frame)) if _explains(view) \
                        else rule.bare
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure of a rule is located at the rule
            raise RuleError(_loc(rule), exc) from exc
        return None

    def order_key(self, view, req) -> tuple:  # replaced per instance by a specialised closure
        raise NotImplementedError

    def width(self, view, req) -> tuple[int, Why]:
        rule = None
        try:
            rules = self._widths[req.stage]
            quiet = not getattr(view, "explain", True)  # not _explains(view): asked every round
            for rule in rules:
                frame = [None] * rule.frame if rule.frame else _NO_FRAME
                if rule.cond is None or rule.cond(view, req, frame):
                    if not quiet:
                        return self._width_of(rule, view, req, frame)
                    width = rule.fixed
                    if width is None:  # nothing reads the values: the width alone
                        width = rule.value(view, req, frame)
                        if type(width) is not int or width not in self._width_set:
                            width = self._allowed(width)
                    if rule is rules[0] and rule.cond is None and type(req) is Tracked:
                        # promise the engine this answer for as long as it provably holds
                        # (gfdit.engine.promise): forever for a constant width, a stable
                        # choice's horizon (gfdit.dsl.horizon) otherwise
                        if rule.fixed is not None:
                            promise(req, self, view.now, math.inf, width, rule.bare)
                        elif rule.stable and (until := kept_until(rule.value, req, view.now)) is not None:
                            promise(req, self, view.now, until, width, rule.bare)
                    return width, rule.bare
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure of a rule is located at the rule
            raise RuleError(_loc(rule), exc) from exc
        raise AssertionError("the checker guarantees a default width rule per stage")

    def _width_of(self, rule: Rule, view, req, frame: list) -> tuple[int, Why]:
        if not _explains(view):  # nothing reads the values: the width alone
            if rule.fixed is not None:
                return rule.fixed, rule.bare
            return self._allowed(rule.value(view, req, frame)), rule.bare
        if rule.fixed is not None:
            width = rule.fixed
            values = {"width": width, "free": view.free}
        else:
            wanted = rule.value(view, req, frame)
            width = self._allowed(wanted)
            values = {"width": width, "free": view.free}
            if width != wanted:
                values["computed"] = wanted
        if rule.observed:
            values.update(_observe(rule, view, req, frame))
        return width, Why(rule.where, values)

    def grow(self, view, req) -> tuple[int, Why] | None:
        rule = None
        try:
            for rule in self._grows[req.stage]:
                frame = [None] * rule.frame if rule.frame else _NO_FRAME
                if rule.cond is None or rule.cond(view, req, frame):
                    bound = self.widths[-1] if rule.value is None else rule.value(view, req, frame)
                    if not _explains(view):
                        return self._allowed(bound), rule.bare
                    values = {"up_to": bound, **_observe(rule, view, req, frame)}
                    return self._allowed(bound), Why(rule.where, values)
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure of a rule is located at the rule
            raise RuleError(_loc(rule), exc) from exc
        return None

    def _chunk_for(self, view, req) -> tuple[int, Why] | None:
        """Denoise steps of the request's next task by the first `chunk` rule whose `when` holds (rounded
        down, at least 1, at most the steps left: +infinity is the rest), and why; None when none matches
        (the class's or the policy's chunk applies)."""
        rule = None
        try:
            for rule in self._chunks:
                frame = [None] * rule.frame if rule.frame else _NO_FRAME
                if rule.cond is None or rule.cond(view, req, frame):
                    steps = rule.value(view, req, frame)
                    if steps != steps:  # NaN (infinity - infinity): no number of steps
                        raise ValueError("the chunk is not a number (NaN)")
                    steps = math.floor(min(max(steps, 1), max(req.steps_left, 1)))  # what the task covers
                    if not _explains(view):
                        return steps, rule.bare
                    return steps, Why(rule.where, {"steps": steps, **_observe(rule, view, req, frame)})
        except RuleError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure of a rule is located at the rule
            raise RuleError(_loc(rule), exc) from exc
        return None

    def _allowed(self, wanted) -> int:
        """A computed width not in `widths` rounds down to the nearest allowed one (at least the smallest)."""
        if wanted in self._width_set:
            return int(wanted)
        at = bisect.bisect_right(self.widths, wanted)
        return self.widths[max(0, at - 1)]


class _RuleBuilder:
    def __init__(self, compiler: ExprCompiler, program: ast.Program, allowed):
        self.compiler, self.program, self.allowed = compiler, program, allowed
        self.lines = program.source.splitlines()

    def where(self, span: ast.Span) -> str:
        return f"{self.program.filename}:{span.line}"

    def rule(self, cond: ast.Expr | None, value_node: ast.Expr | None, span: ast.Span,
             payload: object = None) -> Rule:
        """A rule from its condition and value expression (`payload`: a fixed value, e.g. a reason)."""
        frame, compiled_cond, value, fixed = 0, None, payload, None
        if cond is not None:
            c, frame = self.compiler.compile_sized(cond)
            compiled_cond = c.fn
        if value_node is not None:
            v, size = self.compiler.compile_sized(value_node)
            frame, value = max(frame, size), v.fn
            if v.is_const and isinstance(v.const, (int, float)) and not isinstance(v.const, bool):
                fixed = self.allowed(v.const) if v.const == self.allowed(v.const) else None
        observed = self._observed(cond, value_node)
        frame = max([frame] + [size for _, _, size in observed])
        return Rule(compiled_cond, value, self.where(span),
                    tuple((label, fn) for label, fn, _ in observed), frame, fixed, self.compiler.where(span),
                    Why(self.where(span)), bool(getattr(value, "stable", False)))

    def by_stage(self, decls: list, value_of) -> dict[str, list[Rule]]:
        table: dict[str, list[Rule]] = {s: [] for s in STAGE_NAMES}
        quiet = Report(self.program.filename, "")
        for decl in decls:
            rule = self.rule(decl.cond, value_of(decl), decl.span)
            for stage in expand_stages(decl.stages, quiet):
                table[stage].append(rule)
        return table

    def order_function(self, keys: list[ast.OrderKey]):
        """A specialised sort-key closure: ascending keys, `desc` ones negated."""
        fns, frame = [], 0
        for key in keys:
            compiled, size = self.compiler.compile_sized(key.expr)
            frame = max(frame, size)
            fns.append(_negated(compiled.fn) if key.desc else compiled.fn)
        return _located_order(_order_closure(fns, frame), fns, frame,
                              [self.compiler.where(key.expr.span) for key in keys])

    def _observed(self, *nodes: object) -> list[tuple[str, object, int]]:
        terms: dict[str, tuple[object, int]] = {}
        for node in nodes:
            if isinstance(node, ast.Expr):
                for leaf in _leaves(node):
                    label = self._text(leaf.span)
                    if label and label not in terms and len(terms) < MAX_OBSERVED:
                        compiled, size = self.compiler.compile_sized(leaf)
                        terms[label] = (compiled.fn, size)
                for call, per_k in choice_terms(self.compiler, node):  # finish(k) -> {k: value}
                    label = self._text(call.span)
                    if label and label not in terms:
                        terms[label] = (per_k, 0)
        return [(label, fn, size) for label, (fn, size) in terms.items()]

    def _text(self, span: ast.Span) -> str:
        if span.line != span.end_line or not 0 < span.line <= len(self.lines):
            return ""
        return self.lines[span.line - 1][span.col - 1: span.end_col - 1]


def significant_keys(keys: list[ast.OrderKey]) -> list[ast.OrderKey]:
    """The order keys without trailing `req.arrival` ones: the engine breaks ties by arrival anyway."""
    keys = list(keys)
    while keys and not keys[-1].desc and isinstance(keys[-1].expr, ast.Field) and (
            keys[-1].expr.base == "req" and keys[-1].expr.name == "arrival"):
        keys.pop()
    return keys


def _negated(fn):
    """A `desc` order key: the compiled key, negated."""
    return lambda v, q, e: -fn(v, q, e)


def _located_order(order_key, fns: list, frame_size: int, wheres: list[str]):
    """`order_key`, raising `RuleError` at the first key that fails (found again on the error path)."""
    if not fns:
        return order_key

    def located(view, req):
        try:
            return order_key(view, req)
        except Exception as exc:  # noqa: BLE001 -- located below
            if isinstance(exc, RuleError):
                raise
            for f, where in zip(fns, wheres, strict=True):
                try:
                    f(view, req, [None] * frame_size)
                except Exception as again:  # noqa: BLE001 -- the key that fails
                    raise RuleError(where, again) from again
            raise RuleError(wheres[0], exc) from exc

    return located


def _order_closure(fns: list, frame_size: int):
    if not fns:
        return lambda view, req: ()
    if frame_size:
        return lambda view, req: tuple(f(view, req, [None] * frame_size) for f in fns)
    e = _NO_FRAME
    if len(fns) == 1:
        (a,) = fns
        return lambda view, req: (a(view, req, e),)
    if len(fns) == 2:
        a, b = fns
        return lambda view, req: (a(view, req, e), b(view, req, e))
    if len(fns) == 3:
        a, b, c = fns
        return lambda view, req: (a(view, req, e), b(view, req, e), c(view, req, e))
    return lambda view, req: tuple(f(view, req, e) for f in fns)


def _leaves(node: ast.Expr) -> list[ast.Expr]:
    """The terms a rule reads at its top level: fields, lets, cluster values, cost and aggregate calls."""
    if isinstance(node, ast.Binary):
        return _leaves(node.left) + _leaves(node.right)
    if isinstance(node, ast.Unary):
        return _leaves(node.operand)
    if isinstance(node, ast.If):  # branches may not have been evaluated: observe the condition
        return _leaves(node.cond)
    if isinstance(node, ast.Choice):
        inner = [x for part in (node.where, node.by) if part is not None for x in _leaves(part)]
        return [x for x in inner if not _uses_variables(x)]
    if isinstance(node, ast.Field) and node.ref is not None and node.ref.kind == "req":
        return [node]
    if isinstance(node, ast.Name) and node.ref is not None and (
            node.ref.kind in ("let", "cluster") and node.ty != "requests"):
        return [node]
    if isinstance(node, ast.Call) and node.ref is not None and not _uses_variables(node):
        return [node]
    return []


def _uses_variables(node: object) -> bool:
    if isinstance(node, ast.Name) and node.ref is not None and node.ref.kind == "var":
        return True
    if isinstance(node, ast.Node):
        return any(_uses_variables(v) for v in vars(node).values() if isinstance(v, (ast.Node, list)))
    if isinstance(node, list):
        return any(_uses_variables(v) for v in node)
    return False


def _loc(rule: Rule | None) -> str:
    return rule.loc if rule is not None else "<policy>"


def _explains(view) -> bool:
    """Whether anything will read `Why.values` this round (a view without the flag: yes)."""
    return getattr(view, "explain", True)


def _observe(rule: Rule, view, req, frame: list) -> dict[str, object]:
    """The rule's observed terms, for `Why.values`; a term that cannot be evaluated is left out."""
    values: dict[str, object] = {}
    for label, fn in rule.observed:
        try:
            values[label] = _plain(fn(view, req, frame))
        except (RuleError, ValueError, ArithmeticError):  # e.g. a cost-model width the rule itself never asked
            continue
    return values


def _plain(value: object) -> object:
    return round(value, 6) if isinstance(value, float) else value
