"""Pass 4, policy rules: what makes a typed policy a usable one.

Each stage has an unconditional `width` rule; constant widths are members of
`widths`; exactly one `order by`. Warnings: rules shadowed by an earlier
unconditional rule for the same stages, constant conditions, unused lets/params,
and the `LINTS` (rules or terms that cannot do what they seem to).
"""

from __future__ import annotations

import math

from gfdit.dsl import ast
from gfdit.dsl.compile import FOLD
from gfdit.dsl.declarations import Declarations, expand_stages
from gfdit.dsl.diagnostics import Report, did_you_mean
from gfdit.dsl.names import COST_FUNCTIONS, RESERVED_PARAMS, STAGE_NAMES

_NO_CONSTANT = object()


def check_rules(decls: Declarations, report: Report, used: set[str], end: ast.Span,
                complete: bool = True) -> None:
    """Report policy-rule errors and warnings into `report`.

    With `complete=False` (some declarations did not parse) the checks for
    missing rules are skipped: the missing rule may be the one that failed.
    """
    if complete:
        _order_count(decls, report, end)
        _width_defaults(decls, report, end)
    else:
        for extra in decls.orders[1:]:
            report.add("E304", extra.span, "a second `order by`")
    _set_members(decls, report)
    _constant_widths(decls, report)
    _shadowed(decls.width_rules, "width", report)
    _shadowed(decls.grows, "grow", report)
    _chunk_rules(decls, report)
    for rule in [*decls.holds, *decls.width_rules, *decls.grows, *decls.admits, *decls.chunk_rules]:
        _constant_condition(rule, report)
    for lint in LINTS:
        lint(decls, report)
    for name, let in decls.lets.items():
        if name not in used:
            report.add("W402", let.name.span, f"let '{name}' is never used")
    for name, param in decls.params.items():
        if name not in used and name not in RESERVED_PARAMS and name not in decls.pool_params:
            report.add("W402", param.name.span, f"param '{name}' is never used")


def constant(node: ast.Expr | None, params: bool = True) -> object:
    """The value of an expression made of literals and params only, else `_NO_CONSTANT`.

    With `params=False` a param is not a constant: `--param` can change it at load."""
    if isinstance(node, (ast.Num, ast.Dur, ast.Bool)):
        return node.value
    if params and isinstance(node, ast.Name) and node.ref is not None and node.ref.kind == "param":
        value = node.ref.value.value
        return value if isinstance(value, (int, float, bool)) else _NO_CONSTANT
    if isinstance(node, ast.Binary):
        left, right = constant(node.left, params), constant(node.right, params)
        if left is _NO_CONSTANT or right is _NO_CONSTANT:
            return _NO_CONSTANT
        return FOLD[node.op](left, right)
    if isinstance(node, ast.Unary):
        inner = constant(node.operand, params)
        if inner is _NO_CONSTANT:
            return inner
        return (not inner) if node.op == "not" else -inner
    return _NO_CONSTANT


def _order_count(decls: Declarations, report: Report, end: ast.Span) -> None:
    if not decls.orders:
        report.add("E303", end, "the policy has no `order by`",
                   "add one, e.g. `order by req.arrival` (first come, first served)")
    for extra in decls.orders[1:]:
        report.add("E304", extra.span, f"a second `order by` (the first is on line "
                   f"{decls.orders[0].span.line})", "give all keys in one: order by A, B, C")


def _width_defaults(decls: Declarations, report: Report, end: ast.Span) -> None:
    covered: set[str] = set()
    for rule in decls.width_rules:
        if rule.cond is None:
            covered.update(expand_stages(rule.stages, Report(report.file, "")))
    missing = [s for s in STAGE_NAMES if s not in covered]
    if missing:
        where = decls.width_rules[-1].span if decls.width_rules else end
        report.add("E301", where, "no unconditional width rule for " + ", ".join(missing),
                   f"add a default, e.g. `width {', '.join(missing)} = 1`")


