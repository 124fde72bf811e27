"""A policy's optional promises let the engine ask less, for the same decisions.

`static_order`: the order key is computed once per request (per policy);
`never_holds`: the hold hook is not asked. `Round.explain` is False without a
decision log, True with one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.engine import Engine
from gfdit.engine.simulator import simulate

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0}))


@dataclass(frozen=True)
class Promising(TestPolicy):
    static_order: bool = False
    never_holds: bool = False


def workload():
    return [req(f"r{i}", 0.5 * i, 4, deadline=30.0 - i) for i in range(8)]


def test_a_static_order_key_is_computed_once_per_request(cm):
    calls: list[str] = []

    def key(view, r):
        calls.append(r.id)
        return (r.deadline,)

    plain = simulate(Promising(order_fn=key), workload(), cm, 2, time_rounds=False)
    asked_plain = len(calls)
    calls.clear()
    memo = simulate(Promising(order_fn=key, static_order=True), workload(), cm, 2, time_rounds=False)
    assert sorted(calls) == sorted(f"r{i}" for i in range(8))  # once each
    assert asked_plain > 3 * len(calls)
    assert memo.outcomes == plain.outcomes


def test_a_policy_swap_computes_static_keys_again(cm):
    calls: list[str] = []

    def key(view, r):
        calls.append(r.id)
        return (r.deadline,)

    engine = Engine(Promising(order_fn=key, static_order=True), cm, Cluster(1))
    for r in workload()[:3]:
        engine.submit(r, 0.0)
    (first,) = engine.schedule(0.0)
    engine.task_done(first.task_id, 1.0)
    engine.schedule(1.0)
    assert sorted(calls) == ["r0", "r1", "r2"]  # the same policy: from the memo
    engine.task_done(engine.schedule(1.0)[0].task_id if engine.tasks == {} else next(iter(engine.tasks)), 2.0)
    engine.set_policy(Promising(order_fn=key, static_order=True, name="other"))
    engine.schedule(2.0)
    assert sorted(calls) == ["r0", "r0", "r1", "r1", "r2", "r2"]  # a new policy: asked again


def test_never_holds_is_not_asked(cm):
    def hold(view, r):
        raise RuntimeError("asked")

    result = simulate(Promising(hold_fn=hold, never_holds=True), workload(), cm, 2, time_rounds=False)
    assert result.rule_errors == {} and all(o.state == "completed" for o in result.outcomes)
    asked = simulate(Promising(hold_fn=hold), workload(), cm, 2, time_rounds=False)
    assert sum(asked.rule_errors.values()) > 0


def test_the_view_explains_only_with_a_decision_log(cm):
    seen: list[bool] = []

    def key(view, r):
        seen.append(view.explain)
        return ()

    simulate(Promising(order_fn=key), workload()[:2], cm, 2, time_rounds=False)
    simulate(Promising(order_fn=key), workload()[:2], cm, 2, time_rounds=False, decision_log=DecisionLog([]))
    assert seen and set(seen[: len(seen) // 2]) == {False} and seen[-1] is True
