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


SIZED = """policy s
param chunk = 3
param widths = {1, 2, 4}
class S { slo = 1.5x }
class M { slo = 2x }
class L { slo = 6x }
pool aux = {0 .. max(gpus / 8, 1) - 1}
pool main = rest
place encode, decode in aux
place denoise in main
order by req.deadline
width encode, decode = 1
width denoise = min k in widths where finish(k) <= req.deadline else argmin k in widths by finish(k)
place sticky, compact
"""


def test_a_candidate_fitted_to_another_size_leaks_no_ranks_into_the_live_round(monkeypatch):
    """The live policy and the candidate share a revision (the candidate is the same policy fitted
    to no cluster) but not their pools: the rank restrictions cached for one must not serve the other."""
    from gfdit.dsl import compile_policy
    from gfdit.engine.workload_gen import generate, load_profile

    cost_model = CostModel.load(cost_model_dir("qwen-h20"))
    base = compile_policy(SIZED, "s.gfp")
    workload = Workload.from_json(generate(load_profile("burst"), cost_model, 8, 1.4, 3, duration_scale=0.4))
    plain = simulator.simulate(base.for_cluster(8), workload, cost_model, 8, record_spans=True)

    class Shadowed(Engine):
        def schedule(self, now):
            self.decide(base, now, explain=False)
            return super().schedule(now)

    monkeypatch.setattr(simulator, "Engine", Shadowed)
    shadowed = simulator.simulate(base.for_cluster(8), workload, cost_model, 8, record_spans=True)
    assert shadowed.spans == plain.spans and shadowed.outcomes == plain.outcomes
    assert {r for span in plain.spans if span.stage == "denoise" for r in span.group} == set(range(1, 8))
