"""docs/policy-language.md documents every diagnostic code and every built-in name."""

from pathlib import Path

from gfdit.dsl.diagnostics import CODES
from gfdit.dsl.names import AGGREGATES, CLUSTER_NAMES, COST_FUNCTIONS, REQUEST_FIELDS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "policy-language.md").read_text()


def test_every_diagnostic_code_is_documented():
    assert not [code for code in CODES if f"| {code} |" not in DOC]


def test_every_builtin_name_is_documented():
    missing = [f"req.{f}" for f in REQUEST_FIELDS if f"`req.{f}`" not in DOC]
    missing += [n for n in CLUSTER_NAMES if f"`{n}`" not in DOC]
    missing += [f for f in COST_FUNCTIONS if f"`{f}(k)`" not in DOC]
    missing += [a for a in AGGREGATES if f"`{a}(" not in DOC]
    assert not missing, missing
