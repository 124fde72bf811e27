"""Checked expressions to plain Python closures `f(view, req, frame) -> value`.

No user text reaches `eval`/`exec`: every node becomes a closure chosen from a
literal table, specialised where it pays (constant operands are folded or
captured; request fields and cluster names read by a dedicated lambda each).
`frame` is a small list holding the values of choice variables and aggregate
elements, at the slots the resolver assigned.

A cost call that raises (a width the cost model cannot price) raises
`RuleError` with the call's `file:line:col`; anything else a rule raises is
located at the rule by `gfdit.dsl.policy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gfdit.dsl import ast
from gfdit.dsl.closure import Code, Compiled, const
from gfdit.dsl.compile_choice import compile_aggregate, compile_choice
from gfdit.dsl.compile_cost import cost_call
from gfdit.dsl.names import REQUEST_FIELDS

# candidate field -> reader; element field -> reader factory (slot)
REQ_READERS: dict[str, Code] = {
    "id": lambda v, q, e: q.id, "class": lambda v, q, e: q.request_class,
    "priority": lambda v, q, e: q.priority, "arrival": lambda v, q, e: q.arrival,
    "deadline": lambda v, q, e: q.deadline, "age": lambda v, q, e: q.age,
    "waited": lambda v, q, e: q.waited, "paused": lambda v, q, e: q.paused,
    "queued": lambda v, q, e: q.queued, "tokens": lambda v, q, e: q.tokens, "steps": lambda v, q, e: q.steps,
    "steps_done": lambda v, q, e: q.steps_done, "steps_left": lambda v, q, e: q.steps_left,
    "stage": lambda v, q, e: q.stage, "width": lambda v, q, e: q.width,
    "t_single": lambda v, q, e: q.t_single, "preemptible": lambda v, q, e: q.preemptible,
}
NEG_REQ_READERS: dict[str, Code] = {  # -req.FIELD in one call (numeric fields)
    "priority": lambda v, q, e: -q.priority, "arrival": lambda v, q, e: -q.arrival,
    "deadline": lambda v, q, e: -q.deadline, "age": lambda v, q, e: -q.age,
    "waited": lambda v, q, e: -q.waited, "paused": lambda v, q, e: -q.paused,
    "queued": lambda v, q, e: -q.queued,
    "tokens": lambda v, q, e: -q.tokens, "steps": lambda v, q, e: -q.steps,
    "steps_done": lambda v, q, e: -q.steps_done, "steps_left": lambda v, q, e: -q.steps_left,
    "width": lambda v, q, e: -q.width, "t_single": lambda v, q, e: -q.t_single,
}
CLUSTER_READERS: dict[str, Code] = {
    "now": lambda v, q, e: v.now, "gpus": lambda v, q, e: v.gpus, "free": lambda v, q, e: v.free,
    "busy": lambda v, q, e: v.busy, "waiting": lambda v, q, e: v.waiting,
    "running": lambda v, q, e: v.running,
}
def divide(x: float, y: float) -> float:
    """Division made total: x/0 is +-infinity (0/0 is 0), so no hook raises on it."""
    if y:
        return x / y
    return 0.0 if x == 0 else math.copysign(math.inf, x)


BINARY = {
    "+": lambda a, b: lambda v, q, e: a(v, q, e) + b(v, q, e),
    "-": lambda a, b: lambda v, q, e: a(v, q, e) - b(v, q, e),
    "*": lambda a, b: lambda v, q, e: a(v, q, e) * b(v, q, e),
    "/": lambda a, b: lambda v, q, e: divide(a(v, q, e), b(v, q, e)),
    "<": lambda a, b: lambda v, q, e: a(v, q, e) < b(v, q, e),
    "<=": lambda a, b: lambda v, q, e: a(v, q, e) <= b(v, q, e),
    ">": lambda a, b: lambda v, q, e: a(v, q, e) > b(v, q, e),
    ">=": lambda a, b: lambda v, q, e: a(v, q, e) >= b(v, q, e),
    "==": lambda a, b: lambda v, q, e: a(v, q, e) == b(v, q, e),
    "!=": lambda a, b: lambda v, q, e: a(v, q, e) != b(v, q, e),
    "and": lambda a, b: lambda v, q, e: bool(a(v, q, e)) and bool(b(v, q, e)),
    "or": lambda a, b: lambda v, q, e: bool(a(v, q, e)) or bool(b(v, q, e)),
}
BINARY_CONST_RIGHT = {
    "+": lambda a, c: lambda v, q, e: a(v, q, e) + c,
    "-": lambda a, c: lambda v, q, e: a(v, q, e) - c,
    "*": lambda a, c: lambda v, q, e: a(v, q, e) * c,
    "/": lambda a, c: lambda v, q, e: divide(a(v, q, e), c),
    "<": lambda a, c: lambda v, q, e: a(v, q, e) < c,
    "<=": lambda a, c: lambda v, q, e: a(v, q, e) <= c,
    ">": lambda a, c: lambda v, q, e: a(v, q, e) > c,
    ">=": lambda a, c: lambda v, q, e: a(v, q, e) >= c,
    "==": lambda a, c: lambda v, q, e: a(v, q, e) == c,
    "!=": lambda a, c: lambda v, q, e: a(v, q, e) != c,
}
FOLD = {
    "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y, "/": divide,
    "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y, "==": lambda x, y: x == y, "!=": lambda x, y: x != y,
    "and": lambda x, y: bool(x) and bool(y), "or": lambda x, y: bool(x) or bool(y),
}


@dataclass
class ExprCompiler:
    """Compiles expressions of one policy; lets are compiled once and shared."""

    lets: dict[str, ast.LetDecl]
    filename: str = "<policy>"
    _done: dict[str, Compiled] = field(default_factory=dict)
    frame_size: int = 0

    def compile(self, node: ast.Expr) -> Compiled:
        return _COMPILE[type(node)](self, node)

    def compile_sized(self, node: ast.Expr) -> tuple[Compiled, int]:
        """Compile `node`; also return the frame size its closure needs (0: pass any list)."""
        outer, self.frame_size = self.frame_size, 0
        compiled = self.compile(node)
        size, self.frame_size = self.frame_size, max(outer, self.frame_size)
        return compiled, size

    def where(self, span: ast.Span) -> str:
        """The source location of a node, as `RuleError.rule` names it."""
        return f"{self.filename}:{span.line}:{span.col}"

    def let(self, name: str) -> Compiled:
        if name not in self._done:
            outer, self.frame_size = self.frame_size, 0
            body = self.compile(self.lets[name].expr)
            size, self.frame_size = self.frame_size, outer
            if body.is_const or size == 0:
                self._done[name] = body
            else:  # its own frame: a let's choice must not clobber the caller's variables
                inner = body.fn
                self._done[name] = Compiled(lambda v, q, e: inner(v, q, [None] * size))
        return self._done[name]

    def name(self, node: ast.Name) -> Compiled:
        ref = node.ref
        if ref.kind == "var":
            slot = ref.slot
            return Compiled(lambda v, q, e: e[slot])
        if ref.kind == "let":
            return self.let(ref.key)
        if ref.kind == "param":
            value = ref.value.value
            return const(tuple(sorted(int(x) for x in value)) if ref.value.kind == "set" else value)
        if ref.kind in ("class", "stage"):
            return const(ref.key)
        return Compiled(CLUSTER_READERS[ref.key])

    def field(self, node: ast.Field) -> Compiled:
        if node.ref.kind == "req":
            return Compiled(REQ_READERS[node.ref.key])
        slot, attr = node.ref.slot, _attribute(node.ref.key)
        return Compiled(lambda v, q, e: getattr(e[slot], attr))

    def unary(self, node: ast.Unary) -> Compiled:
        inner = self.compile(node.operand)
        if node.op == "not":
            if inner.is_const:
                return const(not inner.const)
            f = inner.fn
            return Compiled(lambda v, q, e: not f(v, q, e))
        if inner.is_const:
            return const(-inner.const)
        operand = node.operand
        if isinstance(operand, ast.Field) and operand.ref.kind == "req":
            return Compiled(NEG_REQ_READERS[operand.ref.key])
        f = inner.fn
        return Compiled(lambda v, q, e: -f(v, q, e))

    def binary(self, node: ast.Binary) -> Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        if left.is_const and right.is_const:
            return const(FOLD[node.op](left.const, right.const))
        if right.is_const and node.op in BINARY_CONST_RIGHT:
            return Compiled(BINARY_CONST_RIGHT[node.op](left.fn, right.const))
        return Compiled(BINARY[node.op](left.fn, right.fn))

    def if_(self, node: ast.If) -> Compiled:
        c, t, o = self.compile(node.cond), self.compile(node.then), self.compile(node.orelse)
        if c.is_const:
            return t if c.const else o
        cf, tf, of = c.fn, t.fn, o.fn
        return Compiled(lambda v, q, e: tf(v, q, e) if cf(v, q, e) else of(v, q, e))

    def choice(self, node: ast.Choice) -> Compiled:
        self.frame_size = max(self.frame_size, node.slot + 1)
        return compile_choice(self, node)

    def call(self, node: ast.Call) -> Compiled:
        ref = node.ref
        if ref.kind == "cost":
            value = node.args[0].value
            arg, where = self.compile(value), self.where(node.span)
            if ref.slot >= 0:  # r.est(k): of the aggregate's element
                var = value.ref.slot if isinstance(value, ast.Name) and value.ref is not None \
                    and value.ref.kind == "var" else None
                return Compiled(cost_call(node.func, where, element=ref.slot,
                                          const=int(arg.const) if arg.is_const else None, slot=var,
                                          arg=None if arg.is_const or var is not None else arg.fn))
            if arg.is_const:
                return Compiled(cost_call(node.func, where, const=int(arg.const)))
            if isinstance(value, ast.Name) and value.ref is not None and value.ref.kind == "var":
                return Compiled(cost_call(node.func, where, slot=value.ref.slot))
            return Compiled(cost_call(node.func, where, arg=arg.fn))
        if ref.kind == "pair":
            a, b = (self.compile(x.value) for x in node.args)
            pick = min if node.func == "min" else max
            if a.is_const and b.is_const:
                return const(pick(a.const, b.const))
            af, bf = a.fn, b.fn
            return Compiled(lambda v, q, e: pick(af(v, q, e), bf(v, q, e)))
        self.frame_size = max(self.frame_size, ref.slot + 1)
        return compile_aggregate(self, node)


def _attribute(field_name: str) -> str:
    return REQUEST_FIELDS[field_name][1]


_COMPILE = {
    ast.Num: lambda c, n: const(n.value), ast.Dur: lambda c, n: const(n.value),
    ast.Bool: lambda c, n: const(n.value), ast.Str: lambda c, n: const(n.value),
    ast.SetLit: lambda c, n: const(tuple(sorted({int(x) for x in n.values}))),
    ast.Name: ExprCompiler.name, ast.Field: ExprCompiler.field, ast.Call: ExprCompiler.call,
    ast.Choice: ExprCompiler.choice, ast.Unary: ExprCompiler.unary,
    ast.Binary: ExprCompiler.binary, ast.If: ExprCompiler.if_,
}
