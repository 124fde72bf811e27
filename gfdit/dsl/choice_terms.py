"""The values inside a choice, for explanations: each `finish(k)` of `min k in widths where ...`.

A rule's observed terms (`Why.values`) are the terms it reads at top level; a
choice's `where` and `by` read its variable, so they have no single value.
`choice_terms` finds, for each choice in a rule, the cost calls that read its
variable and compiles one closure per call that evaluates it at every k of
the choice's set: `finish(k)` -> `{"1": 61.2, "2": 33.0, "4": 19.4}`. A k the
cost model cannot price is left out of that map.
"""

from __future__ import annotations

from gfdit.dsl import ast


def choice_terms(compiler, node: ast.Expr | None) -> list[tuple[ast.Call, object]]:
    """(call, closure(view, req, frame) -> {k: value}) for each cost call on a choice's variable."""
    found: list[tuple[ast.Call, object]] = []
    for choice in _choices(node):
        domain = compiler.compile(choice.domain).fn
        for call in _variable_calls(choice, choice.where) + _variable_calls(choice, choice.by):
            term, size = compiler.compile_sized(call)
            found.append((call, _per_k(domain, term.fn, choice.slot, max(size, choice.slot + 1))))
    return found


def _per_k(domain, term, slot: int, size: int):
    def values(view, req, _frame) -> dict[str, object]:
        frame = [None] * size
        out: dict[str, object] = {}
        for k in domain(view, req, frame):
            frame[slot] = k
            try:
                value = term(view, req, frame)
            except (ValueError, ArithmeticError):  # e.g. a width the cost model lacks
                continue
            out[str(k)] = round(value, 6) if isinstance(value, float) else value
        return out

    return values


def _choices(node: object) -> list[ast.Choice]:
    """Choices in a rule's expression whose set is known without other choice variables."""
    if isinstance(node, ast.Choice):
        own = [] if _reads_variable(node.domain) else [node]
        return own + _choices(node.orelse)
    if isinstance(node, ast.Binary):
        return _choices(node.left) + _choices(node.right)
    if isinstance(node, ast.Unary):
        return _choices(node.operand)
    if isinstance(node, ast.If):
        return _choices(node.cond) + _choices(node.then) + _choices(node.orelse)
    return []


def _variable_calls(choice: ast.Choice, node: object) -> list[ast.Call]:
    """Cost calls under `node` whose width reads `choice`'s variable (not inside nested choices)."""
    if isinstance(node, ast.Call) and node.ref is not None and node.ref.kind == "cost" and node.ref.slot < 0:
        return [node] if _reads_variable(node, choice.slot) else []
    if isinstance(node, ast.Binary):
        return _variable_calls(choice, node.left) + _variable_calls(choice, node.right)
    if isinstance(node, ast.Unary):
        return _variable_calls(choice, node.operand)
    if isinstance(node, ast.If):
        return [c for part in (node.cond, node.then, node.orelse) for c in _variable_calls(choice, part)]
    return []


def _reads_variable(node: object, slot: int | None = None) -> bool:
    """Whether `node` reads a choice variable (the one at `slot`, or any)."""
    if isinstance(node, ast.Name) and node.ref is not None and node.ref.kind == "var":
        return slot is None or node.ref.slot == slot
    if isinstance(node, ast.Node):
        return any(_reads_variable(v, slot) for v in vars(node).values() if isinstance(v, (ast.Node, list)))
    if isinstance(node, list):
        return any(_reads_variable(v, slot) for v in node)
    return False
