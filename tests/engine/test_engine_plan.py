"""A choice for the round as a whole (`plan`): the widths that let the most candidates meet their
deadline this round, chosen together; the others are allocated as usual with what is left."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gfdit.dsl import compile_policy
from gfdit.dsl.check import check
from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.engine import Engine
from gfdit.engine.policy import Why

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0, 4: 400.0}))


@dataclass(frozen=True)
class Planning(TestPolicy):
    plan: bool = False


def best_fit(view, r):
    """The smallest width that meets the deadline, else the fastest (edf_best_fit's rule)."""
    k = next((w for w in (1, 2, 4) if view.finish(r, w) <= r.deadline), 4)
    return k, Why("test.width", {})


@pytest.mark.parametrize("plan, granted", [(False, {"a": 4}), (True, {"b": 1, "c": 1, "d": 1})])
def test_the_plan_meets_more_deadlines_this_round(cm, plan, granted):
    policy = Planning(widths=(1, 2, 4), width_fn=best_fit, order_fn=lambda v, r: (r.deadline,), plan=plan)
    engine = Engine(policy, cm, Cluster(4))
    engine.submit(req("a", 0.0, 10, deadline=7.0), 0.0)  # meets it only on 4 ranks (6 s)
    for rid in "bcd":
        engine.submit(req(rid, 0.0, 2, deadline=10.0), 0.0)  # each meets it on one rank (4 s)
    got = {d.request_id: len(d.group) for d in engine.schedule(0.0)}
    assert got == granted


def test_what_the_plan_leaves_is_allocated_as_usual(cm):
    policy = Planning(widths=(1, 2, 4), width_fn=best_fit, order_fn=lambda v, r: (r.deadline,), plan=True,
                      on_short="shrink")
    engine = Engine(policy, cm, Cluster(4))
    engine.submit(req("late", 0.0, 10, deadline=1.0), 0.0)  # meets it at no width: not in the plan
    engine.submit(req("b", 0.0, 2, deadline=10.0), 0.0)
    got = {d.request_id: len(d.group) for d in engine.schedule(0.0)}
    assert got == {"b": 1, "late": 2}  # late wants 4; 3 are left after the plan: shrunk to 2


def test_the_language_sets_plan():
    text = "policy p\nparam plan = true\norder by req.deadline\nwidth * = 1\n"
    assert compile_policy(text, "p.gfp").plan is True
    assert compile_policy(text.replace("param plan = true\n", ""), "p.gfp").plan is False
    assert [d.code for d in check(text.replace("= true", "= 3"), "p.gfp").diagnostics] == ["E112"]