def _constant_widths(decls: Declarations, report: Report) -> None:
    allowed = set(decls.widths)
    for rule in decls.width_rules:
        for node in _width_leaves(rule.expr):
            value = constant(node)
            if value is not _NO_CONSTANT and not isinstance(value, bool) and value not in allowed:
                report.add("E302", node.span, f"width {value:g} is not in widths "
                           f"{{{', '.join(map(str, decls.widths))}}}",
                           "add it to `param widths` or pick an allowed width")
    for node in _set_literals(decls):
        bad = [v for v in node.values if v not in allowed and whole(v)]  # others: E309 (_set_members)
        if bad:
            report.add("E302", node.span, f"{', '.join(f'{v:g}' for v in bad)} not in widths "
                       f"{{{', '.join(map(str, decls.widths))}}}")
    for call in _constant_cost_calls(decls):
        value = constant(call.args[0].value)
        if not isinstance(value, bool) and value not in allowed:
            report.add("E302", call.args[0].value.span, f"{call.func}({value:g}): width {value:g} is "
                       f"not in widths {{{', '.join(map(str, decls.widths))}}}",
                       "the cost model prices the policy's widths only; estimate at one of them")


def _width_leaves(node: ast.Expr) -> list[ast.Expr]:
    """The expressions whose value can become the width: branches of ifs and choices' elses."""
    if isinstance(node, ast.If):
        return _width_leaves(node.then) + _width_leaves(node.orelse)
    if isinstance(node, ast.Choice):
        return _width_leaves(node.orelse) if node.orelse is not None else []
    return [node]


