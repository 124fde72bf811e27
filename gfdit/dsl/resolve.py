"""Pass 2, names: bind every name, field and call to what it denotes; no cycles among lets.

Sets `ref` on `Name`, `Field` and `Call` nodes (see `names.Ref`). Choice
variables and the aggregate element `r` are bound to slots by nesting depth,
which the compiler turns into positions in a small per-call frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gfdit.dsl import ast
from gfdit.dsl.declarations import Declarations
from gfdit.dsl.diagnostics import Report, did_you_mean
from gfdit.dsl.names import (AGGREGATES, CLUSTER_NAMES, COST_FUNCTIONS, ELEMENT, FUNCTION_NAMES,
                             REQUEST_FIELDS, STAGE_NAMES, Ref)


@dataclass
class Resolver:
    decls: Declarations
    report: Report
    suppressed: set[str]
    used: set[str] = field(default_factory=set)
    let_deps: dict[str, set[str]] = field(default_factory=dict)
    _scope: list[tuple[str, str]] = field(default_factory=list)  # (name, "var" | "elem")
    _current_let: str | None = None

    def resolve_let(self, name: str, expr: ast.Expr) -> None:
        self._current_let = name
        self.let_deps[name] = set()
        self.expr(expr)
        self._current_let = None

    def expr(self, node: ast.Expr | None) -> None:
        if node is not None:
            _VISIT[type(node)](self, node)

    def _with(self, name: str, kind: str, *nodes: ast.Expr | None) -> None:
        self._scope.append((name, kind))
        for node in nodes:
            self.expr(node)
        self._scope.pop()

    def _slot(self, name: str, kind: str) -> int:
        for depth in range(len(self._scope) - 1, -1, -1):
            if self._scope[depth] == (name, kind) or (kind == "var" and self._scope[depth][0] == name):
                return depth
        return -1

    def name(self, node: ast.Name) -> None:
        slot = self._slot(node.id, "var")
        if slot >= 0 and self._scope[slot][1] == "var":
            node.ref = Ref("var", node.id, slot=slot)
            return
        node.ref = self._global(node)

    def _global(self, node: ast.Name) -> Ref | None:
        n, d = node.id, self.decls
        if n in d.lets:
            self.used.add(n)
            if self._current_let is not None:
                self.let_deps[self._current_let].add(n)
            return Ref("let", n, d.lets[n])
        if n in d.params:
            self.used.add(n)
            return Ref("param", n, d.params[n])
        lookups = (
            (d.class_decls, lambda: Ref("class", n)),
            (STAGE_NAMES, lambda: Ref("stage", n)),
            (CLUSTER_NAMES, lambda: Ref("cluster", n)),
        )
        for table, make in lookups:
            if n in table:
                return make()
        if n in self.suppressed or n in d.failed_names:
            return None
        self._unknown(node)
        return None

    def _cost_of(self, node: ast.Call) -> bool:
        """`req.f(k)` / `r.f(k)`: a cost function, on the candidate or inside an aggregate; else report."""
        for arg in node.args if node.func not in COST_FUNCTIONS else ():
            self.expr(arg.value)
        if node.func not in COST_FUNCTIONS:
            self.report.add("E105", node.func_span, f"'{node.func}' cannot be called on a request",
                            "a request has the cost functions: " + ", ".join(COST_FUNCTIONS))
            return False
        if node.on == ELEMENT and self._slot(ELEMENT, "elem") < 0:
            self.report.add("E107", node.on_span, "'r' names the element of an aggregate and is not defined "
                            "here", f"inside count/any/sum/min/max(SET ...) only; the candidate's is {node.func}(k)")
            return False
        if node.on not in ("req", ELEMENT):
            self.report.add("E209", node.on_span, f"'{node.on}' has no cost functions",
                            f"call them on req (the candidate) or r (an aggregate's element): r.{node.func}(k)")
            return False
        return True

    def _unknown(self, node: ast.Name) -> None:
        n = node.id
        if n in ("req", ELEMENT):
            self.report.add("E209", node.span, f"'{n}' is a request, not a value",
                            f"read one of its fields, e.g. {n}.deadline")
            return
        visible = [*self.decls.lets, *self.decls.params, *self.decls.class_decls, *STAGE_NAMES,
                   *CLUSTER_NAMES, *(s for s, _ in self._scope)]
        hint = did_you_mean(n, visible)
        if hint is None and n in REQUEST_FIELDS:
            hint = f"a request field: write req.{n}"
        elif hint is None and n[:1].isupper():
            hint = f'a request class? declare it (class {n} {{ }}) or compare with the string "{n}"'
        self.report.add("E103", node.span, f"unknown name '{n}'", hint)

    def field(self, node: ast.Field) -> None:
        if node.base == "req":
            slot, kind = -1, "req"
        elif node.base == ELEMENT and self._slot(ELEMENT, "elem") >= 0:
            slot, kind = self._slot(ELEMENT, "elem"), "elem"
        elif node.base == ELEMENT:
            self.report.add("E107", node.base_span, "'r' names the element of an aggregate and is not "
                            "defined here", "inside count/any/sum/min/max(SET ...) only; "
                            "the candidate is req")
            return
        else:
            self.report.add("E209", node.base_span, f"'{node.base}' has no fields",
                            "fields are read from req (the candidate) or r (an aggregate's element)")
            return
        if node.name not in REQUEST_FIELDS:
            span = ast.Span(node.span.line, node.base_span.end_col + 1, node.span.end_line,
                            node.span.end_col)
            self.report.add("E104", span, f"requests have no field '{node.name}'",
                            did_you_mean(node.name, REQUEST_FIELDS) or
                            "fields: " + ", ".join(REQUEST_FIELDS))
            return
        node.ref = Ref(kind, node.name, slot=slot)

    def call(self, node: ast.Call) -> None:
        func, args = node.func, node.args
        if func not in FUNCTION_NAMES:
            self.report.add("E105", node.func_span, f"unknown function '{func}'",
                            did_you_mean(func, FUNCTION_NAMES) or
                            "functions: " + ", ".join(FUNCTION_NAMES))
            for arg in args:
                self.expr(arg.value)
            return
        if node.on is not None and not self._cost_of(node):
            return
        if func in COST_FUNCTIONS:
            self._arity(node, 1, f"{func}(k): the cost of the candidate at width k")
            slot = self._slot(ELEMENT, "elem") if node.on == ELEMENT else -1
            node.ref = Ref("cost", func, slot=slot)  # slot >= 0: the aggregate's element, not the candidate
            self._plain_args(node)
            return
        is_agg = args and (args[0].where is not None or _names_request_set(args[0].value))
        if func in ("min", "max") and not is_agg:
            self._arity(node, 2, f"{func}(a, b) of two values, or {func}(SET [where C], E)")
            node.ref = Ref("pair", func)
            self._plain_args(node)
            return
        self._aggregate(node)

    def _aggregate(self, node: ast.Call) -> None:
        wants = {"count": 1, "any": 1, "sum": 2, "min": 2, "max": 2}[node.func]
        self._arity(node, wants, AGGREGATES[node.func])
        node.ref = Ref("agg", node.func, slot=len(self._scope))
        first, rest = (node.args[0], node.args[1:]) if node.args else (None, [])
        if first is not None:
            self.expr(first.value)
            self._with(ELEMENT, "elem", first.where, *(a.value for a in rest))
        for arg in rest:
            self._no_where(arg)

    def _plain_args(self, node: ast.Call) -> None:
        for arg in node.args:
            self._no_where(arg)
            self.expr(arg.value)

    def _no_where(self, arg: ast.Arg) -> None:
        if arg.where is not None:
            self.report.add("E105", arg.where.span, "`where` filters only the request set of an "
                            "aggregate", "count(waiting where C), sum(running where C, E)")

    def _arity(self, node: ast.Call, wants: int, usage: str) -> None:
        if len(node.args) != wants:
            self.report.add("E105", node.span, f"{node.func} takes {wants} argument"
                            f"{'s' if wants > 1 else ''}, got {len(node.args)}", usage)

    def choice(self, node: ast.Choice) -> None:
        self.expr(node.domain)
        node.slot = len(self._scope)
        self._with(node.var, "var", node.where, node.by)
        self.expr(node.orelse)

    def unary(self, node: ast.Unary) -> None:
        self.expr(node.operand)

    def binary(self, node: ast.Binary) -> None:
        self.expr(node.left)
        self.expr(node.right)

    def if_(self, node: ast.If) -> None:
        self.expr(node.cond)
        self.expr(node.then)
        self.expr(node.orelse)


def _names_request_set(node: ast.Expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("waiting", "running")


_VISIT = {
    ast.Num: lambda r, n: None, ast.Dur: lambda r, n: None, ast.Bool: lambda r, n: None,
    ast.Str: lambda r, n: None, ast.SetLit: lambda r, n: None,
    ast.Name: Resolver.name, ast.Field: Resolver.field, ast.Call: Resolver.call,
    ast.Choice: Resolver.choice, ast.Unary: Resolver.unary, ast.Binary: Resolver.binary,
    ast.If: Resolver.if_,
}


def resolve(decls: Declarations, report: Report, suppressed: set[str]) -> Resolver:
    """Resolve every expression of the policy; report unknown names and let cycles."""
    resolver = Resolver(decls, report, suppressed)
    for name, let in decls.lets.items():
        resolver.resolve_let(name, let.expr)
    for expr in rule_expressions(decls):
        resolver.expr(expr)
    _let_cycles(decls, resolver.let_deps, report)
    return resolver


def rule_expressions(decls: Declarations) -> list[ast.Expr]:
    """Every expression outside lets, in source order of their declarations."""
    exprs: list[ast.Expr | None] = []
    for a in decls.admits:
        exprs.append(a.cond)
    for h in decls.holds:
        exprs.append(h.cond)
    for o in decls.orders:
        exprs.extend(k.expr for k in o.keys)
    for w in decls.width_rules:
        exprs.extend((w.cond, w.expr))
    for g in decls.grows:
        exprs.extend((g.cond, g.bound))
    for c in decls.chunk_rules:
        exprs.extend((c.cond, c.expr))
    return [e for e in exprs if e is not None]


def _let_cycles(decls: Declarations, deps: dict[str, set[str]], report: Report) -> None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    reported: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(deps.get(name, ())):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                if dep not in reported:
                    reported.update(cycle)
                    report.add("E108", decls.lets[dep].name.span,
                               "let depends on itself: " + " -> ".join(cycle),
                               "break the cycle: one of these must not use the others")
            elif state.get(dep) is None:
                visit(dep, path + [dep])
        state[name] = 2

    for name in decls.lets:
        if state.get(name) is None:
            visit(name, [name])
    decls.cyclic_lets = reported
