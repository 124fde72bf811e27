"""Request lifecycle through the engine: admit, cancel, failures, lost ranks, policy swaps, ticks, the log."""

from __future__ import annotations

import json

import pytest

from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.engine import Engine
from gfdit.engine.events import Finished
from gfdit.engine.policy import Why
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.request import Request, State
from gfdit.engine.simulator import simulate

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0}))


def make(cm, policy=None, gpus=2, log=None, **kw):
    return Engine(policy or TestPolicy(), cm, Cluster(gpus), log, **kw)


def only_task(engine):
    (task_id,) = engine.tasks
    return task_id


def test_admit_rejects_with_the_policy_reason_and_duplicates_are_refused(cm):
    admit = lambda v, r: ("too big", Why("test.admit", {})) if r.steps > 10 else (None, None)  # noqa: E731
    engine = make(cm, TestPolicy(admit_fn=admit))
    assert engine.submit(req("A", 0, 50), 0) == "too big"
    assert engine.submit(req("B", 0, 5), 0) is None
    assert engine.submit(req("B", 1, 5), 1) == "duplicate request id 'B'"
    (rejected,) = [e.outcome for e in engine.take_events() if isinstance(e, Finished)]
    assert (rejected.id, rejected.state, rejected.reason) == ("A", "rejected", "too big")


def test_a_raising_admit_hook_admits_and_is_counted(cm):
    engine = make(cm, TestPolicy(admit_fn=lambda v, r: 1 / 0))
    assert engine.submit(req("A", 0, 5), 0) is None
    assert engine.hook_errors == {"admit": 1}


def test_cancel_a_queued_request(cm):
    engine = make(cm)
    engine.submit(req("A", 0, 5), 0)
    assert engine.cancel("A", 1) == "cancelled"
    assert engine.cancel("A", 2) == "already cancelled"
    assert engine.cancel("nope", 2) == "unknown"
    assert engine.schedule(2) == [] and engine.idle


def test_cancel_a_running_request_frees_its_ranks_when_the_task_ends(cm):
    engine = make(cm)
    engine.submit(req("A", 0, 5), 0)
    engine.schedule(0)
    assert engine.cancel("A", 0.5) == "cancelling"
    assert engine.cluster.free == {1}
    assert engine.task_done(only_task(engine), 1.0) == "cancelled"
    assert engine.cluster.free == {0, 1}
    (outcome,) = engine.outcomes
    assert outcome.state == "cancelled" and outcome.finish == 1.0


def test_a_failed_task_is_retried_from_its_state_then_the_request_fails(cm):
    engine = make(cm, max_attempts=2)
    engine.submit(req("A", 0, 3), 0)
    engine.schedule(0)
    engine.task_done(only_task(engine), 1.0)  # encode ok
    (d,) = engine.schedule(1.0)
    assert d.steps == (0, 1)
    assert engine.task_done(d.task_id, 2.0, ok=False, error="CUDA error") == "queued"
    (retry,) = engine.schedule(2.0)
    assert retry.steps == (0, 1) and retry.state_ranks == (0,)  # same task, state kept
    assert engine.task_done(retry.task_id, 3.0, ok=False, error="CUDA error again") == "failed"
    (outcome,) = engine.outcomes
    assert outcome.state == "failed" and "CUDA error again" in outcome.reason and "2 attempts" in outcome.reason
    assert outcome.attempts == 2  # two tries, as the reason says
    assert engine.cluster.free == {0, 1}


def test_a_failed_task_without_intact_state_restarts_from_encode(cm):
    engine = make(cm)
    engine.submit(req("A", 0, 3), 0)
    engine.schedule(0)
    engine.task_done(only_task(engine), 1.0)
    (d,) = engine.schedule(1.0)
    engine.task_done(d.task_id, 2.0, ok=False, error="lost", state_intact=False)
    (again,) = engine.schedule(2.0)
    assert again.stage == "encode" and again.state_ranks == ()


def test_lost_ranks_abort_their_tasks_restart_requests_and_stay_out_until_restored(cm):
    engine = make(cm, gpus=2)
    engine.submit(req("A", 0, 3), 0)
    engine.submit(req("B", 0, 3), 0)
    groups = {d.request_id: d for d in engine.schedule(0)}
    assert groups["A"].group == (0,) and groups["B"].group == (1,)
    engine.task_done(groups["B"].task_id, 1.0)  # B's state now lives on rank 1
    assert sorted(engine.ranks_lost([1], "worker 1 died", 1.5)) == ["B"]
    assert engine.active["B"].ranks == () and not engine.active["B"].encoded
    assert engine.ranks_lost([0], "worker 0 died", 1.6) == ["A"]  # A's running encode is aborted
    assert engine.task_done(groups["A"].task_id, 2.0) == "unknown task"  # its late report is ignored
    assert engine.schedule(2.0) == []  # no usable rank
    assert engine.ranks_restored([0, 1], 3.0) == (0, 1)
    restarted = {d.request_id: d for d in engine.schedule(3.0)}
    assert {d.stage for d in restarted.values()} == {"encode"}


def test_every_accepted_request_ends_even_when_workers_keep_dying(cm):
    engine = make(cm, gpus=1, max_attempts=2)
    engine.submit(req("A", 0, 3), 0)
    engine.schedule(0)
    engine.ranks_lost([0], "died", 0.5)
    engine.ranks_restored([0])
    engine.schedule(1)
    engine.ranks_lost([0], "died again", 1.5)
    (outcome,) = engine.outcomes
    assert outcome.state == "failed" and "died again" in outcome.reason


