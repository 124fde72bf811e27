"""A checked policy, compiled: configuration plus hook closures (the engine's `Policy`).

`CompiledPolicy` implements `gfdit.engine.policy.Policy`. Every rule carries its
location (`file:line`) and a few observed terms (the source text of the
values the rule reads, evaluated when it fires), which become `Why.values`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from types import MappingProxyType

from gfdit.dsl import ast
from gfdit.dsl.check import Checked
from gfdit.dsl.compile import ExprCompiler
from gfdit.dsl.declarations import expand_stages
from gfdit.dsl.diagnostics import Diagnostic, Report
from gfdit.dsl.names import STAGE_NAMES
from gfdit.engine.policy import Why

MAX_OBSERVED = 6


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: condition (None: always), value, location, observed terms."""

    cond: object
    value: object
    where: str
    observed: tuple


class CompiledPolicy:
    """A `.gfp` policy ready for the engine: config fields and pure hooks over a `RoundView`."""

    def __init__(self, checked: Checked, revision: str):
        d = checked.decls
        self.name, self.revision = d.name, revision
        self.chunk, self.widths, self.tick = d.chunk, d.widths, d.tick
        self.on_short, self.placement = d.on_short, d.placement
        self.pools = MappingProxyType(dict(d.pools))
        self.stage_pools = MappingProxyType(dict(d.stage_pools))
        self.classes = MappingProxyType(dict(d.classes))
        self.source, self.path = checked.program.source, checked.program.filename
        self.warnings: list[Diagnostic] = [x for x in checked.diagnostics if x.severity == "warning"]
        self._width_set = frozenset(self.widths)
        builder = _RuleBuilder(ExprCompiler(d.lets), checked.program)
        self._admits = [builder.rule(a.cond, a.reason, a.span) for a in d.admits]
        self._holds = builder.by_stage(d.holds, lambda r: None)
        self._widths = builder.by_stage(d.width_rules, lambda r: r.expr)
        self._grows = builder.by_stage(d.grows, lambda r: r.bound)
        self._order = [(builder.compiler.compile(k.expr).fn, k.desc) for k in d.orders[0].keys]
        self._order_why = builder.where(d.orders[0].span)
        self._frame = builder.compiler.frame_size
        self.order_key = _order_function(self._order, self._frame)

    def __repr__(self) -> str:
        return f"CompiledPolicy({self.name!r}, revision={self.revision!r}, path={self.path!r})"

    def admit(self, view, req) -> tuple[str | None, Why | None]:
        frame = [None] * self._frame
        for rule in self._admits:
            if not rule.cond(view, req, frame):
                return rule.value, Why(rule.where, _observe(rule, view, req, frame))
        return None, None

    def hold(self, view, req) -> Why | None:
        frame = [None] * self._frame
        for rule in self._holds[req.stage]:
            if rule.cond(view, req, frame):
                return Why(rule.where, _observe(rule, view, req, frame))
        return None

    def order_key(self, view, req) -> tuple:  # replaced per instance by a specialised closure
        raise NotImplementedError

    def width(self, view, req) -> tuple[int, Why]:
        frame = [None] * self._frame
        for rule in self._widths[req.stage]:
            if rule.cond is None or rule.cond(view, req, frame):
                wanted = rule.value(view, req, frame)
                width = self._allowed(wanted)
                values = {"width": width, "free": view.free, **_finish(view, req, width),
                          **_observe(rule, view, req, frame)}
                if width != wanted:
                    values["computed"] = wanted
                return width, Why(rule.where, values)
        raise AssertionError("the checker guarantees a default width rule per stage")

    def grow(self, view, req) -> tuple[int, Why] | None:
        frame = [None] * self._frame
        for rule in self._grows[req.stage]:
            if rule.cond is None or rule.cond(view, req, frame):
                bound = self.widths[-1] if rule.value is None else rule.value(view, req, frame)
                values = {"up_to": bound, **_observe(rule, view, req, frame)}
                return self._allowed(bound), Why(rule.where, values)
        return None

    def _allowed(self, wanted) -> int:
        """A computed width not in `widths` rounds down to the nearest allowed one (at least the smallest)."""
        if wanted in self._width_set:
            return int(wanted)
        at = bisect.bisect_right(self.widths, wanted)
        return self.widths[max(0, at - 1)]


class _RuleBuilder:
    def __init__(self, compiler: ExprCompiler, program: ast.Program):
        self.compiler, self.program = compiler, program
        self.lines = program.source.splitlines()

    def where(self, span: ast.Span) -> str:
        return f"{self.program.filename}:{span.line}"

    def rule(self, cond: ast.Expr | None, value: object, span: ast.Span) -> Rule:
        compiled_cond = self.compiler.compile(cond).fn if cond is not None else None
        return Rule(compiled_cond, value, self.where(span), self._observed(cond, value))

    def by_stage(self, decls: list, value_of) -> dict[str, list[Rule]]:
        table: dict[str, list[Rule]] = {s: [] for s in STAGE_NAMES}
        quiet = Report(self.program.filename, "")
        for decl in decls:
            node = value_of(decl)
            value = self.compiler.compile(node).fn if node is not None else None
            rule = self.rule(decl.cond, value, decl.span)
            rule = Rule(rule.cond, value, rule.where, self._observed(decl.cond, node))
            for stage in expand_stages(decl.stages, quiet):
                table[stage].append(rule)
        return table

    def _observed(self, *nodes: object) -> tuple:
        terms: dict[str, object] = {}
        for node in nodes:
            if isinstance(node, ast.Expr):
                for leaf in _leaves(node):
                    label = self._text(leaf.span)
                    if label and label not in terms and len(terms) < MAX_OBSERVED:
                        terms[label] = self.compiler.compile(leaf).fn
        return tuple(terms.items())

    def _text(self, span: ast.Span) -> str:
        if span.line != span.end_line or not 0 < span.line <= len(self.lines):
            return ""
        return self.lines[span.line - 1][span.col - 1: span.end_col - 1]


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
            node.ref.kind == "let" or (node.ref.kind == "cluster" and node.ty != "requests")):
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


def _observe(rule: Rule, view, req, frame: list) -> dict[str, object]:
    """The rule's observed terms, for `Why.values`; a term that cannot be evaluated is left out."""
    values: dict[str, object] = {}
    for label, fn in rule.observed:
        try:
            values[label] = _plain(fn(view, req, frame))
        except (ValueError, ArithmeticError):  # e.g. a cost-model width the rule itself never asked
            continue
    return values


def _finish(view, req, width: int) -> dict[str, object]:
    try:
        return {"finish": _plain(view.finish(req, width))}
    except (ValueError, ArithmeticError):  # no cost-model layout for this width: the engine decides
        return {}


def _plain(value: object) -> object:
    return round(value, 6) if isinstance(value, float) else value


def _order_function(keys: list, frame_size: int):
    """A specialised sort-key closure: ascending keys, `desc` ones negated."""
    fns = [(lambda f: (lambda v, q, e: -f(v, q, e)))(f) if desc else f for f, desc in keys]
    if len(fns) == 1:
        (a,) = fns
        return lambda view, req: (a(view, req, [None] * frame_size),)
    if len(fns) == 2:
        a, b = fns

        def key2(view, req):
            e = [None] * frame_size
            return (a(view, req, e), b(view, req, e))

        return key2
    if len(fns) == 3:
        a, b, c = fns

        def key3(view, req):
            e = [None] * frame_size
            return (a(view, req, e), b(view, req, e), c(view, req, e))

        return key3
    return lambda view, req: tuple(f(view, req, [None] * frame_size) for f in fns)
