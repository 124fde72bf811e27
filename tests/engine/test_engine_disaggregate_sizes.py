"""disaggregate's pools are fixed rank sets (4-GPU defaults): the documented 8-GPU params use every
rank, and ranks a cluster lacks are dropped from a pool with a note (one setting for 4 and 8 GPUs)."""

from __future__ import annotations

from gfdit.engine import CostModel, Request, simulate
from gfdit.engine.workload import shipped_cost_model
from gfdit.policies import fit_policy, resolve_policy

COST = CostModel.load(shipped_cost_model("qwen-h20"))
REQUESTS = [Request(f"r{i}", 0.1 * i, 1024, 1024, 20) for i in range(16)]


def _ranks(params: dict, gpus: int) -> tuple[set[int], list[str]]:
    policy, notes = fit_policy(resolve_policy("disaggregate", params), "disaggregate", params, COST, gpus)
    result = simulate(policy, REQUESTS, COST, gpus, record_spans=True, time_rounds=False)
    assert all(o.state == "completed" for o in result.outcomes)
    return {r for s in result.spans for r in s.group}, notes


def test_the_defaults_use_four_ranks_and_the_documented_params_use_eight():
    assert _ranks({}, 8)[0] == {0, 1, 2, 3}
    assert _ranks({"aux_ranks": "{0,1}", "main_ranks": "{2,3,4,5,6,7}"}, 8)[0] == set(range(8))


def test_ranks_a_cluster_lacks_are_dropped_with_a_note():
    wide = {"main_ranks": "{1,2,3,4,5,6,7}"}
    used, notes = _ranks(wide, 4)
    assert used == {0, 1, 2, 3} and any("pool main loses ranks [4, 5, 6, 7]" in n for n in notes)
    assert _ranks(wide, 8)[0] == set(range(8))
