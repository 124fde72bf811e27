"""Edges of the checker that a golden file cannot hold (a 200 kB input) or that need a compile."""

from gfdit.dsl.check import check
from gfdit.dsl.load import compile_policy
from gfdit.dsl.parse import MAX_SOURCE_CHARS

VALID = "policy t\norder by req.arrival\nwidth * = 1\n"


def test_an_oversize_policy_reports_only_its_size():
    text = VALID + "#" * MAX_SOURCE_CHARS
    assert [d.code for d in check(text, "big.gfp").diagnostics] == ["E004"]


def test_exponent_literals_have_their_values():
    policy = compile_policy(VALID + "param cap = 1e3\nparam t = 2.5e-1s\n"
                            "admit when count(waiting) < cap and now > t else \"x\"\n", "e.gfp")
    assert policy.warnings == []
    checked = check(VALID + "param huge = 1e400\nhold * when req.tokens > huge\n", "h.gfp")
    assert checked.ok
    assert checked.decls.params["huge"].value == float("inf")
