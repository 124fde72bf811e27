"""Pass 1, declarations: header, params (with load-time overrides), classes, pools, config.

Collects every declaration into a `Declarations` record and checks what needs
no expression analysis: one `policy` header first, no duplicate names, reserved
params well-formed, class attributes, pools and placements known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import lark

from gfdit.dsl import ast
from gfdit.dsl.diagnostics import Report, did_you_mean
from gfdit.dsl.names import CLUSTER_NAMES, RESERVED_PARAMS, STAGE_NAMES
from gfdit.dsl.parse import KEYWORDS, parse_param_value
from gfdit.dsl.pool_sizes import SizedPool, check_sized_pools, sized_pool
from gfdit.engine.policy import ON_SHORT_MODES, PLACEMENTS, ClassSpec

DEFAULT_CHUNK = 5
DEFAULT_WIDTHS = (1, 2, 4)
DEFAULT_PLACEMENT = PLACEMENTS  # every preference, in this order
CLASS_KEYS = ("slo", "priority", "preemptible", "share", "chunk", "pool")
BUILTIN_NAMES = (*CLUSTER_NAMES, *STAGE_NAMES, "req")


@dataclass
class Declarations:
    """Everything a policy declares, sorted by kind, with its configuration resolved."""

    name: str = "unnamed"
    params: dict[str, ast.ParamDecl] = field(default_factory=dict)
    classes: dict[str, ClassSpec] = field(default_factory=dict)
    class_decls: dict[str, ast.ClassDecl] = field(default_factory=dict)
    lets: dict[str, ast.LetDecl] = field(default_factory=dict)
    pools: dict[str, frozenset[int]] = field(default_factory=dict)  # a sized pool: empty until fitted
    sized_pools: dict[str, SizedPool] = field(default_factory=dict)  # `rest`, `{0 .. gpus - 1}`
    stage_pools: dict[str, str] = field(default_factory=dict)
    placement: tuple[str, ...] = DEFAULT_PLACEMENT
    on_short: str = "skip"
    chunk: int | None = DEFAULT_CHUNK
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    tick: float | None = None
    budgets: dict[str, int] = field(default_factory=dict)  # grow_budget, migration_budget: per round
    plan: bool = False  # widths of the round chosen together (gfdit/engine/plan.py)
    admits: list[ast.AdmitDecl] = field(default_factory=list)
    holds: list[ast.HoldDecl] = field(default_factory=list)
    orders: list[ast.OrderDecl] = field(default_factory=list)
    width_rules: list[ast.WidthDecl] = field(default_factory=list)
    grows: list[ast.GrowDecl] = field(default_factory=list)
    chunk_rules: list[ast.ChunkDecl] = field(default_factory=list)  # denoise steps per task, per request
    failed_names: set[str] = field(default_factory=set)
    cyclic_lets: set[str] = field(default_factory=set)
    pool_params: set[str] = field(default_factory=set)  # params used as pool ranks


def collect(program: ast.Program, report: Report, overrides: dict[str, str]) -> Declarations:
    """Sort declarations into a `Declarations` record, reporting structural problems."""
    decls = Declarations()
    _check_header(program, decls, report)
    names: dict[str, ast.Ident] = {}
    places: list[ast.PlaceDecl] = []
    seen_config: dict[str, ast.Node] = {}
    for decl in program.decls:
        if isinstance(decl, (ast.ParamDecl, ast.LetDecl, ast.ClassDecl, ast.PoolDecl)):
            if not _claim(decl, names, report, decls.failed_names):
                continue
        _SORT[type(decl)](decl, decls, report, places, seen_config)
    for rule in [*decls.holds, *decls.width_rules, *decls.grows]:
        expand_stages(rule.stages, report)
    header = next((d.span for d in program.decls if isinstance(d, ast.PolicyDecl)), None)
    _default_reserved(decls, header or ast.Span(1, 1, 1, 2))
    _apply_overrides(decls, overrides, report, header or ast.Span(1, 1, 1, 2))
    _reserved_params(decls, report)
    _build_classes(decls, report)
    _build_places(places, decls, report, program.failed_names)
    _check_class_pools(decls, report, program.failed_names)
    return decls


def _check_class_pools(decls: Declarations, report: Report, unparsed: set[str]) -> None:
    """`class L { pool = big }` names a declared pool (E109)."""
    for name, decl in decls.class_decls.items():
        pool = decls.classes[name].pool if name in decls.classes else None
        if pool is not None and pool not in decls.pools and pool not in unparsed:
            item = next(i for i in decl.items if i.key.name == "pool")
            report.add("E109", item.span, f"class {name}: unknown pool '{pool}'",
                       did_you_mean(pool, decls.pools) or "declare it: pool NAME = {0}")


def _check_header(program: ast.Program, decls: Declarations, report: Report) -> None:
    headers = [d for d in program.decls if isinstance(d, ast.PolicyDecl)]
    if not headers:
        report.add("E101", ast.Span(1, 1, 1, 2), "the file does not start with `policy NAME`",
                   "add a first line such as `policy my_policy`")
        return
    decls.name = headers[0].name.name
    if program.decls[0] is not headers[0]:
        report.add("E101", headers[0].span, "`policy NAME` must be the first declaration")
    for extra in headers[1:]:
        report.add("E101", extra.span, "a file declares one policy; this is a second `policy`")


def _claim(decl: ast.Node, names: dict[str, ast.Ident], report: Report, failed: set[str]) -> bool:
    ident = decl.name
    if ident.name in KEYWORDS:
        failed.add(ident.name)  # its uses are not reported again as unknown
        report.add("E102", ident.span, f"'{ident.name}' is a keyword and cannot name a "
                   f"{_KIND[type(decl)]}", "pick another name")
        return False
    if ident.name in RESERVED_PARAMS and not isinstance(decl, ast.ParamDecl):
        report.add("E102", ident.span, f"'{ident.name}' is a reserved param; a "
                   f"{_KIND[type(decl)]} of that name would hide it in expressions while the "
                   "engine keeps the param's value",
                   f"set it with `param {ident.name} = ...`, or pick another name")
        return False
    if ident.name in BUILTIN_NAMES:
        report.add("E102", ident.span, f"'{ident.name}' is a built-in name and cannot be redefined",
                   "pick another name")
        return False
    if ident.name in names:
        first = names[ident.name].span
        report.add("E102", ident.span, f"'{ident.name}' is already defined on line {first.line}")
        return False
    names[ident.name] = ident
    return True


_KIND = {ast.ParamDecl: "param", ast.LetDecl: "let", ast.ClassDecl: "class", ast.PoolDecl: "pool"}


def _sort_param(d, decls, report, places, seen):
    decls.params[d.name.name] = d


def _sort_let(d, decls, report, places, seen):
    decls.lets[d.name.name] = d


def _sort_class(d, decls, report, places, seen):
    decls.class_decls[d.name.name] = d


def _sort_pool(d, decls, report, places, seen):
    decls.pools[d.name.name] = frozenset()
    decls.failed_names.add(d.name.name)  # until its ranks check out
    places.append(d)  # handled with the places, after params are final


def _sort_place(d, decls, report, places, seen):
    if d.pool is None:
        _once("place", d, seen, report)
    places.append(d)


def _sort_short(d, decls, report, places, seen):
    _once("on short", d, seen, report)
    if d.mode.name not in ON_SHORT_MODES:
        report.add("E110", d.mode.span, f"unknown on-short mode '{d.mode.name}'",
                   did_you_mean(d.mode.name, ON_SHORT_MODES) or "one of: " + ", ".join(ON_SHORT_MODES))
        return
    decls.on_short = d.mode.name


def _once(what: str, d: ast.Node, seen: dict[str, ast.Node], report: Report) -> None:
    if what in seen:
        report.add("E306", d.span, f"`{what}` is already set on line {seen[what].span.line}",
                   "keep one")
    seen[what] = d


_SORT = {
    ast.PolicyDecl: lambda *a: None,
    ast.ParamDecl: _sort_param,
    ast.LetDecl: _sort_let,
    ast.ClassDecl: _sort_class,
    ast.PoolDecl: _sort_pool,
    ast.PlaceDecl: _sort_place,
    ast.ShortDecl: _sort_short,
    ast.AdmitDecl: lambda d, decls, *a: decls.admits.append(d),
    ast.HoldDecl: lambda d, decls, *a: decls.holds.append(d),
    ast.OrderDecl: lambda d, decls, *a: decls.orders.append(d),
    ast.WidthDecl: lambda d, decls, *a: decls.width_rules.append(d),
    ast.GrowDecl: lambda d, decls, *a: decls.grows.append(d),
    ast.ChunkDecl: lambda d, decls, *a: decls.chunk_rules.append(d),
}


def _default_reserved(decls: Declarations, where: ast.Span) -> None:
    """`chunk` and `widths` always exist (as names and for `--param`), with their defaults."""
    defaults = {"chunk": (DEFAULT_CHUNK, "number"), "widths": (DEFAULT_WIDTHS, "set")}
    for name, (value, kind) in defaults.items():
        if name not in decls.params:
            decls.params[name] = ast.ParamDecl(where, ast.Ident(where, name), value, kind)


def param_text(value: object) -> str:
    """A `--param` value as `.gfp` text: Python values (None, bools, tuples) are accepted too."""
    if value is None:
        return "all"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list, set, frozenset)):
        return "{" + ", ".join(str(v) for v in sorted(value)) + "}"
    return str(value).strip()


def _apply_overrides(decls: Declarations, overrides: dict[str, object], report: Report,
                     header: ast.Span) -> None:
    for key, value in overrides.items():
        decl = decls.params.get(key)
        text = param_text(value)
        if decl is not None and decl.kind == "set" and not text.startswith("{"):
            text = "{" + text + "}"  # --param widths=1,2,4 or widths=4
        if decl is None:
            report.add("E113", header, f"--param {key}: the policy has no param '{key}'",
                       did_you_mean(key, decls.params) or
                       "params: " + (", ".join(sorted(decls.params)) or "none"))
            continue
        try:
            parsed = parse_param_value(str(text))
        except (lark.exceptions.LarkError, RecursionError):
            report.add("E114", decl.span, f"--param {key}={text}: not a param value",
                       "a number, a duration (2s), a set ({1, 2}), true/false or all")
            continue
        compatible = {parsed.kind, decl.kind} <= {"number", "duration"} and parsed.kind == "number"
        if parsed.kind != decl.kind and not compatible and key != "chunk":
            report.add("E114", decl.span,
                       f"--param {key}={text} is a {parsed.kind}; the policy declares a {decl.kind}")
            continue
        decl.value, decl.kind = parsed.value, (decl.kind if compatible else parsed.kind)


def _reserved_params(decls: Declarations, report: Report) -> None:
    chunk, widths, tick = (decls.params.get(k) for k in ("chunk", "widths", "tick"))
    if chunk is not None:
        if chunk.kind == "all":
            decls.chunk = None
        elif chunk.kind == "number" and float(chunk.value).is_integer() and chunk.value >= 1:
            decls.chunk = int(chunk.value)
        else:
            report.add("E112", chunk.span, "`chunk` must be a positive whole number of steps or `all`")
    if widths is not None:
        values = widths.value if widths.kind == "set" else ()
        if not values or any(not float(v).is_integer() or v < 1 for v in values):
            report.add("E112", widths.span, "`widths` must be a set of positive whole numbers",
                       "for example {1, 2, 4}")
        else:
            decls.widths = tuple(sorted({int(v) for v in values}))
    if tick is not None:
        if tick.kind in ("duration", "number") and tick.value > 0 and math.isfinite(tick.value):
            decls.tick = float(tick.value)
        else:
            report.add("E112", tick.span, "`tick` must be a positive duration", "for example 500ms")
    # at least 1 move per round: with 0 a request that must move (disaggregate after encode, lost holders) never could
    for name, least in (("grow_budget", 0), ("migration_budget", 1)):
        budget = decls.params.get(name)
        if budget is None:
            continue
        if budget.kind == "number" and float(budget.value).is_integer() and budget.value >= least:
            decls.budgets[name] = int(budget.value)
        else:
            report.add("E112", budget.span, f"`{name}` must be a whole number (per round) of at least {least}",
                       f"for example param {name} = 1")
    plan = decls.params.get("plan")
    if plan is not None:
        if plan.kind == "bool":
            decls.plan = bool(plan.value)
        else:
            report.add("E112", plan.span, "`plan` must be true or false", "param plan = true")
    for decl in decls.params.values():
        if decl.kind == "all" and decl.name.name != "chunk":
            report.add("E112", decl.span, "`all` is only a value for `chunk`")


def _build_classes(decls: Declarations, report: Report) -> None:
    for name, decl in decls.class_decls.items():
        spec: dict[str, object] = {"name": name}
        for item in decl.items:
            key = item.key.name
            if key in spec:
                report.add("E111", item.span, f"class {name}: '{key}' is given twice")
            elif key not in CLASS_KEYS:
                report.add("E111", item.key.span, f"class {name}: unknown attribute '{key}'",
                           did_you_mean(key, CLASS_KEYS) or "attributes: " + ", ".join(CLASS_KEYS))
            elif not _class_item(item, spec, report, name):
                continue
        decls.classes[name] = ClassSpec(
            name=name, slo_factor=spec.get("slo_factor"), slo_seconds=spec.get("slo_seconds"),
            priority=int(spec.get("priority", 0)), preemptible=bool(spec.get("preemptible", False)),
            share=spec.get("share"), chunk=_class_chunk(decl, spec, decls, report), pool=spec.get("pool"))


def _class_chunk(decl: ast.ClassDecl, spec: dict, decls: Declarations, report: Report) -> int | None:
    """A class's own `chunk`; under `param chunk = all` it would mean nothing: E111."""
    if "chunk" not in spec:
        return None
    if decls.chunk is None:
        item = next(i for i in decl.items if i.key.name == "chunk")
        report.add("E111", item.span, f"class {decl.name.name}: a chunk of its own needs `param chunk` "
                   "to be a number", "with chunk = all every task is the whole trajectory")
        return None
    return int(spec["chunk"])


