"""A small tree-walking reference interpreter: the test oracle for the compiler.

It evaluates a checked policy straight from its syntax tree, looking names up
by scope at run time (it ignores the resolver's annotations and the compiled
closures), slowly and plainly. Tests check that compiled hooks agree with it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from gfdit.dsl import ast
from gfdit.dsl.declarations import Declarations, expand_stages
from gfdit.dsl.diagnostics import Report
from gfdit.dsl.names import CLUSTER_NAMES, REQUEST_FIELDS, STAGE_NAMES
from gfdit.dsl.policy import significant_keys


@dataclass
class Interpreter:
    """Hooks of one checked policy, evaluated by walking its tree."""

    decls: Declarations
    filename: str

    def admit(self, view, req):
        for rule in self.decls.admits:
            if not self.evaluate(rule.cond, view, req, {}):
                return rule.reason, self._where(rule)
        return None, None

    def hold(self, view, req):
        for rule in self._for_stage(self.decls.holds, req):
            if self.evaluate(rule.cond, view, req, {}):
                return self._where(rule)
        return None

    def order_key(self, view, req) -> tuple:
        keys = []
        for key in significant_keys(self.decls.orders[0].keys):
            value = self.evaluate(key.expr, view, req, {})
            keys.append(-value if key.desc else value)
        return tuple(keys)

    def width(self, view, req):
        for rule in self._for_stage(self.decls.width_rules, req):
            if rule.cond is None or self.evaluate(rule.cond, view, req, {}):
                return self._allowed(self.evaluate(rule.expr, view, req, {})), self._where(rule)
        raise AssertionError("no width rule")

    def grow(self, view, req):
        for rule in self._for_stage(self.decls.grows, req):
            if rule.cond is None or self.evaluate(rule.cond, view, req, {}):
                bound = self.decls.widths[-1] if rule.bound is None else self.evaluate(
                    rule.bound, view, req, {})
                return self._allowed(bound), self._where(rule)
        return None

    def chunk(self, view, req):
        """Steps of the next denoise task by the first matching `chunk` rule (at least 1, at most the steps
        left) and its location, or None."""
        for rule in self.decls.chunk_rules:
            if rule.cond is None or self.evaluate(rule.cond, view, req, {}):
                value = self.evaluate(rule.expr, view, req, {})
                if math.isnan(value):
                    raise ValueError("NaN chunk")
                left = max(req.steps_left, 1)
                return 1 if value < 1 else left if value >= left else int(value), self._where(rule)
        return None

    def _for_stage(self, rules: list, req) -> list:
        return [r for r in rules if req.stage in expand_stages(r.stages, Report("", ""))]

    def _where(self, rule: ast.Node) -> str:
        return f"{self.filename}:{rule.span.line}"

    def _allowed(self, wanted) -> int:
        widths = self.decls.widths
        if wanted in widths:
            return int(wanted)
        return widths[max(0, bisect.bisect_right(widths, wanted) - 1)]

    # ---- expressions ----------------------------------------------------

    def evaluate(self, node: ast.Expr, view, req, env: dict):
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node, view, req, env)

    def _num(self, node, view, req, env):
        return node.value

    _dur = _bool = _str = _num

    def _setlit(self, node, view, req, env):
        return tuple(sorted({int(v) for v in node.values}))

    def _name(self, node, view, req, env):
        n, d = node.id, self.decls
        if n in env:
            return env[n]
        if n in d.lets:
            return self.evaluate(d.lets[n].expr, view, req, {})
        if n in d.params:
            p = d.params[n]
            return tuple(sorted(int(v) for v in p.value)) if p.kind == "set" else p.value
        if n in d.class_decls or n in STAGE_NAMES:
            return n
        return getattr(view, CLUSTER_NAMES[n][1])

    def _field(self, node, view, req, env):
        target = req if node.base == "req" else env["r"]
        return getattr(target, REQUEST_FIELDS[node.name][1])

    def _unary(self, node, view, req, env):
        value = self.evaluate(node.operand, view, req, env)
        return (not value) if node.op == "not" else -value

    def _binary(self, node, view, req, env):
        op = node.op
        if op == "and":
            return bool(self.evaluate(node.left, view, req, env)) and bool(
                self.evaluate(node.right, view, req, env))
        if op == "or":
            return bool(self.evaluate(node.left, view, req, env)) or bool(
                self.evaluate(node.right, view, req, env))
        a, b = self.evaluate(node.left, view, req, env), self.evaluate(node.right, view, req, env)
        if op == "/":
            return a / b if b else (0.0 if a == 0 else math.copysign(math.inf, a))
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "<": lambda: a < b,
                "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b,
                "==": lambda: a == b, "!=": lambda: a != b}[op]()

    def _if(self, node, view, req, env):
        branch = node.then if self.evaluate(node.cond, view, req, env) else node.orelse
        return self.evaluate(branch, view, req, env)

    def _choice(self, node, view, req, env):
        domain = self.evaluate(node.domain, view, req, env)
        matches = [k for k in domain if node.where is None or
                   self.evaluate(node.where, view, req, {**env, node.var: k})]
        if not matches:
            return self.evaluate(node.orelse, view, req, env) if node.orelse is not None else None
        if node.kind == "min":
            return min(matches)
        if node.kind == "max":
            return max(matches)
        scored = [(self.evaluate(node.by, view, req, {**env, node.var: k}), k) for k in matches]
        best = scored[0]
        for value, k in scored[1:]:
            if (value < best[0]) if node.kind == "argmin" else (value > best[0]):
                best = (value, k)
        return best[1]

    def _call(self, node, view, req, env):
        f = node.func
        if f in ("step", "est", "finish", "slack", "gpu_time"):
            k = self.evaluate(node.args[0].value, view, req, env)
            who = env["r"] if node.on == "r" else req  # `r.est(k)`: the aggregate's element
            return getattr(view, f)(who, int(k) if float(k).is_integer() else k)
        first = self.evaluate(node.args[0].value, view, req, env)
        if f in ("min", "max") and isinstance(first, (int, float)):  # min(a, b) of two values
            second = self.evaluate(node.args[1].value, view, req, env)
            return min(first, second) if f == "min" else max(first, second)
        cond = node.args[0].where
        chosen = [x for x in first if cond is None or self.evaluate(cond, view, req, {**env, "r": x})]
        if f == "count":
            return len(chosen)
        if f == "any":
            return bool(chosen)
        values = [self.evaluate(node.args[1].value, view, req, {**env, "r": x}) for x in chosen]
        folds = {"sum": lambda: sum(values, 0), "min": lambda: min(values, default=math.inf),
                 "max": lambda: max(values, default=-math.inf)}
        return folds[f]()
