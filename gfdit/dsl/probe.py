"""Check-time probing: every rule evaluated on synthetic rounds before the policy runs.

A policy can type-check and still fail at run time through the cost model: a
cost call at a width it does not price (`slack(max(req.width, 1) * 3)` with no
width-3 layout), or at width 0 (`order by slack(req.width)`: a request has
width 0 before its first task). `probe` builds candidates the engine can
produce under this policy — two image sizes with and without CFG, every
declared class and an undeclared one, each progress point (fresh; in denoise
and before decode after a task at each allowed width; with `chunk = all` only
fresh) — in rounds with no and with every rank free, and asks each rule what
its hook would ask, in the hook's order (the first matching `width`, `hold`
and `grow` rule; every `admit` until one refuses; every `order by` key). The
first failure of each declaration is an E308 diagnostic at its location (at
the `let` when the failing term is a let's). It finds what these rounds reach:
a rule that fails only on values no synthetic round produces still fails at
run time (the engine then reports it with the rule's location).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from gfdit.dsl import ast
from gfdit.dsl.compile import ExprCompiler
from gfdit.dsl.declarations import Declarations, expand_stages
from gfdit.dsl.diagnostics import Diagnostic, Report, compile_error
from gfdit.engine.costmodel import CostModel
from gfdit.engine.policy import class_spec
from gfdit.engine.request import Request
from gfdit.engine.task import Task
from gfdit.engine.tracked import Clock, Tracked
from gfdit.engine.view import Round

if TYPE_CHECKING:
    from gfdit.dsl.policy import CompiledPolicy

SIZES = ((512, 512), (1024, 1024))
STEPS = 20
NOW = 100.0  # seconds: every synthetic request arrived at 0
T_SINGLE = 30.0  # given, so a cost model without width 1 can still be probed
UNDECLARED_CLASS = "~unclassified"


@dataclass(frozen=True)
class _Rule:
    """One declaration to probe: its condition and value closures and frame sizes."""

    decl: ast.Node
    cond: object
    value: object
    frame: int


@dataclass(frozen=True)
class _Failure:
    decl: ast.Node
    case: str
    error: Exception
    width: int  # the candidate's req.width


def probe(policy: "CompiledPolicy", cost_model: CostModel, gpus: int) -> list[Diagnostic]:
    """E308 diagnostics for the rules of compiled `policy` that fail on `cost_model` with `gpus` ranks."""
    decls: Declarations = policy.declarations
    compiler = ExprCompiler(decls.lets)
    rules = {kind: [_compile(compiler, d, cond, value) for d in items]
             for kind, (items, cond, value) in _kinds(decls).items()}
    failures: dict[int, _Failure] = {}
    for view, req, case, arriving in _cases(policy, cost_model, gpus):
        for failure in _ask(rules, view, req, case, arriving):
            where = _blame(failure, compiler, decls, view, req)
            failures.setdefault(id(where.decl), where)
    report = Report(policy.path, policy.source)
    for failure in failures.values():
        _report(failure, report, cost_model, decls)
    return report.sorted()


def check_runs(policy, cost_model: CostModel, gpus: int) -> None:
    """Raise `PolicyError` with every E308 found by `probe` (a check before `Engine.set_policy`)."""
    diagnostics = probe(policy, cost_model, gpus)
    if diagnostics:
        raise compile_error(diagnostics)


def _kinds(d: Declarations) -> dict[str, tuple[list, object, object]]:
    """Rule kind -> (declarations, condition of one, value of one)."""
    return {
        "admit": (d.admits, lambda r: r.cond, lambda r: None),
        "hold": (d.holds, lambda r: r.cond, lambda r: None),
        "order": (d.orders[0].keys if d.orders else [], lambda k: None, lambda k: k.expr),
        "width": (d.width_rules, lambda r: r.cond, lambda r: r.expr),
        "grow": (d.grows, lambda r: r.cond, lambda r: r.bound),
        "chunk": (d.chunk_rules, lambda r: r.cond, lambda r: r.expr),
    }


def _compile(compiler: ExprCompiler, decl: ast.Node, cond_of, value_of) -> _Rule:
    cond, value, frame = None, None, 0
    if cond_of(decl) is not None:
        compiled, frame = compiler.compile_sized(cond_of(decl))
        cond = compiled.fn
    if value_of(decl) is not None:
        compiled, size = compiler.compile_sized(value_of(decl))
        value, frame = compiled.fn, max(frame, size)
    return _Rule(decl, cond, value, frame)


def _ask(rules: dict[str, list[_Rule]], view, req, case: str, arriving: bool) -> Iterator[_Failure]:
    """Evaluate what the hooks would, for one candidate, in the round's order; yield each failure."""
    if arriving:  # admit: rules in order until one refuses
        for rule in rules["admit"]:
            ok, answer = _eval(rule, rule.cond, view, req)
            if not ok:
                yield _Failure(rule.decl, case, answer, req.width)
            if not ok or not answer:
                return
        return
    held = yield from _first(rules["hold"], view, req, case)
    if held or view.free == 0:  # a held candidate, or a full cluster, asks nothing more
        return
    for rule in rules["order"]:
        ok, answer = _eval(rule, rule.value, view, req)
        if not ok:
            yield _Failure(rule.decl, case, answer, req.width)
    yield from _first(rules["width"], view, req, case)
    yield from _first(rules["grow"], view, req, case)
    if req.stage == "denoise":  # a chunk rule is asked as a denoise task is cut
        yield from _first(rules["chunk"], view, req, case)


