"""Pools sized by the cluster (`pool aux = {0 .. ...}`, `pool main = rest`): disaggregate's pools are
sized when the policy is fitted to a cluster, so on 8 GPUs it uses all 8 ranks (it used ranks 0-3 only
when its pools were fixed sets); an unfitted policy is refused on another GPU count; fixed pools still
lose the ranks a cluster lacks, with a note."""

from __future__ import annotations

import pytest

from gfdit.dsl import compile_policy
from gfdit.engine import CostModel, Request, simulate
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.workload import shipped_cost_model
from gfdit.policies import fit_policy, fit_to, resolve_policy
from gfdit.server.reload import compile_policy as reload_compile

COST = CostModel.load(shipped_cost_model("qwen-h20"))
REQUESTS = [Request(f"r{i}", 0.1 * i, 1024, 1024, 20) for i in range(16)]
SIZED = """policy p
param widths = {1, 2}
pool aux = {0 .. max(gpus / 8, 1) - 1}
pool main = rest
pool big = {gpus / 2 .. gpus - 1}  # no stage pool: `rest` does not leave its ranks out
place encode, decode in aux
place denoise in main
order by req.arrival
width * = 1
"""


def _run(policy, gpus: int) -> dict[str, set[int]]:
    result = simulate(policy, REQUESTS, COST, gpus, record_spans=True, time_rounds=False)
    assert all(o.state == "completed" for o in result.outcomes)
    used: dict[str, set[int]] = {}
    for span in result.spans:
        used.setdefault(span.stage, set()).update(span.group)
    return used


def _ranks(params: dict, gpus: int) -> tuple[dict[str, set[int]], list[str]]:
    policy, notes = fit_policy(resolve_policy("disaggregate", params), "disaggregate", params, COST, gpus)
    return _run(policy, gpus), notes


def test_disaggregate_uses_every_rank_of_an_8_gpu_cluster():
    used, notes = _ranks({}, 8)
    assert notes == []
    assert used["encode"] | used["decode"] == {0} and used["denoise"] == set(range(1, 8))


def test_disaggregate_keeps_its_4_gpu_pools_and_scales_with_its_share():
    used, _ = _ranks({}, 4)
    assert used["encode"] | used["decode"] == {0} and used["denoise"] == {1, 2, 3}
    used, _ = _ranks({"aux_share": "0.25"}, 8)
    assert used["encode"] | used["decode"] == {0, 1} and used["denoise"] == set(range(2, 8))


@pytest.mark.parametrize("gpus, aux, main, big", [
    (1, {0}, set(), {0}), (2, {0}, {1}, {1}), (4, {0}, {1, 2, 3}, {2, 3}),
    (8, {0}, set(range(1, 8)), {4, 5, 6, 7}), (16, {0, 1}, set(range(2, 16)), set(range(8, 16)))])
def test_sized_pools_are_evaluated_on_the_clusters_gpu_count(gpus, aux, main, big):
    policy, notes = fit_to(compile_policy(SIZED, "p.gfp"), None, COST, gpus)
    expected = {"aux": aux, "main": main, "big": big}
    assert {k: set(v) for k, v in policy.pools.items()} == {k: v for k, v in expected.items() if v}
    assert policy.pools_sized_for == gpus
    if not main:  # rest on one GPU: empty, so denoise may use every rank
        assert notes == ["policy p: pool main has no rank on this 1-GPU cluster: denoise may use every rank, "
                         "those of pool aux too"]
        assert "denoise" not in policy.stage_pools


def test_an_unfitted_policy_with_sized_pools_is_refused_on_another_gpu_count():
    policy = compile_policy(SIZED, "p.gfp")
    assert policy.pools_sized_for == 2 and dict(policy.pools)["main"] == {1}  # its largest width
    with pytest.raises(PolicyError, match="sized for 2 GPUs, not 8: fit it to this cluster"):
        simulate(policy, REQUESTS, COST, 8)
    fitted = fit_to(policy, None, COST, 8)[0]
    assert _run(fitted, 8)["denoise"] == set(range(1, 8))


def test_fixed_pool_ranks_a_cluster_lacks_are_dropped_with_a_note():
    text = SIZED.replace("pool main = rest", "pool main = {1, 2, 3, 4, 5, 6, 7}").replace(
        "{0 .. max(gpus / 8, 1) - 1}", "{0}")
    policy, notes = fit_to(compile_policy(text, "p.gfp"), None, COST, 4)
    assert set(policy.pools["main"]) == {1, 2, 3}
    assert "policy p: pool main loses ranks [4, 5, 6, 7] (not on this 4-GPU cluster)" in notes


def test_a_hot_reload_sizes_the_pools_for_the_servers_cluster():
    policy, notes = reload_compile(SIZED, "p.gfp", {}, runs_on=(COST, 8))  # what a server's reload compiles
    assert policy.pools_sized_for == 8 and set(policy.pools["main"]) == set(range(1, 8)), notes