def _nodes(root: object):
    """Every AST node under `root` (a node or a list of them), depth first."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, ast.Node):
            yield node
            stack.extend(reversed([v for v in vars(node).values()
                                   if isinstance(v, (ast.Node, list)) and v is not node]))


def whole(value: float) -> bool:
    """A finite whole number: what every member of a set literal must be."""
    return math.isfinite(value) and value == int(value)


def _set_members(decls: Declarations, report: Report) -> None:
    """Every set literal, wherever it is (a `let` too), holds finite whole numbers only."""
    roots = [*decls.width_rules, *decls.grows, *decls.holds, *decls.admits, *decls.orders, *decls.lets.values(),
             *decls.chunk_rules]
    for node in _nodes(roots):
        bad = [v for v in node.values if not whole(v)] if isinstance(node, ast.SetLit) else []
        if bad:
            _not_whole(node.span, bad, report)
    for name, param in decls.params.items():  # `--param ws={1.5}` too; widths, pools: E112, E305
        own = param.kind == "set" and name not in RESERVED_PARAMS and name not in decls.pool_params
        bad = [v for v in param.value if not whole(v)] if own else []
        if bad:
            _not_whole(param.span, bad, report)


def _not_whole(span: ast.Span, bad: list[float], report: Report) -> None:
    report.add("E309", span, f"set member{'s' if len(bad) > 1 else ''} "
               f"{', '.join(f'{v:g}' for v in bad)} not a whole number",
               "a set holds whole numbers (widths), e.g. `{1, 2, 4}`")


def _set_literals(decls: Declarations) -> list[ast.SetLit]:
    """Set literals that choices range over (they stand for candidate widths): written there, or
    a `let` (through any chain of lets) whose value is one; each once."""
    found = {id(s): s for node in _nodes([*decls.width_rules, *decls.grows, *decls.lets.values(), *decls.chunk_rules])
             if isinstance(node, ast.Choice) and (s := _let_set(node.domain)) is not None}
    return list(found.values())


def _let_set(node: ast.Expr) -> ast.SetLit | None:
    """`node` if it is a set literal; the set literal a let name stands for; else None."""
    seen: set[str] = set()
    while isinstance(node, ast.Name) and node.ref is not None and node.ref.kind == "let" and node.id not in seen:
        seen.add(node.id)
        node = node.ref.value.expr
    return node if isinstance(node, ast.SetLit) else None


def _constant_cost_calls(decls: Declarations) -> list[ast.Call]:
    """Cost-model calls (`finish(3)`, ...) whose width is a constant."""
    roots = [*decls.width_rules, *decls.grows, *decls.holds, *decls.admits, *decls.orders, *decls.lets.values(),
             *decls.chunk_rules]
    return [node for node in _nodes(roots)
            if isinstance(node, ast.Call) and node.func in COST_FUNCTIONS and len(node.args) == 1
            and node.args[0].where is None and constant(node.args[0].value) is not _NO_CONSTANT]


def _chunk_rules(decls: Declarations, report: Report) -> None:
    """E313: a `chunk` rule under `chunk = all` (every task is the whole trajectory), or one whose constant
    value is not a positive whole number; W401: a rule after an unconditional one."""
    first_default = None
    for rule in decls.chunk_rules:
        if decls.chunk is None:
            report.add("E313", rule.span, "a `chunk` rule needs `param chunk` to be a number",
                       "with chunk = all every task is the whole trajectory")
        value = constant(rule.expr)
        if value is not _NO_CONSTANT and not (isinstance(value, (int, float)) and whole(value) and value >= 1):
            report.add("E313", rule.expr.span, f"a chunk is a positive whole number of denoise steps, not {value!r}",
                       "for example `chunk when req.class == L = 10`")
        if first_default is not None:
            report.add("W401", rule.span, f"this chunk rule can never match: line {first_default.span.line} "
                       "already decides every chunk unconditionally",
                       "move it above the unconditional rule, or remove it")
        elif rule.cond is None:
            first_default = rule


def _shadowed(rules: list, kind: str, report: Report) -> None:
    done: dict[str, int] = {}
    quiet = Report(report.file, "")
    for rule in rules:
        stages = expand_stages(rule.stages, quiet)
        if stages and all(s in done for s in stages):
            lines = sorted({done[s] for s in stages})
            report.add("W401", rule.span, f"this {kind} rule can never match: line"
                       f"{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))} already "
                       f"decide{'s' if len(lines) == 1 else ''} {', '.join(stages)} unconditionally",
                       "move it above the unconditional rule, or remove it")
        if rule.cond is None:
            for s in stages:
                done.setdefault(s, rule.span.line)


def _constant_condition(rule: ast.Node, report: Report) -> None:
    cond = getattr(rule, "cond", None)
    value = constant(cond, params=False)  # a condition over params is the operator's to flip
    if isinstance(value, bool):
        what = "always true" if value else "always false"
        effect = "the rule never applies" if not value else "it is the same as no condition"
        if isinstance(rule, ast.AdmitDecl):
            effect = "every request is rejected" if not value else "it admits every request"
        report.add("W403", cond.span, f"this condition is {what}: {effect}")


def _any_without_where(decls: Declarations, report: Report) -> None:
    for node in _nodes(_all_expressions(decls)):
        if isinstance(node, ast.Call) and node.func == "any" and node.ref is not None \
                and node.ref.kind == "agg" and node.args and node.args[0].where is None:
            report.add("W404", node.span, "`any` without `where` only asks whether the set is "
                       "empty (and `waiting` always holds the candidate)",
                       "filter it: any(waiting where C), or write count(...) > 0")


def _grow_never_widens(decls: Declarations, report: Report) -> None:
    for grow in decls.grows:
        bound = constant(grow.bound, params=False)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool) and bound <= decls.widths[0]:
            report.add("W405", grow.bound.span, f"`up to {bound:g}` is not above the smallest width "
                       f"{decls.widths[0]}: this rule never widens anything",
                       f"bound it by a wider allowed width, e.g. `up to {decls.widths[-1]}`")


def _undeclared_class(decls: Declarations, report: Report) -> None:
    for node in _nodes(_all_expressions(decls)):
        if not (isinstance(node, ast.Binary) and node.op in ("==", "!=")):
            continue
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(side, ast.Field) and side.name == "class" and isinstance(other, ast.Str) \
                    and other.value not in decls.class_decls and other.value != "default":
                report.add("W406", other.span, f'the policy declares no class "{other.value}"',
                           did_you_mean(other.value, decls.class_decls)
                           or f"declare it (class {other.value} {{ }}) if requests carry it")


def _dead_under_whole_tasks(decls: Declarations, report: Report) -> None:
    if decls.chunk is not None:
        return
    quiet = Report(report.file, "")
    for kind, rules in (("hold", decls.holds), ("width", decls.width_rules), ("grow", decls.grows)):
        for rule in rules:
            stages = expand_stages(rule.stages, quiet)
            if stages and "encode" not in stages:
                report.add("W407", rule.span, f"with `chunk = all` every task starts at encode: "
                           f"this {kind} rule for {', '.join(stages)} never applies",
                           f"write `{kind} * ...` (or include encode)")


def _all_expressions(decls: Declarations) -> list:
    return [*decls.lets.values(), *decls.admits, *decls.holds, *decls.orders, *decls.width_rules,
            *decls.grows, *decls.chunk_rules]


LINTS = (_any_without_where, _grow_never_widens, _undeclared_class, _dead_under_whole_tasks)