def _class_item(item: ast.ClassItem, spec: dict, report: Report, name: str) -> bool:
    key, kind, value = item.key.name, item.kind, item.value
    wants = {"slo": ("factor", "duration"), "priority": ("number",), "preemptible": ("flag",),
             "share": ("number",), "chunk": ("number",), "pool": ("name",)}
    if kind not in wants[key] or (key in ("priority", "chunk") and not float(value).is_integer()) or (
            key == "share" and not 0 < value <= 1) or (key == "chunk" and value < 1):
        forms = {"slo": "`slo = 1.5x` (times t_single) or `slo = 30s`",
                 "priority": "a whole number, `priority = 100`",
                 "preemptible": "a bare flag: `preemptible`",
                 "share": "the fraction of the ranks it may hold at once, above 0 and at most 1: `share = 0.5`",
                 "chunk": "denoise steps per task for this class, a positive whole number: `chunk = 10`",
                 "pool": "a declared pool its requests are pinned to: `pool = big` (pool big = {4, 5})"}
        report.add("E111", item.span, f"class {name}: bad value for '{key}'", forms[key])
        return False
    if key == "slo" and not value > 0:
        report.add("E111", item.span, f"class {name}: slo must be positive")
        return False
    spec[key] = value
    if key == "slo":
        spec["slo_factor" if kind == "factor" else "slo_seconds"] = float(value)
    if key == "preemptible":
        spec[key] = True
    return True


