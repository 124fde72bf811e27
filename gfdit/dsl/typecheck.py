"""Pass 3, types: every expression gets a type; every rule gets the type it needs.

Types are the strings of `names` (number, duration, bool, set, class, stage,
string, requests). Numbers and durations do not mix in `+ - <`: `req.age > 30`
is an error whose hint says `30s`. An expression whose names did not resolve
has type None and produces no further errors (no cascades).
"""

from __future__ import annotations

from dataclasses import dataclass

from gfdit.dsl import ast
from gfdit.dsl.declarations import Declarations
from gfdit.dsl.diagnostics import Report
from gfdit.dsl.names import (BOOL, CLASS, CLUSTER_NAMES, DUR, NUM, NUMERIC, REQS,
                             REQUEST_FIELDS, SET, STAGE, STR)

PARAM_TYPES = {"number": NUM, "duration": DUR, "set": SET, "bool": BOOL, "all": None}
MIXED_HINT = "durations carry a unit: 30s, 250ms, 5min"
# (op, left, right) -> result for arithmetic
ARITHMETIC = {
    ("+", NUM, NUM): NUM, ("+", DUR, DUR): DUR, ("-", NUM, NUM): NUM, ("-", DUR, DUR): DUR,
    ("*", NUM, NUM): NUM, ("*", NUM, DUR): DUR, ("*", DUR, NUM): DUR,
    ("/", NUM, NUM): NUM, ("/", DUR, NUM): DUR, ("/", DUR, DUR): NUM,
}
EQUALITY_TYPES = {NUM, DUR, BOOL, CLASS, STAGE, STR}


@dataclass
class TypeChecker:
    decls: Declarations
    report: Report

    def __post_init__(self) -> None:
        self._let_types: dict[str, str | None] = {}
        self._in_progress: set[str] = set()

    def of(self, node: ast.Expr | None) -> str | None:
        if node is None:
            return None
        node.ty = _VISIT[type(node)](self, node)
        return node.ty

    def expect(self, node: ast.Expr | None, wanted: tuple[str, ...], code: str, what: str) -> None:
        ty = self.of(node)
        if node is not None and ty is not None and ty not in wanted:
            hint = "compare it: e.g. `count(waiting) > 0`" if wanted == (BOOL,) else None
            self.report.add(code, node.span, f"{what} must be a {' or '.join(wanted)}, not a {ty}",
                            hint)

    def let_type(self, name: str) -> str | None:
        if name in self._let_types:
            return self._let_types[name]
        if name in self._in_progress or name in self.decls.cyclic_lets:
            return None
        self._in_progress.add(name)
        ty = self.of(self.decls.lets[name].expr)
        self._in_progress.discard(name)
        self._let_types[name] = ty
        return ty

    def name(self, node: ast.Name) -> str | None:
        ref = node.ref
        if ref is None:
            return None
        kinds = {
            "var": lambda: NUM, "class": lambda: CLASS, "stage": lambda: STAGE,
            "cluster": lambda: CLUSTER_NAMES[ref.key][0],
            "let": lambda: self.let_type(ref.key),
            "param": lambda: self._param_type(node),
        }
        return kinds[ref.kind]()

    def _param_type(self, node: ast.Name) -> str | None:
        decl = node.ref.value
        if decl.kind == "all":
            self.report.add("E209", node.span, f"'{node.id}' is `all` and has no value here")
        return PARAM_TYPES[decl.kind]

    def field(self, node: ast.Field) -> str | None:
        return REQUEST_FIELDS[node.name][0] if node.ref is not None else None

    def unary(self, node: ast.Unary) -> str | None:
        ty = self.of(node.operand)
        if node.op == "not":
            self._want_bool(node.operand, ty, "the operand of `not`")
            return BOOL
        if ty is not None and ty not in NUMERIC:
            self.report.add("E201", node.span, f"cannot negate a {ty}")
            return None
        return ty

    def binary(self, node: ast.Binary) -> str | None:
        left, right = self.of(node.left), self.of(node.right)
        if node.op in ("and", "or"):
            self._want_bool(node.left, left, f"each side of `{node.op}`")
            self._want_bool(node.right, right, f"each side of `{node.op}`")
            return BOOL
        if left is None or right is None:
            return BOOL if node.op in ("<", "<=", ">", ">=", "==", "!=") else None
        if node.op not in ("*", "/"):
            left, right = _zero_adopts(node.left, left, right), _zero_adopts(node.right, right, left)
        if node.op in ("+", "-", "*", "/"):
            result = ARITHMETIC.get((node.op, left, right))
            if result is None:
                hint = MIXED_HINT if {left, right} == {NUM, DUR} and node.op in "+-" else None
                self.report.add("E201", node.span, f"cannot apply '{node.op}' to {left} and {right}",
                                hint)
            return result
        self._comparison(node, left, right)
        return BOOL

    def _comparison(self, node: ast.Binary, left: str, right: str) -> None:
        ordered = node.op not in ("==", "!=")
        ok = (left == right and left in NUMERIC) if ordered else (
            (left == right and left in EQUALITY_TYPES) or {left, right} == {CLASS, STR})
        if not ok:
            hint = MIXED_HINT if {left, right} == {NUM, DUR} else None
            self.report.add("E204", node.span, f"cannot compare {left} with {right} using "
                            f"'{node.op}'", hint)

    def if_(self, node: ast.If) -> str | None:
        self._want_bool(node.cond, self.of(node.cond), "the condition of `if`")
        return self._same(node, self.of(node.then), self.of(node.orelse), "`if` branches")

    def _same(self, node: ast.Expr, a: str | None, b: str | None, what: str) -> str | None:
        if a is None or b is None:
            return a or b
        if a != b:
            self.report.add("E201", node.span, f"{what} differ in type: {a} and {b}",
                            MIXED_HINT if {a, b} == {NUM, DUR} else None)
            return None
        return a

    def choice(self, node: ast.Choice) -> str | None:
        self.expect(node.domain, (SET,), "E205", f"what `{node.kind}` chooses from")
        if node.where is not None:
            self._want_bool(node.where, self.of(node.where), "the `where` condition")
        arg = node.kind.startswith("arg")
        if arg and node.by is None:
            self.report.add("E209", node.span, f"`{node.kind}` needs `by EXPR`",
                            f"{node.kind} k in widths by finish(k)")
        elif not arg and node.by is not None:
            self.report.add("E209", node.by.span, f"`by` goes with argmin/argmax, not {node.kind}",
                            f"use arg{node.kind}")
        if node.by is not None:
            self.expect(node.by, NUMERIC, "E208", "the `by` key")
        if node.where is not None and node.orelse is None:
            self.report.add("E207", node.span, f"this `{node.kind}` may find nothing: add `else`",
                            f"{node.kind} k in widths where ... else 1")
        if node.orelse is not None:
            self.expect(node.orelse, (NUM,), "E201", "the `else` of a choice")
        return NUM

    def call(self, node: ast.Call) -> str | None:
        ref = node.ref
        if ref is None:
            for arg in node.args:
                self.of(arg.value)
            return None
        return {"cost": self._cost, "pair": self._pair, "agg": self._aggregate}[ref.kind](node)

    def _cost(self, node: ast.Call) -> str:
        for arg in node.args:
            self.expect(arg.value, (NUM,), "E201", f"the width given to {node.func}")
        return DUR

    def _pair(self, node: ast.Call) -> str | None:
        types = [self.of(a.value) for a in node.args]
        for arg, ty in zip(node.args, types, strict=True):
            if ty is not None and ty not in NUMERIC:
                self.report.add("E201", arg.span, f"{node.func} needs numbers or durations, not {ty}")
                return None
        return self._same(node, *types[:2], f"the arguments of {node.func}") if len(types) == 2 else None

    def _aggregate(self, node: ast.Call) -> str | None:
        if not node.args:
            return None
        first = node.args[0]
        self.expect(first.value, (REQS,), "E206", f"what {node.func} ranges over")
        if first.where is not None:
            self._want_bool(first.where, self.of(first.where), "the `where` condition")
        results = {"count": NUM, "any": BOOL}
        if node.func in results:
            return results[node.func]
        if len(node.args) < 2:
            return None
        value = self.of(node.args[1].value)
        if value is not None and value not in NUMERIC:
            self.report.add("E201", node.args[1].span, f"{node.func} needs a number or duration "
                            f"per element, not a {value}")
            return None
        return value

    def _want_bool(self, node: ast.Expr, ty: str | None, what: str) -> None:
        if ty is not None and ty != BOOL:
            self.report.add("E202", node.span, f"{what} must be a bool, not a {ty}")