def _first(rules: list[_Rule], view, req, case: str) -> Iterator[_Failure]:
    """The first rule for the candidate's stage whose condition holds decides (its value is asked);
    returns whether one decided without failing (a failing one is reported and the later hooks are
    still asked: what they would do once it is fixed is worth knowing now)."""
    for rule in rules:
        if hasattr(rule.decl, "stages") and req.stage not in _stages(rule.decl):
            continue
        ok, matched = _eval(rule, rule.cond, view, req) if rule.cond is not None else (True, True)
        if ok and not matched:
            continue
        if ok and rule.value is not None:
            ok, matched = _eval(rule, rule.value, view, req)
        if not ok:
            yield _Failure(rule.decl, case, matched, req.width)
        return ok
    return False


def _eval(rule: _Rule, fn, view, req) -> tuple[bool, object]:
    try:
        return True, fn(view, req, [None] * rule.frame)
    except Exception as error:  # noqa: BLE001 -- probing untrusted rules: every failure is a finding
        return False, error


def _stages(decl: ast.Node) -> list[str]:
    return expand_stages(decl.stages, Report("", ""))


def _blame(failure: _Failure, compiler: ExprCompiler, decls: Declarations, view, req) -> _Failure:
    """The failing declaration: a let the rule reads, if that let fails alone on this candidate."""
    for name in _lets_read(failure.decl, decls):
        try:
            compiler.let(name).fn(view, req, [])
        except Exception as error:  # noqa: BLE001 -- as in _eval
            return _Failure(decls.lets[name], failure.case, error, failure.width)
    return failure


def _lets_read(node: ast.Node, decls: Declarations) -> list[str]:
    """Lets `node` reads, directly or through other lets, innermost first."""
    found: list[str] = []

    def visit(item: object) -> None:
        if isinstance(item, ast.Name) and item.ref is not None and item.ref.kind == "let":
            if item.id not in found:
                visit(decls.lets[item.id].expr)
                found.append(item.id)
        elif isinstance(item, ast.Node):
            for child in vars(item).values():
                visit(child)
        elif isinstance(item, list):
            for child in item:
                visit(child)

    visit(node)
    return found


