"""A hold on time with no `tick` is re-judged as time passes, even when nothing else happens."""

from __future__ import annotations

import pytest

from gfdit.dsl.load import compile_policy
from gfdit.engine.costmodel import CostModel
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.simulator import simulate

from engine_support import req, write_cost_model

HOLD_YOUNG = """policy hold_young
param chunk = 1
param widths = {1}
order by req.arrival
hold * when req.age < 30s
width * = 1
"""


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0}))


def test_a_lone_request_held_on_its_age_runs_once_the_hold_releases(cm):
    log = DecisionLog()
    result = simulate(compile_policy(HOLD_YOUNG, "h.gfp"), [req("A", 0.0, 2)], cm, 1, decision_log=log)
    (outcome,) = result.outcomes
    assert outcome.state == "completed", outcome.reason
    (first,) = [r for r in log.records if r["event"] == "dispatch" and r["stage"] == "encode"]
    assert 30.0 <= first["t"] <= 31.0  # re-judged at least every second (Engine.hold_recheck_s)


def test_a_policy_tick_still_sets_the_pace(cm):
    ticking = compile_policy(HOLD_YOUNG.replace("param widths", "param tick = 10s\nparam widths"), "h.gfp")
    log = DecisionLog()
    simulate(ticking, [req("A", 0.0, 2)], cm, 1, decision_log=log)
    (first,) = [r for r in log.records if r["event"] == "dispatch" and r["stage"] == "encode"]
    assert first["t"] == pytest.approx(30.0)
