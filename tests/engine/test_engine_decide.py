"""`Engine.decide`: any policy's round on the engine's state, applied by nothing (the server's shadow)."""

from __future__ import annotations

import pytest

import gfdit.engine.simulator as simulator
from gfdit.engine.costmodel import CostModel
from gfdit.engine.engine import Engine
from gfdit.engine.workload import Workload, shipped_workload
from gfdit.policies import resolve_policy
from gfdit.resources import cost_model_dir


@pytest.mark.parametrize("live, candidate", [("default", "slo_grow"), ("slo_grow", "default"),
                                             ("edf_best_fit", "py:static_sp")])
def test_a_candidates_rounds_before_every_round_change_nothing(monkeypatch, live, candidate):
    workload = Workload.load(shipped_workload("short-4gpu"))
    cost_model = CostModel.load(cost_model_dir("qwen-h20"))
    plain = simulator.simulate(resolve_policy(live, {}), workload, cost_model, 4)
    other = resolve_policy(candidate, {})
    differ = []

    class Shadowed(Engine):
        def schedule(self, now):
            decided = self.decide(other, now, explain=True)
            mine = set() if decided is None else {(g.req.id, g.width) for g in decided[0].grants}
            dispatches = super().schedule(now)
            differ.append(mine != {(d.request_id, len(d.group)) for d in dispatches})
            return dispatches

    monkeypatch.setattr(simulator, "Engine", Shadowed)
    shadowed = simulator.simulate(resolve_policy(live, {}), workload, cost_model, 4)
    assert shadowed.outcomes == plain.outcomes and shadowed.rounds == plain.rounds
    assert any(differ)  # the candidate did decide otherwise: the comparison had something to ignore
