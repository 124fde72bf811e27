"""Budgets per round: `grow_budget` (requests widened per round) and `migration_budget` (grants per
round that move a request's state), optional Policy attributes the .gfp reserved params set."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gfdit.dsl import compile_policy
from gfdit.dsl.check import check
from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.engine import Engine
from gfdit.engine.policy import Why
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.simulator import simulate
from gfdit.engine import Request
from gfdit.engine.workload import shipped_cost_model
from gfdit.resources import data_dir

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0, 4: 400.0}))


@dataclass(frozen=True)
class Budgeted(TestPolicy):
    grow_budget: int | None = None
    migration_budget: int | None = None


def grow_all(view, r):
    return 4, Why("test.grow", {})


@pytest.mark.parametrize("budget, widths", [(None, [4, 4]), (1, [4, 1]), (0, [1, 1])])
def test_grow_budget_counts_requests_widened_in_a_round(cm, budget, widths):
    policy = Budgeted(widths=(1, 2, 4), grow_fn=grow_all, grow_budget=budget, order_fn=lambda v, r: (r.id,))
    engine = Engine(policy, cm, Cluster(8))
    for rid in ("a", "b"):
        engine.submit(req(rid, 0.0, 5), 0.0)
    got = {d.request_id: len(d.group) for d in engine.schedule(0.0)}
    assert [got["a"], got["b"]] == widths


def moving(records):
    """Per round time: dispatches that move a request's state to ranks that did not hold it."""
    per_round: dict[float, int] = {}
    for r in records:
        if r["event"] == "dispatch" and r.get("state_ranks") and set(r["ranks"]) - set(r["state_ranks"]):
            per_round[r["t"]] = per_round.get(r["t"], 0) + 1
    return per_round


def test_migration_budget_caps_moves_per_round_and_everything_finishes(cm):
    requests = [req(f"r{i}", 0.3 * i, 6) for i in range(10)]
    free_moves = Budgeted(widths=(1, 2, 4), grow_fn=grow_all, placement=("lowest",))
    capped = Budgeted(widths=(1, 2, 4), grow_fn=grow_all, placement=("lowest",), migration_budget=1)
    logs = [DecisionLog(), DecisionLog()]
    results = [simulate(p, requests, cm, 4, decision_log=log, time_rounds=False)
               for p, log in zip((free_moves, capped), logs, strict=True)]
    assert max(moving(logs[0].records).values()) > 1  # without a budget a round moves several
    assert max(moving(logs[1].records).values()) == 1
    assert all(o.state == "completed" for o in results[1].outcomes)
    assert any(r["event"] == "skip" and r["rule"] == "engine:migration_budget" for r in logs[1].records)


def test_the_language_sets_the_budgets_and_checks_them():
    text = "policy p\nparam grow_budget = 1\nparam migration_budget = 2\norder by req.arrival\nwidth * = 1\n"
    policy = compile_policy(text, "p.gfp")
    assert (policy.grow_budget, policy.migration_budget) == (1, 2)
    assert compile_policy(text, "p.gfp", {"grow_budget": "3"}).grow_budget == 3
    plain = compile_policy("policy p\norder by req.arrival\nwidth * = 1\n", "p.gfp")
    assert plain.grow_budget is None and plain.migration_budget is None
    bad = check(text.replace("grow_budget = 1", "grow_budget = 1.5"), "p.gfp")
    assert [d.code for d in bad.diagnostics] == ["E112"]


def test_a_migration_budget_of_zero_is_refused_it_would_strand_every_request_that_must_move(cm):
    text = "policy p\nparam migration_budget = 1\norder by req.arrival\nwidth * = 1\n"
    bad = check(text.replace("= 1\norder", "= 0\norder"), "p.gfp")
    assert [d.code for d in bad.diagnostics] == ["E112"] and "at least 1" in bad.diagnostics[0].message
    assert check(text.replace("= 1\norder", "= 0\norder"), "p.gfp", {"migration_budget": "1"}).ok
    with pytest.raises(PolicyError, match="migration_budget must be"):
        Engine(Budgeted(widths=(1, 2, 4), migration_budget=0), cm, Cluster(8))


def test_disaggregate_with_a_migration_budget_of_one_completes_every_request():
    """Every request moves from the aux pool to the main one after encode: one move per round goes."""
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    text = (data_dir("policies") / "disaggregate.gfp").read_text()
    policy = compile_policy(text.replace("param chunk = 5", "param chunk = 5\nparam migration_budget = 0"),
                            "disaggregate.gfp", {"migration_budget": "1"}).for_cluster(4)
    assert policy.migration_budget == 1
    requests = [Request(f"r{i}", 0.2 * i, 1024, 1024, 20) for i in range(10)]
    result = simulate(policy, requests, cost, 4, time_rounds=False)
    assert [o.state for o in result.outcomes] == ["completed"] * 10