def _report(failure: _Failure, report: Report, cost_model: CostModel, decls: Declarations) -> None:
    decl, error = failure.decl, failure.error
    kind = "let" if isinstance(decl, ast.LetDecl) else _KIND_NAMES.get(type(decl), "rule")
    error = getattr(error, "cause", None) or error  # a RuleError names the rule: we have it
    cause = f"{type(error).__name__}: {error}"
    text = report.source.splitlines()[decl.span.line - 1] if decl.span.line else ""
    hint = (f"the cost model prices widths {{{', '.join(map(str, cost_model.widths))}}} "
            f"(the policy's: {{{', '.join(map(str, decls.widths))}}}); cost calls must stay on them")
    if failure.width == 0 and "req.width" in text and "width 0" in str(error):
        hint = "req.width is 0 before a request's first task: write max(req.width, 1)"
    report.add("E308", decl.span, f"this {kind} fails when it runs, for {failure.case}: {cause}", hint)


_KIND_NAMES = {ast.AdmitDecl: "admit rule", ast.HoldDecl: "hold rule", ast.OrderKey: "order key",
               ast.WidthDecl: "width rule", ast.GrowDecl: "grow rule", ast.ChunkDecl: "chunk rule"}


def _cases(policy, cost_model: CostModel, gpus: int) -> Iterator[tuple[Round, Tracked, str, bool]]:
    """(view, candidate, what it is, whether it is arriving) for every synthetic case."""
    clock = Clock(NOW)
    classes = [*policy.classes, UNDECLARED_CLASS]
    points = _progress_points(policy)
    population = [_tracked(f"w{i}", cost_model, clock, policy, classes[0], SIZES[0], False, point)
                  for i, point in enumerate(points)]
    population += [_running(f"r{k}", cost_model, clock, policy, classes[0], k) for k in policy.widths]
    for size in SIZES:
        for cfg in (False, True):
            for cls in classes:
                for point in points:
                    req = _tracked("probe", cost_model, clock, policy, cls, size, cfg, point)
                    case = _describe(req, cls, size, cfg)
                    for free in sorted({0, gpus}):
                        others = [t for t in population if t.id != req.id]
                        arriving = point[0] == 0 and free == gpus
                        if arriving:
                            yield _round(clock, gpus, free, others), req, case, True
                        yield _round(clock, gpus, free, others + [req]), req, case, False


def _progress_points(policy) -> list[tuple[int, int, bool]]:
    """(width of the last task, steps done, encoded): the states a candidate can be in."""
    points = [(0, 0, False)]
    if policy.chunk is not None:
        for k in policy.widths:
            points += [(k, STEPS // 2, True), (k, STEPS, True)]
    return points


def _tracked(rid: str, cm: CostModel, clock: Clock, policy, cls: str, size: tuple[int, int],
             cfg: bool, point: tuple[int, int, bool]) -> Tracked:
    request = Request(rid, 0.0, size[0], size[1], STEPS, request_class=cls, cfg=cfg, t_single=T_SINGLE)
    spec = class_spec(policy.classes, cls)
    tracked = Tracked(request, spec, cm, clock)
    tracked.last_width, tracked.steps_done, tracked.encoded = point
    tracked.holders = tuple(range(point[0]))
    return tracked


def _running(rid: str, cm: CostModel, clock: Clock, policy, cls: str, width: int) -> Tracked:
    tracked = _tracked(rid, cm, clock, policy, cls, SIZES[0], False, (width, 1, True))
    tracked.task = Task(f"{rid}/1", rid, False, 1, 2, False, group=tuple(range(width)))
    return tracked


def _round(clock: Clock, gpus: int, free: int, active: list[Tracked]) -> Round:
    return Round(clock.now, gpus, free, gpus - free, lambda: active)


def _describe(req: Tracked, cls: str, size: tuple[int, int], cfg: bool) -> str:
    who = "a request" if cls == UNDECLARED_CLASS else f"a class {cls} request"
    where = (f"in {req.stage} after a task at width {req.last_width}" if req.last_width
             else "before its first task (req.width = 0)")
    deadline = "" if math.isinf(req.deadline) else f", deadline {req.deadline - req.arrival:g}s"
    return f"{who} {where} ({size[0]}x{size[1]}{', cfg' if cfg else ''}{deadline})"

