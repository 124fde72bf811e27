"""Text to syntax tree: split into declarations, parse each with lark (LALR), build the AST.

Each declaration starts with its own keyword at the start of a line, so the
text is cut at those lines and every piece is parsed on its own: one syntax
error does not hide the next. A piece that fails is cut again at unindented
words that cannot continue an expression (a misspelled keyword, say). Parse errors become friendly diagnostics
(`E001`-`E004`); the declarations that did parse still go through the checks.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import lark
from lark import Token, Transformer, v_args

from gfdit.dsl import ast
from gfdit.dsl.diagnostics import Report, did_you_mean

DECL_KEYWORDS = ("policy", "param", "class", "let", "pool", "place", "admit", "hold",
                 "order", "width", "grow", "chunk", "on")
# `chunk` is also the reserved param, so a line starting with it continues an expression
# (`hold denoise when req.steps_left <` / `    chunk`) unless `when` or `=` (not `==`) follows
_DECL_START = re.compile(r"^\s*((" + "|".join(k for k in DECL_KEYWORDS if k != "chunk")
                         + r")(?![A-Za-z0-9_])|chunk\s*(when(?![A-Za-z0-9_])|=(?!=)))")
# an unindented line starting with a word that cannot continue an expression starts a new piece
_CONTINUATION = ("else", "where", "by", "and", "or", "then", "up", "to", "not", "if", "in",
                 "asc", "desc", "min", "max", "argmin", "argmax")
_NESTED_IN_THEN = re.compile(r"(?<![A-Za-z0-9_])then\s+(if|min|max|argmin|argmax)(\s+[A-Za-z_][A-Za-z0-9_]*)?\s*$")
# words of the grammar: no param, let, class or pool may be named by one
REST = "rest"  # `pool main = rest`: the ranks no other stage pool holds
# (`chunk` starts a rule and is also the reserved param: `param chunk = 5`, `chunk` in expressions)
KEYWORDS = frozenset((*DECL_KEYWORDS, *_CONTINUATION, "when", "short", "true", "false", "all", REST)) - {"chunk"}
_NEW_PIECE = re.compile(r"^(?!(" + "|".join(_CONTINUATION) + r")(?![A-Za-z0-9_]))[A-Za-z_]")
_NAMED_DECL = re.compile(r"^\s*(let|param|class|pool)\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)
MAX_SOURCE_CHARS = 200_000
MAX_DEPTH = 120  # syntax-tree levels; keeps every later (recursive) pass far from Python's limit
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}

TOKEN_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "DURATION": "a duration such as 2s",
    "FACTOR": "an SLO factor such as 1.5x", "STRING": 'a quoted reason such as "queue full"',
    "COMPARE": "a comparison", "CHOOSE": "min/max/argmin/argmax", "$END": "the end of the input",
    "MINUS": "'-'", "PLUS": "'+'", "STAR": "'*'", "SLASH": "'/'",
}


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, cache=False)


def parse_program(source: str, filename: str, report: Report) -> ast.Program:
    """Parse `source`; syntax errors go to `report`, the declarations that parsed are returned."""
    end = _end_span(source)
    program = ast.Program(ast.Span(1, 1, end.line, end.col), filename, source, [])
    if too_large(source):
        report.add("E004", ast.Span(1, 1, 1, 2),
                   f"policy text is {len(source)} characters; the limit is {MAX_SOURCE_CHARS}")
        return program
    for first_line, text in split_declarations(source):
        error = _parse_piece(first_line, text, program, report)
        if error is None:
            continue
        smaller = split_declarations(text, first_line, at_unindented_words=True)
        if len(smaller) == 1:  # an unindented line that is no declaration may be a typo: retry alone
            _report_syntax(error, report, _piece_end(first_line, text))
            program.failed_names.update(m.group(2) for m in _NAMED_DECL.finditer(text))
            continue
        for sub_line, sub_text in smaller:
            sub_error = _parse_piece(sub_line, sub_text, program, report)
            if sub_error is not None:
                _report_syntax(sub_error, report, _piece_end(sub_line, sub_text))
                program.failed_names.update(m.group(2) for m in _NAMED_DECL.finditer(sub_text))
    return program


def too_large(source: str) -> bool:
    """Over MAX_SOURCE_CHARS: the text is refused (E004) without being parsed."""
    return len(source) > MAX_SOURCE_CHARS


def _parse_piece(first_line: int, text: str, program: ast.Program,
                 report: Report) -> lark.exceptions.UnexpectedInput | None:
    """Parse one piece into `program`; a syntax error is returned (not reported), others reported."""
    padded = "\n" * (first_line - 1) + text
    try:
        decls = _Builder().transform(_parser().parse(padded)).children
    except lark.exceptions.UnexpectedInput as error:
        return error
    except (RecursionError, lark.exceptions.VisitError):
        decls = None
    if decls is None or _too_deep(decls):
        report.add("E004", ast.Span(first_line, 1, first_line, 2),
                   f"expression nested more than {MAX_DEPTH} levels deep",
                   "split it into `let` definitions")
        program.failed_names.update(m.group(2) for m in _NAMED_DECL.finditer(text))
        return None
    program.decls.extend(decls)
    return None


def _too_deep(decls: list) -> bool:
    """Whether any tree is deeper than MAX_DEPTH (checked without recursion)."""
    stack = [(d, 1) for d in decls]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = vars(node).values() if isinstance(node, ast.Node) else node
        for child in children:
            if isinstance(child, (ast.Node, list)):
                stack.append((child, depth + 1))
    return False


def split_declarations(source: str, first: int = 1,
                       at_unindented_words: bool = False) -> list[tuple[int, str]]:
    """(first line number, text) for each run of lines starting with a declaration keyword
    (and, with `at_unindented_words`, at each unindented word that cannot continue an expression)."""
    pieces: list[tuple[int, list[str]]] = []
    for number, line in enumerate(source.splitlines(), start=first):
        starts = _DECL_START.match(line) or (at_unindented_words and _NEW_PIECE.match(line))
        if not pieces or starts:
            pieces.append((number, [line]))
        else:
            pieces[-1][1].append(line)
    return [(first, "\n".join(lines)) for first, lines in pieces]


def parse_param_value(text: str) -> ast.ParamDecl:
    """Parse the value of a `--param k=v` override as a `param` right-hand side."""
    tree = _parser().parse(f"param override = {text}")
    return _Builder().transform(tree).children[0]


def _piece_end(first_line: int, text: str) -> ast.Span:
    """Just after the last character of a piece that is not blank or a comment."""
    lines = text.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        content = re.sub(r"#.*", "", lines[index]).rstrip()
        if content:
            line = first_line + index
            return ast.Span(line, len(content) + 1, line, len(content) + 2)
    return ast.Span(first_line, 1, first_line, 2)


def _report_syntax(error: lark.exceptions.UnexpectedInput, report: Report, end: ast.Span) -> None:
    line, col = max(1, error.line), max(1, error.column)
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        char = error.char if hasattr(error, "char") else "?"
        report.add("E002", ast.Span(line, col, line, col + 1), f"unexpected character {char!r}",
                   _char_hint(char))
        return
    if isinstance(error, lark.exceptions.UnexpectedEOF) or error.token.type == "$END":
        expected = _describe(getattr(error, "expected", None) or ())
        report.add("E003", end, f"the declaration ends too early; expected {expected}")
        return
    token: Token = error.token
    span = ast.Span(token.line, token.column, token.end_line or token.line,
                    token.end_column or token.column + 1)
    expected = _acceptable(error)
    message = f"unexpected {_token_word(token)}; expected {_describe(expected)}"
    lines = report.source.splitlines()
    source_line = lines[token.line - 1] if 0 < token.line <= len(lines) else ""
    report.add("E001", span, message, _token_hint(token, expected, source_line))


def _acceptable(error: lark.exceptions.UnexpectedToken) -> set[str]:
    """The tokens the parser would accept here (more precise than lark's `expected`, which is
    taken after LALR default reductions)."""
    try:
        return set(error.interactive_parser.accepts()) or set(error.expected)
    except (AttributeError, lark.exceptions.LarkError):
        return set(error.expected)


def _describe(expected: object) -> str:
    names = set(expected)
    decl_starts = {k.upper() for k in DECL_KEYWORDS}
    words = sorted({TOKEN_WORDS.get(name) or _literal(name) for name in names - decl_starts - {"$END"}})
    if names & decl_starts:
        words.append("the next declaration")
    if len(words) > 6:
        return ", ".join(words[:6]) + ", ..."
    if len(words) > 1:
        return ", ".join(words[:-1]) + " or " + words[-1]
    return words[0] if words else "something else"


def _literal(name: str) -> str:
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _token_word(token: Token) -> str:
    kinds = {"NAME": "name", "NUMBER": "number", "DURATION": "duration", "FACTOR": "factor",
             "STRING": "string", "CHOOSE": "keyword", "COMPARE": "comparison"}
    kind = kinds.get(token.type)
    return f"{kind} '{token.value}'" if kind else f"'{token.value}'"


def _token_hint(token: Token, expected: set[str], source_line: str) -> str | None:
    if _NESTED_IN_THEN.search(source_line[:token.column - 1]):
        return "a nested `if` or choice inside `then` needs parentheses: then (if C then A else B) else D"
    glued = token.column > 1 and source_line[token.column - 2: token.column - 1].isdigit()
    if token.type == "NAME" and glued:
        if token.value == "x":
            return "an SLO factor such as 1.5x is only valid as a class's `slo`"
        return "durations are written like 250ms, 2s, 5min, 1h"
    if token.value == "=" and ("COMPARE" in expected or "LET" in expected):
        return "compare with '=='"
    if token.type == "FACTOR":
        return "an SLO factor such as 1.5x is only valid as a class's `slo`"
    first_on_line = source_line[:token.column - 1].strip() == ""
    if token.type == "NAME" and first_on_line and str(token.value) not in DECL_KEYWORDS:
        return did_you_mean(str(token.value), DECL_KEYWORDS) or (
            "a declaration starts with one of: " + ", ".join(DECL_KEYWORDS))
    if token.type == "COMPARE":
        return "comparisons do not chain: write `a < b and b < c`"
    if "ELSE" in expected and "STRING" not in expected and token.type == "STRING":
        return 'write `else "reason"`'
    if "STRING" in expected:
        return 'an admit rule ends with `else "reason"`'
    return None


def _char_hint(char: str) -> str | None:
    hints = {"'": 'strings use double quotes: "reason"', "&": "use `and`", "|": "use `or`",
             "!": "use `not` (or `!=` to compare)", ";": "declarations need no separator"}
    return hints.get(char)


def _end_span(source: str) -> ast.Span:
    lines = source.splitlines() or [""]
    return ast.Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 1)


def _span(meta) -> ast.Span:
    return ast.Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _tspan(token: Token) -> ast.Span:
    return ast.Span(token.line, token.column, token.end_line, token.end_column)


def _ident(token: Token) -> ast.Ident:
    return ast.Ident(_tspan(token), str(token))


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and math.isfinite(value) else value


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(ms|min|s|h)", text)
    assert match is not None
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


@v_args(meta=True)
class _Builder(Transformer):
    """lark tree -> ast nodes (one method per grammar alias)."""

    # declarations
    def policy_decl(self, meta, c):
        return ast.PolicyDecl(_span(meta), _ident(c[0]))

    def param_decl(self, meta, c):
        value, kind = c[1]
        return ast.ParamDecl(_span(meta), _ident(c[0]), value, kind)

    def param_value(self, meta, c):
        item = c[0]
        if isinstance(item, ast.SetLit):
            return item.values, "set"
        if isinstance(item, tuple):
            return item[0], "number"
        kinds = {"DURATION": lambda t: (_duration(t), "duration"), "ALL": lambda t: ("all", "all"),
                 "TRUE": lambda t: (True, "bool"), "FALSE": lambda t: (False, "bool")}
        return kinds[item.type](str(item))

    def signed_number(self, meta, c):
        sign = -1 if len(c) == 2 else 1
        return (sign * _number(str(c[-1])), "number")

    def class_decl(self, meta, c):
        return ast.ClassDecl(_span(meta), _ident(c[0]), [i for i in c[1:] if i is not None])

    def class_item(self, meta, c):
        if len(c) == 1:
            return ast.ClassItem(_span(meta), _ident(c[0]), None, "flag")
        value, kind = c[1]
        return ast.ClassItem(_span(meta), _ident(c[0]), value, kind)

    def factor(self, meta, c):
        return (float(str(c[0])[:-1]), "factor")

    def class_pool(self, meta, c):
        return (str(c[0]), "name")

    def class_duration(self, meta, c):
        return (_duration(str(c[0])), "duration")

    def let_decl(self, meta, c):
        return ast.LetDecl(_span(meta), _ident(c[0]), c[1])

    def pool_decl(self, meta, c):
        ranks = c[1]
        if isinstance(ranks, ast.Ident) and ranks.name == REST:
            return ast.PoolDecl(_span(meta), _ident(c[0]), ast.RestRanks(ranks.span), None)
        if isinstance(ranks, ast.Ident):
            return ast.PoolDecl(_span(meta), _ident(c[0]), None, ranks)
        return ast.PoolDecl(_span(meta), _ident(c[0]), ranks, None)

    def rank_range(self, meta, c):
        return ast.RankRange(_span(meta), c[0], c[1])

    def pool_param(self, meta, c):
        return _ident(c[0])

    def place_decl(self, meta, c):
        pool = c[-1]
        return ast.PlaceDecl(_span(meta), list(c[:-1]), _ident(pool) if pool is not None else None)

    def place_item(self, meta, c):
        return _ident(c[0])

    def stages(self, meta, c):
        return list(c)

    def admit_decl(self, meta, c):
        return ast.AdmitDecl(_span(meta), c[0], str(c[1])[1:-1])

    def hold_decl(self, meta, c):
        return ast.HoldDecl(_span(meta), c[0], c[1])

    def order_decl(self, meta, c):
        return ast.OrderDecl(_span(meta), list(c))

    def order_key(self, meta, c):
        return ast.OrderKey(_span(meta), c[0], c[1] is not None and c[1].type == "DESC")

    def width_decl(self, meta, c):
        return ast.WidthDecl(_span(meta), c[0], c[1], c[2])

    def grow_decl(self, meta, c):
        return ast.GrowDecl(_span(meta), c[0], c[1], c[3])

    def chunk_decl(self, meta, c):
        return ast.ChunkDecl(_span(meta), c[0], c[1])

    def short_decl(self, meta, c):
        return ast.ShortDecl(_span(meta), _ident(c[0]))

    def set_lit(self, meta, c):
        return ast.SetLit(_span(meta), tuple(value for value, _ in c))

    # expressions
    def if_expr(self, meta, c):
        return ast.If(_span(meta), c[0], c[1], c[2])

    def choice(self, meta, c):
        kind, var, domain, where, by, orelse = c
        return ast.Choice(_span(meta), str(kind), str(var), _tspan(var), domain, where, by, orelse)

    def or_op(self, meta, c):
        return ast.Binary(_span(meta), "or", c[0], c[1])

    def and_op(self, meta, c):
        return ast.Binary(_span(meta), "and", c[0], c[1])

    def not_op(self, meta, c):
        return ast.Unary(_span(meta), "not", c[0])

    def compare(self, meta, c):
        return ast.Binary(_span(meta), str(c[1]), c[0], c[2])

    def binary(self, meta, c):
        return ast.Binary(_span(meta), str(c[1]), c[0], c[2])

    def neg(self, meta, c):
        return ast.Unary(_span(meta), "-", c[1])

    def number(self, meta, c):
        return ast.Num(_span(meta), _number(str(c[0])))

    def duration(self, meta, c):
        text = str(c[0])
        return ast.Dur(_span(meta), _duration(text), text)

    def true(self, meta, c):
        return ast.Bool(_span(meta), True)

    def false(self, meta, c):
        return ast.Bool(_span(meta), False)

    def string(self, meta, c):
        return ast.Str(_span(meta), str(c[0])[1:-1])

    def name(self, meta, c):
        return ast.Name(_span(meta), str(c[0]))

    def field(self, meta, c):
        return ast.Field(_span(meta), str(c[0]), str(c[1]), _tspan(c[0]))

    def call(self, meta, c):
        func, args = c[0], [a for a in c[1:] if a is not None]
        wrapped = [a if isinstance(a, ast.Arg) else ast.Arg(a.span, a, None) for a in args]
        return ast.Call(_span(meta), str(func), _tspan(func), wrapped)

    def method_call(self, meta, c):
        """`r.est(1)`: a cost function of the request before the dot."""
        call = self.call(meta, c[1:])
        call.on, call.on_span = str(c[0]), _tspan(c[0])
        return call

    def filtered(self, meta, c):
        return ast.Arg(_span(meta), c[0], c[1])