def _zero_adopts(node: ast.Expr, ty: str, other: str) -> str:
    """A bare literal 0 is unit-free: it takes the other side's duration type (`slack(k) < 0`)."""
    zero = isinstance(node, ast.Num) and node.value == 0
    return DUR if zero and ty == NUM and other == DUR else ty


_VISIT = {
    ast.Num: lambda t, n: NUM, ast.Dur: lambda t, n: DUR, ast.Bool: lambda t, n: BOOL,
    ast.Str: lambda t, n: STR, ast.SetLit: lambda t, n: SET,
    ast.Name: TypeChecker.name, ast.Field: TypeChecker.field, ast.Call: TypeChecker.call,
    ast.Choice: TypeChecker.choice, ast.Unary: TypeChecker.unary, ast.Binary: TypeChecker.binary,
    ast.If: TypeChecker.if_,
}


def typecheck(decls: Declarations, report: Report) -> TypeChecker:
    """Type every let and rule; report what does not fit."""
    checker = TypeChecker(decls, report)
    for name in decls.lets:
        checker.let_type(name)
    for admit in decls.admits:
        checker.expect(admit.cond, (BOOL,), "E202", "an admit condition")
    for hold in decls.holds:
        checker.expect(hold.cond, (BOOL,), "E202", "a hold condition")
    for order in decls.orders:
        for key in order.keys:
            checker.expect(key.expr, (NUM, DUR, BOOL), "E208", "an order key")
    for rule in decls.width_rules:
        checker.expect(rule.cond, (BOOL,), "E202", "a `when` condition")
        checker.expect(rule.expr, (NUM,), "E203", "a width")
    for grow in decls.grows:
        checker.expect(grow.cond, (BOOL,), "E202", "a `when` condition")
        checker.expect(grow.bound, (NUM,), "E203", "an `up to` bound")
    for rule in decls.chunk_rules:
        checker.expect(rule.cond, (BOOL,), "E202", "a `when` condition")
        checker.expect(rule.expr, (NUM,), "E203", "a chunk (denoise steps)")
    return checker
