"""Which expressions depend only on a request's fixed fields (the same value every round).

An `order by` key such as `req.deadline, -req.priority` reads nothing that
changes while a request waits: not the clock, the cluster, the queue, its
progress or the cost model. The engine may then compute it once per request
(`Policy.static_order`) instead of every round: the same order, for less work.
Fields fixed at admission: id, class, priority, arrival, deadline, tokens,
steps, t_single, preemptible. Params, classes and stage names are constants.
"""

from __future__ import annotations

from gfdit.dsl import ast

FIXED_FIELDS = frozenset({"id", "class", "priority", "arrival", "deadline", "tokens", "steps",
                          "t_single", "preemptible"})
CONSTANT_NAMES = frozenset({"param", "class", "stage"})


def is_static(node: object, lets: dict[str, ast.LetDecl]) -> bool:
    """Whether `node` (a checked expression) reads only constants and the candidate's fixed fields."""
    if isinstance(node, (ast.Num, ast.Dur, ast.Bool, ast.Str, ast.SetLit)):
        return True
    if isinstance(node, ast.Field):
        return node.ref is not None and node.ref.kind == "req" and node.ref.key in FIXED_FIELDS
    if isinstance(node, ast.Name):
        if node.ref is None:
            return False
        if node.ref.kind == "let":
            return is_static(lets[node.ref.key].expr, lets)
        return node.ref.kind in CONSTANT_NAMES
    if isinstance(node, ast.Unary):
        return is_static(node.operand, lets)
    if isinstance(node, ast.Binary):
        return is_static(node.left, lets) and is_static(node.right, lets)
    if isinstance(node, ast.If):
        return all(is_static(x, lets) for x in (node.cond, node.then, node.orelse))
    if isinstance(node, ast.Call) and node.ref is not None and node.ref.kind == "pair":
        return all(is_static(arg.value, lets) for arg in node.args)
    return False  # cost calls, aggregates, choices, the clock and the cluster change between rounds
