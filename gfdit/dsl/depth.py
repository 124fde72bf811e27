"""Bounded nesting: an expression's depth counts the depth of every let it uses.

Lets inline into each other, so a chain of small lets can nest as deeply as
one huge expression; every later pass (types, compiler) and every compiled
closure recurses once per level. This pass bounds the effective depth (E004),
walking trees with explicit stacks so it cannot overflow itself.
"""

from __future__ import annotations

from gfdit.dsl import ast
from gfdit.dsl.declarations import Declarations
from gfdit.dsl.diagnostics import Report
from gfdit.dsl.resolve import rule_expressions

MAX_EFFECTIVE_DEPTH = 150


def check_depth(decls: Declarations, deps: dict[str, set[str]], report: Report) -> bool:
    """Report E004 where lets and rules nest deeper than MAX_EFFECTIVE_DEPTH; True if none do."""
    depths: dict[str, int] = {}
    ok = True
    for name in _dependency_order(deps, decls):
        depths[name] = _depth(decls.lets[name].expr, depths)
        if depths[name] > MAX_EFFECTIVE_DEPTH and ok:
            ok = False
            report.add("E004", decls.lets[name].name.span,
                       f"let '{name}' nests {depths[name]} levels deep, counting the lets it uses "
                       f"(the limit is {MAX_EFFECTIVE_DEPTH})", "use fewer chained lets")
    if ok:
        for expr in rule_expressions(decls):
            depth = _depth(expr, depths)
            if depth > MAX_EFFECTIVE_DEPTH:
                report.add("E004", expr.span, f"this expression nests {depth} levels deep, counting "
                           f"the lets it uses (the limit is {MAX_EFFECTIVE_DEPTH})",
                           "use fewer chained lets")
                return False
    return ok


def _dependency_order(deps: dict[str, set[str]], decls: Declarations) -> list[str]:
    """Lets, each after the lets it uses (Kahn's algorithm; lets on a cycle are left out)."""
    pending = {n: {d for d in deps.get(n, ()) if d in decls.lets} for n in decls.lets}
    order: list[str] = []
    ready = [n for n, ds in pending.items() if not ds]
    while ready:
        name = ready.pop()
        order.append(name)
        del pending[name]
        for other, ds in pending.items():
            if name in ds:
                ds.discard(name)
                if not ds and other not in ready:
                    ready.append(other)
    return order


def _depth(root: ast.Expr, let_depths: dict[str, int]) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.Name) and node.ref is not None and node.ref.kind == "let":
            depth += let_depths.get(node.ref.key, 0)
        deepest = max(deepest, depth)
        children = vars(node).values() if isinstance(node, ast.Node) else node
        for child in children:
            if isinstance(child, (ast.Node, list)):
                stack.append((child, depth + 1))
    return deepest