def test_a_policy_swap_applies_at_the_next_round_and_chunk_to_tasks_not_yet_cut(cm):
    engine = make(cm, TestPolicy(chunk=1))
    engine.submit(req("A", 0, 10), 0)
    engine.schedule(0)
    engine.task_done(only_task(engine), 1)
    (d,) = engine.schedule(1)
    assert d.steps == (0, 1)
    engine.set_policy(TestPolicy(chunk=4, name="bigger"))
    assert engine.policy.name == "test"  # not yet
    engine.task_done(d.task_id, 2)
    (d,) = engine.schedule(2)
    assert engine.policy.name == "bigger" and d.steps == (1, 5)
    engine.task_done(d.task_id, 3)
    engine.set_policy(TestPolicy(chunk=None, name="all"))
    (d,) = engine.schedule(3)
    assert d.steps == (5, 10) and d.stages == ("denoise", "decode")


def test_a_bad_policy_swap_is_refused_and_the_old_one_stays(cm):
    engine = make(cm)
    engine2 = make(cm, gpus=4)
    with pytest.raises(PolicyError, match="no layout for widths"):
        engine2.set_policy(TestPolicy(widths=(1, 2, 4)))
    with pytest.raises(PolicyError, match="no layout for widths"):  # even above the GPU count
        engine.set_policy(TestPolicy(widths=(1, 2, 4)))
    with pytest.raises(PolicyError, match="chunk"):
        engine.set_policy(TestPolicy(chunk=0))
    assert engine.policy.name == "test"


def test_tick_rounds_release_held_requests_and_a_hold_that_never_releases_stalls(cm):
    hold_young = lambda v, r: Why("age", {"age": r.age}) if r.age < 10 else None  # noqa: E731
    ticking = TestPolicy(hold_fn=hold_young, tick=2.0)
    result = simulate(ticking, [req("A", 0, 1)], cm, gpus=1)
    (outcome,) = result.outcomes
    assert outcome.state == "completed" and outcome.finish == pytest.approx(10 + 3)
    untimed = simulate(TestPolicy(hold_fn=hold_young), [req("A", 0, 1)], cm, gpus=1)
    assert untimed.outcomes[0].state == "completed"  # re-judged every hold_recheck_s without a tick
    never = simulate(TestPolicy(hold_fn=lambda v, r: Why("never", {})), [req("A", 0, 1)], cm, gpus=1)
    assert never.outcomes[0].state == "failed" and "stalled" in never.outcomes[0].reason


def test_decision_log_lines_say_who_what_where_and_why(cm, tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path)
    simulate(TestPolicy(stage_width={"encode": 1, "denoise": 2, "decode": 1}), [req("A", 0, 2)], cm, 2,
             decision_log=log)
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    dispatches = [l for l in lines if l["event"] == "dispatch"]
    assert [l["stage"] for l in dispatches] == ["encode", "denoise", "denoise", "decode"]
    first = dispatches[1]
    for key in ("t", "request", "task", "stage", "width", "ranks", "state_ranks", "rule", "values",
                "policy", "revision"):
        assert key in first
    assert first["width"] == 2 and first["ranks"] == [0, 1] and first["state_ranks"] == [0]
    assert first["rule"] == "test.width" and first["values"] == {"stage": "denoise"}
    assert lines[-1]["event"] == "complete"


def test_a_hold_is_rejudged_even_when_no_rank_is_free(cm):
    """`req.paused` counts only time its hold rule held it, not time the cluster stayed full after."""
    policy = TestPolicy(hold_fn=lambda v, r: Why("early", {}) if r.id == "A" and v.now < 2 else None)
    engine = make(cm, policy, gpus=2)
    engine.submit(Request("A", 0.0, 512, 512, 1), 0.0)
    engine.submit(Request("B", 0.0, 512, 512, 1), 0.0)
    assert [d.request_id for d in engine.schedule(0.0)] == ["B"]
    a = engine.active["A"]
    assert a.state is State.HELD
    engine.submit(Request("D", 1.0, 512, 512, 1), 1.0)
    assert [d.request_id for d in engine.schedule(1.0)] == ["D"]  # A still held; now no rank is free
    engine.submit(Request("C", 3.0, 512, 512, 1), 3.0)
    engine.schedule(3.0)  # still no free rank, but A's hold no longer applies
    assert a.state is State.QUEUED and a.held_since is None
    engine.clock.now = 10.0
    assert a.paused == pytest.approx(3.0)


def test_a_request_the_cost_model_cannot_price_is_rejected_counted_and_logged(tmp_path):
    no_width_1 = CostModel.load(write_cost_model(tmp_path / "cm2", {2: 600.0}))
    log = DecisionLog()
    result = simulate(TestPolicy(widths=(2,), stage_width={"encode": 2, "denoise": 2, "decode": 2}),
                      [req("A", 0, 3)], no_width_1, 2, decision_log=log)
    (outcome,) = result.outcomes
    assert outcome.state == "rejected" and "cannot price request A" in outcome.reason
    assert "no layout of width 1" in outcome.reason
    overall = result.metrics["overall"]
    assert (overall["requests"], overall["rejected"], overall["completed"]) == (1, 1, 0)
    (record,) = log.records
    assert (record["event"], record["request"], record["rule"]) == ("reject", "A", "engine:price")
