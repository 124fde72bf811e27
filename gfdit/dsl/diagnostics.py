"""Diagnostics as data: a stable code, a message, a location, a hint.

Every check reports into a `Report`; nothing stops at the first problem. A
failed compile raises `PolicyError`, the language's one error type, carrying
every diagnostic (warnings included). `CODES` is the catalogue of stable codes;
docs/policy-language.md lists the same table.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Literal

from gfdit.dsl.ast import Span
from gfdit.engine.policy_check import PolicyError as PolicyError  # one class; re-exported here

Severity = Literal["error", "warning"]
MAX_SHOWN = 100  # characters of a source line shown under a diagnostic

CODES: dict[str, str] = {
    # syntax
    "E001": "unexpected token",
    "E002": "unexpected character",
    "E003": "unexpected end of input",
    "E004": "policy too large or too deeply nested",
    "E005": "cannot read the policy file",
    # declarations and names
    "E101": "missing or misplaced `policy NAME` header",
    "E102": "duplicate name, or a built-in name, keyword or reserved param redefined",
    "E103": "unknown name",
    "E104": "unknown request field",
    "E105": "unknown function or wrong arguments",
    "E106": "unknown stage",
    "E107": "`r.` used outside an aggregate",
    "E108": "cycle among lets",
    "E109": "unknown pool",
    "E110": "unknown placement or on-short mode",
    "E111": "bad class attribute",
    "E112": "bad value for a reserved param",
    "E113": "unknown param override",
    "E114": "bad param override value",
    # types
    "E201": "operand types do not match",
    "E202": "condition is not a bool",
    "E203": "width or bound is not a number",
    "E204": "cannot compare these types",
    "E205": "choice over something that is not a set of integers",
    "E206": "aggregate over something that is not a request set",
    "E207": "a filtered choice needs an `else`",
    "E208": "order key cannot be ordered",
    "E209": "value used where it cannot be",
    # policy rules
    "E301": "a stage has no default (unconditional) width rule",
    "E302": "constant width not in `widths`",
    "E303": "missing `order by`",
    "E304": "more than one `order by`",
    "E305": "bad pool ranks",
    "E306": "repeated configuration",
    "E307": "a stage placed in two pools",
    "E308": "a rule fails when it runs on the cost model",
    "E309": "a set member that is not a whole number",
    "E310": "a pool sized by the cluster that is always empty",
    "E311": "a pool range outside the cluster on every size",
    "E312": "stage pools sized by the cluster that overlap",
    "E313": "a `chunk` rule that cannot apply",
    # warnings
    "W401": "rule can never match",
    "W402": "declared but never used",
    "W403": "condition is constant",
    "W404": "`any` without `where`",
    "W405": "a grow rule that can never widen",
    "W406": "comparison with a class the policy does not declare",
    "W407": "a rule for a stage that never comes first under `chunk = all`",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: where it is, what it is, and what to do about it."""

    code: str
    message: str
    file: str
    span: Span
    source_line: str = ""
    hint: str | None = None

    @property
    def severity(self) -> Severity:
        return "warning" if self.code.startswith("W") else "error"

    @property
    def location(self) -> str:
        return f"{self.file}:{self.span.line}:{self.span.col}"

    def render(self) -> str:
        """`file:line:col: error[CODE]: message`, the source line, a caret, the hint."""
        head = f"{self.location}: {self.severity}[{self.code}]: {self.message}"
        lines = [head]
        if self.source_line:
            number = str(self.span.line)
            gutter = " " * len(number)
            text, col = _window(self.source_line.expandtabs(1), self.span.col)
            width = self.span.end_col - self.span.col if self.span.end_line == self.span.line else 1
            width = max(1, min(width, len(text) - col + 1, MAX_SHOWN))
            lines.append(f" {number} | {text}")
            lines.append(f" {gutter} | {' ' * (col - 1)}{'^' * width}")
        if self.hint:
            lines.append(f"   = hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "file": self.file, "line": self.span.line, "col": self.span.col,
                "hint": self.hint}


def compile_error(diagnostics: Iterable[Diagnostic]) -> PolicyError:
    """The engine's `PolicyError` for a policy that does not compile: it carries every
    diagnostic in source order, and its message renders them."""
    ordered = sorted(diagnostics, key=_order)
    return PolicyError(render_all(ordered), ordered)


@dataclass
class Report:
    """Collects diagnostics for one source text."""

    file: str
    source: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.source.splitlines()

    def add(self, code: str, span: Span, message: str, hint: str | None = None) -> None:
        assert code in CODES, code
        line = self._lines[span.line - 1] if 0 < span.line <= len(self._lines) else ""
        self.diagnostics.append(Diagnostic(code, message, self.file, span, line, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.diagnostics, key=_order)


def _window(text: str, col: int) -> tuple[str, int]:
    """A long source line cut to MAX_SHOWN characters around column `col` (1-based)."""
    if len(text) <= MAX_SHOWN:
        return text, col
    start = max(0, min(col - 1 - MAX_SHOWN // 4, len(text) - MAX_SHOWN))
    cut = text[start:start + MAX_SHOWN]
    prefix = "..." if start else ""
    return prefix + cut + ("..." if start + MAX_SHOWN < len(text) else ""), col - start + len(prefix)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, if one is close enough."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def render_all(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(d.render() for d in diagnostics)


def _order(d: Diagnostic) -> tuple:
    return (d.span.line, d.span.col, d.code)
