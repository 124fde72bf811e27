"""Check-time probing (gfdit.dsl.probe): rules that pass `check` but fail on the cost model
when they run are reported before run time, at the rule's (or let's) file:line:col."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.dsl import compile_policy, load_policy
from gfdit.dsl.check import check
from gfdit.dsl.probe import check_runs, probe
from gfdit.dsl.diagnostics import PolicyError
from gfdit.engine import CostModel
from gfdit.engine.workload import shipped_cost_model
from gfdit.server.reload import compile_policy as server_compile
from gfdit.resources import data_dir

ROOT = Path(__file__).resolve().parents[2]
COST = CostModel.load(shipped_cost_model("qwen-h20"))  # widths 1, 2, 4
FAILS = {  # policy text -> (line, col) of the E308; each passes `check` without a diagnostic
    "policy t\norder by req.arrival\nwidth * = 1\nhold * when slack(max(req.width, 1) * 3) < 0s\n": (4, 1),
    "policy t\norder by slack(req.width)\nwidth * = 1\n": (2, 10),
    "policy t\nlet late = slack(req.width) < 0\norder by req.arrival\nwidth * = 1\n"
    "grow * when late\n": (2, 1),
    "policy t\norder by req.arrival\nwidth encode, decode = 1\n"
    "width denoise = argmin k in {1, 2, 4} by finish(k * 2)\n": (4, 1),
    'policy t\nadmit when est(gpus - 1) < 1min else "slow"\norder by req.arrival\nwidth * = 1\n': (2, 1),
    "policy t\norder by req.arrival\nwidth * = 1\nchunk when slack(max(req.width, 1) * 3) < 0s = 1\n": (4, 1),
}


@pytest.mark.parametrize("text", list(FAILS), ids=["hold", "order", "let", "choice", "admit", "chunk"])
def test_a_rule_that_fails_on_the_cost_model_is_reported_where_it_is(text):
    assert not check(text, "t.gfp").diagnostics  # the language alone finds nothing
    found = probe(compile_policy(text, "t.gfp"), COST, 4)
    assert [(d.code, d.span.line, d.span.col) for d in found] == [("E308", *FAILS[text])]
    assert "CostModelError" in found[0].message and found[0].location.startswith("t.gfp:")


def test_the_hint_says_what_to_write_for_width_zero():
    (found,) = probe(compile_policy("policy t\norder by slack(req.width)\nwidth * = 1\n", "t.gfp"), COST, 4)
    assert "before its first task" in found.message and "max(req.width, 1)" in found.hint


def test_guarded_cost_calls_and_shipped_policies_are_not_reported():
    guarded = ("policy t\norder by req.arrival\nwidth * = 1\n"
               "hold * when req.width > 0 and slack(req.width) < 0s\n"
               "grow denoise when slack(req.width) < 0\n")  # in denoise a request has run: width >= 1
    assert probe(compile_policy(guarded, "g.gfp"), COST, 4) == []
    for path in sorted(data_dir("policies").glob("*.gfp")):
        assert probe(load_policy(path), COST, 4) == [], path


def test_check_runs_raises_the_diagnostics():
    text = next(iter(FAILS))
    with pytest.raises(PolicyError) as error:
        check_runs(compile_policy(text, "t.gfp"), COST, 4)
    assert [d.code for d in error.value.diagnostics] == ["E308"]


def test_the_server_compile_step_refuses_what_the_probe_finds():
    text = next(iter(FAILS))
    policy, rendered = server_compile(text, "edit.gfp", {}, runs_on=(COST, 4))
    assert policy is None and "error[E308]" in rendered[0] and rendered[0].startswith("edit.gfp:4:1:")
    policy, rendered = server_compile(text, "edit.gfp", {})  # without an engine: the language only
    assert policy is not None and rendered == []


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gfdit", "policy", "check", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_policy_check_probes_on_the_shipped_cost_model_by_default(tmp_path):
    bad = tmp_path / "bad.gfp"
    bad.write_text("policy t\norder by slack(req.width)\nwidth * = 1\n")
    done = run_check(str(bad), "gfdit/data/policies/edf_best_fit.gfp")
    assert done.returncode == 1
    assert f"{bad}:2:10: error[E308]" in done.stderr and "gfdit/data/policies/edf_best_fit.gfp: ok" in done.stdout
    as_json = run_check(str(bad), "--json")
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (record["code"], record["line"], record["col"]) == ("E308", 2, 10)
    assert run_check(str(bad), "--cost-model", "none").returncode == 0
    assert run_check(str(bad), "--cost-model", str(tmp_path / "nowhere")).returncode == 2
