"""The checker: named passes from text to a checked policy, collecting every diagnostic.

    parse -> declarations -> resolve names -> depth -> type-check -> policy rules

`check(text, filename, params)` returns a `Checked` (the declarations and the
diagnostics); the compiler runs only when it has no errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from gfdit.dsl import ast
from gfdit.dsl.declarations import Declarations, collect
from gfdit.dsl.depth import check_depth
from gfdit.dsl.diagnostics import Diagnostic, Report
from gfdit.dsl.parse import parse_program, too_large
from gfdit.dsl.resolve import resolve
from gfdit.dsl.rules import check_rules
from gfdit.dsl.typecheck import typecheck


@dataclass
class Checked:
    program: ast.Program
    decls: Declarations
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def check(text: str, filename: str = "<text>", params: dict[str, str] | None = None) -> Checked:
    """Run every pass over `text`; never raises for bad input (problems are diagnostics)."""
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    report = Report(filename, text)
    program = parse_program(text, filename, report)
    if too_large(text):  # nothing was parsed: no other diagnostic would be true
        return Checked(program, Declarations(), report.sorted())
    try:
        decls = collect(program, report, dict(params or {}))
        suppressed = program.failed_names | decls.failed_names
        resolver = resolve(decls, report, suppressed)
        if not check_depth(decls, resolver.let_deps, report):
            return Checked(program, decls, report.sorted())
        typecheck(decls, report)
        last = program.span
        syntax_failed = any(d.code < "E100" for d in report.diagnostics)
        check_rules(decls, report, resolver.used,
                    ast.Span(last.end_line, last.end_col, last.end_line, last.end_col + 1),
                    complete=not syntax_failed)
    except RecursionError:
        report.add("E004", ast.Span(1, 1, 1, 2), "policy nested too deeply to check",
                   "split deep expressions into `let` definitions")
        decls = Declarations()
    return Checked(program, decls, report.sorted())