def _pool_ranks(pool: ast.PoolDecl, decls: Declarations, report: Report) -> frozenset[int] | None:
    if pool.param is not None:
        param = decls.params.get(pool.param.name)
        decls.pool_params.add(pool.param.name)
        if param is None or param.kind != "set":
            report.add("E305", pool.param.span, f"pool {pool.name.name}: '{pool.param.name}' is not a set param",
                       did_you_mean(pool.param.name, decls.params))
            return None
        values, span = param.value, pool.param.span
    else:
        values, span = pool.ranks.values, pool.ranks.span
    if not values or any(not float(v).is_integer() or v < 0 for v in values):
        report.add("E305", span, f"pool {pool.name.name}: ranks must be whole numbers >= 0")
        return None
    return frozenset(int(v) for v in values)


def _build_places(items: list[ast.Node], decls: Declarations, report: Report,
                  unparsed: set[str]) -> None:
    """Pools, then placements; a pool whose declaration did not parse (`unparsed`) is not unknown."""
    for pool in (d for d in items if isinstance(d, ast.PoolDecl)):
        if isinstance(pool.ranks, (ast.RankRange, ast.RestRanks)):
            sized = sized_pool(pool, decls.params, decls.pool_params, report)
            if sized is not None:
                decls.sized_pools[pool.name.name] = sized
                decls.failed_names.discard(pool.name.name)
            continue
        ranks = _pool_ranks(pool, decls, report)
        if ranks is not None:
            decls.pools[pool.name.name] = ranks
            decls.failed_names.discard(pool.name.name)
    placed: dict[str, ast.PlaceDecl] = {}
    for place in (d for d in items if isinstance(d, ast.PlaceDecl)):
        if place.pool is None:
            _placement(place, decls, report)
            continue
        if place.pool.name not in decls.pools and place.pool.name not in unparsed:
            report.add("E109", place.pool.span, f"unknown pool '{place.pool.name}'",
                       did_you_mean(place.pool.name, decls.pools) or "declare it: pool NAME = {0}")
        for stage in expand_stages(place.items, report):
            if stage in placed:
                report.add("E307", place.span,
                           f"stage {stage} is already placed on line {placed[stage].span.line}")
            placed[stage] = place
            decls.stage_pools[stage] = place.pool.name
    check_sized_pools(decls.pools, decls.sized_pools, decls.stage_pools, report)


def _placement(place: ast.PlaceDecl, decls: Declarations, report: Report) -> None:
    chosen = []
    for item in place.items:
        if item.name not in PLACEMENTS:
            hint = did_you_mean(item.name, PLACEMENTS) or "one of: " + ", ".join(PLACEMENTS)
            if item.name in STAGE_NAMES or item.name == "*":
                hint = "to put stages on a pool, write `place STAGES in POOL`"
            report.add("E110", item.span, f"unknown placement '{item.name}'", hint)
        elif item.name not in chosen:
            chosen.append(item.name)
    if chosen:
        decls.placement = tuple(chosen)


def expand_stages(items: list[ast.Ident], report: Report) -> list[str]:
    """Stage names of a STAGES list (`*` is every stage), reporting unknown ones (E106)."""
    stages: list[str] = []
    for item in items:
        if item.name == "*":
            stages.extend(STAGE_NAMES)
        elif item.name in STAGE_NAMES:
            stages.append(item.name)
        else:
            report.add("E106", item.span, f"unknown stage '{item.name}'",
                       did_you_mean(item.name, STAGE_NAMES) or "stages: encode, denoise, decode, *")
    return list(dict.fromkeys(stages))
