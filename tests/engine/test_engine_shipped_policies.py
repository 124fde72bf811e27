"""Shipped policies: the semantics their headers promise, and that each runs on 1 to 4 GPUs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gfdit.cli import main
from gfdit.dsl.load import load_policy
from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.engine import Engine
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model, shipped_workload
from gfdit.policies import fit_policy, resolve_policy

from engine_support import req, write_cost_model
from gfdit.resources import data_dir

POLICIES = data_dir("policies")


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0, 4: 400.0}))


def finish_order(name: str, cm: CostModel) -> list[str]:
    """One GPU, chunk 1: a long job starts, a short one arrives while it runs."""
    policy = load_policy(POLICIES / f"{name}.gfp", {"chunk": "1"})
    result = simulate(policy, [req("long", 0.0, 20), req("short", 0.5, 2)], cm, 1)
    assert all(o.state == "completed" for o in result.outcomes)
    return [o.id for o in sorted(result.outcomes, key=lambda o: o.finish)]


def test_sjf_is_non_preemptive_a_started_request_stays_ahead(cm):
    assert finish_order("sjf", cm) == ["long", "short"]


def test_srtf_lets_the_short_job_overtake_at_the_next_boundary(cm):
    assert finish_order("srtf", cm) == ["short", "long"]


def priced_up_to_2(tmp_path) -> CostModel:
    """The shipped qwen-h20 layouts of widths 1 and 2 only (what a 2-GPU calibration measures)."""
    source = Path(shipped_cost_model("qwen-h20"))
    target = tmp_path / "cm12"
    target.mkdir()
    for name in ("tp1_ulysses1_ring1_cfg1.json", "tp1_ulysses2_ring1_cfg1.json"):
        shutil.copy(source / name, target / name)
    return CostModel.load(target)


SHIPPED = sorted(p.stem for p in POLICIES.glob("*.gfp"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_policy_runs_on_1_to_4_gpus(name, tmp_path):
    requests = Workload.load(shipped_workload("short-4gpu")).requests[:12]
    for cost_model in (CostModel.load(shipped_cost_model("qwen-h20")), priced_up_to_2(tmp_path)):
        for gpus in (1, 2, 3, 4):
            policy, notes = fit_policy(resolve_policy(name), name, {}, cost_model, gpus)
            result = simulate(policy, requests, cost_model, gpus)
            assert [o.state for o in result.outcomes] == ["completed"] * 12, (gpus, notes)
            assert not result.rule_errors, (gpus, result.rule_error_messages)
            assert set(policy.widths) <= {w for w in cost_model.widths if w <= gpus}


def test_dropped_widths_and_pool_ranks_are_noted_one_line_each(tmp_path):
    cost_model = priced_up_to_2(tmp_path)
    _, notes = fit_policy(resolve_policy("edf_best_fit"), "edf_best_fit", {}, cost_model, 4)
    assert notes == ["policy edf_best_fit: widths [4] dropped (the cluster has 4 GPU(s), "
                     "the cost model prices [1, 2]); using [1, 2]"]
    policy, notes = fit_policy(resolve_policy("disaggregate"), "disaggregate", {}, cost_model, 1)
    assert notes == ["policy disaggregate: widths [2] dropped (the cluster has 1 GPU(s), the cost model "
                     "prices [1, 2]); using [1]",
                     "policy disaggregate: pool main has no rank on this 1-GPU cluster: denoise may use every "
                     "rank, those of pool aux too"]
    assert dict(policy.pools) == {"aux": frozenset({0})} and dict(policy.stage_pools) == {
        "encode": "aux", "decode": "aux"}


def test_a_policy_with_no_usable_width_is_still_refused(tmp_path):
    cost_model = priced_up_to_2(tmp_path)
    wide = resolve_policy("static_sp", {"widths": "4"})
    policy, notes = fit_policy(wide, "static_sp", {"widths": "4"}, cost_model, 2)
    assert policy is wide and notes == []
    with pytest.raises(PolicyError, match=r"no width in \[4\] fits 2 GPUs.*no layout for widths \[4\]"):
        simulate(policy, [req("A", 0, 2)], cost_model, 2)


def test_simulate_prints_the_note_and_runs(capsys):
    assert main(["simulate", "--policy", "edf_best_fit", "--workload", "short-4gpu", "--gpus", "2"]) == 0
    captured = capsys.readouterr()
    assert "note: policy edf_best_fit: widths [4] dropped (the cluster has 2 GPU(s)" in captured.err
    assert "| overall |  107 |  107 |" in captured.out


def test_under_disaggregation_the_dit_prepare_runs_with_denoise_on_the_main_pool(tmp_path):
    cost_model = CostModel.load(write_cost_model(tmp_path / "cmp", {1: 1000.0, 2: 600.0}, prepare_ms=500.0))
    engine = Engine(load_policy(POLICIES / "disaggregate.gfp").for_cluster(4), cost_model, Cluster(4))
    engine.submit(req("A", 0.0, 10), 0.0)
    (encode,) = engine.schedule(0.0)
    assert encode.stages == ("encode",) and encode.group == (0,)  # the aux pool
    assert encode.duration_est == pytest.approx(1.0)  # text encoders only
    engine.task_done(encode.task_id, 1.0)
    (first,) = engine.schedule(1.0)
    assert first.stages == ("denoise",) and set(first.group) <= {1, 2, 3} and first.steps == (0, 5)
    step = cost_model.step_s(req("A", 0.0, 10).shape, len(first.group))
    assert first.duration_est == pytest.approx(0.5 + 5 * step)  # the DiT's set-up, then 5 steps
    engine.task_done(first.task_id, 2.0)
    (second,) = engine.schedule(2.0)
    assert second.steps == (5, 10) and second.duration_est == pytest.approx(5 * step)
