"""The `.gfp` syntax tree: plain dataclasses, every node with its source span.

Expression nodes carry two annotations filled in by the checker: `ty` (the
type, see `types.py`) and, on names and calls, `ref` (what the name denotes).
The compiler and the reference interpreter read only checked trees.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True, slots=True)
class Span:
    """1-based line and column of the first character; end is exclusive."""

    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(eq=False)
class Node:
    span: Span


@dataclass(eq=False)
class Ident(Node):
    """A bare word in a declaration: a stage, a placement, a pool, an on-short mode."""

    name: str


# ---- expressions -------------------------------------------------------


@dataclass(eq=False)
class Expr(Node):
    ty: object = field(default=None, init=False, repr=False)


@dataclass(eq=False)
class Num(Expr):
    value: float


@dataclass(eq=False)
class Dur(Expr):
    """A duration literal, held in seconds."""

    value: float
    text: str


@dataclass(eq=False)
class Bool(Expr):
    value: bool


@dataclass(eq=False)
class Str(Expr):
    value: str


@dataclass(eq=False)
class SetLit(Expr):
    values: tuple[float, ...]


@dataclass(eq=False)
class Name(Expr):
    id: str
    ref: object = field(default=None, init=False, repr=False)


@dataclass(eq=False)
class Field(Expr):
    """`req.NAME` or `r.NAME` (the element inside an aggregate)."""

    base: str
    name: str
    base_span: Span
    ref: object = field(default=None, init=False, repr=False)


@dataclass(eq=False)
class Unary(Expr):
    op: str  # "-" or "not"
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str  # + - * / and or, or a comparison
    left: Expr
    right: Expr


@dataclass(eq=False)
class If(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(eq=False)
class Choice(Expr):
    """`min|max k in SET [where C]`, `argmin|argmax k in SET [where C] by E`, `[else F]`."""

    kind: str
    var: str
    var_span: Span
    domain: Expr
    where: Expr | None
    by: Expr | None
    orelse: Expr | None
    slot: int = field(default=-1, init=False, repr=False)  # frame position of `var`


@dataclass(eq=False)
class Arg(Node):
    value: Expr
    where: Expr | None


@dataclass(eq=False)
class Call(Expr):
    func: str
    func_span: Span
    args: list[Arg]
    ref: object = field(default=None, init=False, repr=False)
    on: str | None = field(default=None, init=False, repr=False)  # `r.est(1)`: "r"; `req.est(1)`: "req"
    on_span: Span | None = field(default=None, init=False, repr=False)


# ---- declarations ------------------------------------------------------


@dataclass(eq=False)
class PolicyDecl(Node):
    name: Ident


@dataclass(eq=False)
class ParamDecl(Node):
    name: Ident
    value: object  # float | tuple (set) | "all" | bool
    kind: str  # "number" | "duration" | "set" | "all" | "bool"


@dataclass(eq=False)
class ClassItem(Node):
    key: Ident
    value: object  # None for a flag
    kind: str  # "flag" | "factor" | "duration" | "number" | "name" (a pool: `pool = big`)


@dataclass(eq=False)
class ClassDecl(Node):
    name: Ident
    items: list[ClassItem]


@dataclass(eq=False)
class LetDecl(Node):
    name: Ident
    expr: Expr


@dataclass(eq=False)
class RankRange(Node):
    """`{A .. B}`: ranks A to B inclusive, each end a whole-number expression of numbers, number
    params and `gpus` (gfdit/dsl/pool_sizes.py)."""

    low: Expr
    high: Expr


@dataclass(eq=False)
class RestRanks(Node):
    """`rest`: the cluster's ranks that no other stage pool holds."""


@dataclass(eq=False)
class PoolDecl(Node):
    name: Ident
    ranks: SetLit | RankRange | RestRanks | None  # None: `param` names a set param
    param: Ident | None


@dataclass(eq=False)
class PlaceDecl(Node):
    items: list[Ident]
    pool: Ident | None


@dataclass(eq=False)
class AdmitDecl(Node):
    cond: Expr
    reason: str


@dataclass(eq=False)
class HoldDecl(Node):
    stages: list[Ident]
    cond: Expr


@dataclass(eq=False)
class OrderKey(Node):
    expr: Expr
    desc: bool


@dataclass(eq=False)
class OrderDecl(Node):
    keys: list[OrderKey]


@dataclass(eq=False)
class WidthDecl(Node):
    stages: list[Ident]
    cond: Expr | None
    expr: Expr


@dataclass(eq=False)
class GrowDecl(Node):
    stages: list[Ident]
    cond: Expr | None
    bound: Expr | None


@dataclass(eq=False)
class ChunkDecl(Node):
    """`chunk [when COND] = EXPR`: denoise steps of a request's next task (only denoise is chunked)."""

    cond: Expr | None
    expr: Expr


@dataclass(eq=False)
class ShortDecl(Node):
    mode: Ident


@dataclass(eq=False)
class Program(Node):
    filename: str
    source: str
    decls: list[Node]
    failed_names: set[str] = field(default_factory=set)  # declared in pieces that did not parse


def dump(node: object) -> str:
    """A stable, compact, one-node-per-line text form of a tree (for golden files)."""
    lines: list[str] = []
    _dump(node, 0, "", lines)
    return "\n".join(lines) + "\n"


def _dump(node: object, depth: int, label: str, out: list[str]) -> None:
    pad = "  " * depth + label
    if isinstance(node, list):
        out.append(f"{pad}[")
        for item in node:
            _dump(item, depth + 1, "", out)
        out.append("  " * depth + "]")
        return
    if not isinstance(node, Node):
        out.append(f"{pad}{node!r}")
        return
    if isinstance(node, Program):
        for decl in node.decls:
            _dump(decl, depth, "", out)
        return
    s = node.span
    scalars, children = [], []
    for f in fields(node):
        if f.name in ("span", "ty", "ref") or not f.init or f.name.endswith("_span"):
            continue
        value = getattr(node, f.name)
        if isinstance(value, (Node, list)):
            children.append((f.name, value))
        else:
            scalars.append(f"{f.name}={value!r}")
    head = f"{pad}{type(node).__name__} @{s.line}:{s.col}"
    out.append(" ".join([head, *scalars]))
    for name, child in children:
        _dump(child, depth + 1, f"{name}: ", out)
