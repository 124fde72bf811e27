"""The engine as the only owner of request state: its events, `fail`, and bounded memory."""

from __future__ import annotations

import math
import random

import pytest

from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.engine import Engine
from gfdit.engine.events import Advanced, Finished, Held, Retrying, TaskStarted
from gfdit.engine.executor import ExecutorGone, RanksLost, SimExecutor, TaskEnd, feed
from gfdit.engine.metrics import compute_metrics, percentile
from gfdit.engine.policy import Why
from gfdit.engine.request import Outcome
from gfdit.engine.simulator import simulate
from gfdit.engine.sketch import Sketch
from gfdit.engine.tally import OTHER, Tally, class_label

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0}))


def make(cm, policy=None, gpus=2, **kw):
    return Engine(policy or TestPolicy(), cm, Cluster(gpus), **kw)


def kinds(events):
    return [type(e).__name__ for e in events]


def test_a_request_is_narrated_by_typed_events_in_order(cm):
    engine = make(cm, gpus=1)
    engine.submit(req("A", 0, 1), 0)
    (encode,) = engine.schedule(0)
    assert encode.request is not None and encode.request.id == "A"  # the executor gets the request
    (started,) = engine.take_events()
    assert isinstance(started, TaskStarted) and started.first and started.dispatch is encode
    engine.task_done(encode.task_id, 1.0)
    (step,) = engine.schedule(1.0)
    engine.task_done(step.task_id, 2.0)
    (decode,) = engine.schedule(2.0)
    engine.task_done(decode.task_id, 3.0, outputs="the image")
    events = engine.take_events()
    assert kinds(events) == ["Advanced", "TaskStarted", "Advanced", "TaskStarted", "Advanced", "Finished"]
    assert isinstance(events[2], Advanced) and events[2].dispatch is step  # the step chunk moved it on
    assert [e.first for e in events if isinstance(e, TaskStarted)] == [False, False]
    assert isinstance(events[-1], Finished) and events[-1].outputs == "the image"
    assert events[-1].outcome.state == "completed" and engine.take_events() == []


def test_held_is_told_once_per_hold_and_a_failed_task_says_it_retries(cm):
    hold = {"on": True}
    policy = TestPolicy(hold_fn=lambda v, r: Why("test.hold", {}) if hold["on"] else None)
    engine = make(cm, policy)
    engine.submit(req("A", 0, 2), 0)
    engine.schedule(0)
    engine.schedule(1)  # still held: no second event
    (held,) = engine.take_events()
    assert isinstance(held, Held) and held.request_id == "A" and "test.hold" in held.reason
    hold["on"] = False
    (d,) = engine.schedule(2)
    engine.task_done(d.task_id, 3, ok=False, error="CUDA error")
    events = engine.take_events()
    assert kinds(events) == ["TaskStarted", "Retrying"] and "CUDA error" in events[1].reason


def test_fail_ends_a_waiting_request_at_once_and_a_running_one_at_its_task_end(cm):
    engine = make(cm)
    engine.submit(req("A", 0, 3), 0)
    engine.submit(req("B", 0, 3), 0)
    engine.schedule(0)
    engine.submit(req("C", 0.5, 3), 0.5)
    assert engine.fail("C", "workers gone", 0.6) == "failed"
    assert engine.cancel("A", 0.7) == "cancelling"
    assert engine.fail("A", "workers gone", 0.8) == "failing"  # a fail overrides a pending cancel
    assert engine.cancel("B", 0.9, reason="server stopped") == "cancelling"
    for task_id in list(engine.tasks):
        engine.task_done(task_id, 1.0)
    ends = {o.id: (o.state, o.reason) for o in engine.outcomes}
    assert ends == {"C": ("failed", "workers gone"), "A": ("failed", "workers gone"),
                    "B": ("cancelled", "server stopped")}
    assert engine.fail("A", "again", 2.0) == "already failed" and engine.fail("Z", "x", 2.0) == "unknown"
    assert engine.idle and engine.cluster.free == {0, 1}


def test_executor_events_reach_the_engine_through_feed(cm):
    engine = make(cm)
    engine.submit(req("A", 0, 3), 0)
    engine.submit(req("B", 0, 3), 0)
    a, b = engine.schedule(0)
    assert feed(engine, TaskEnd(a.task_id, 1.0), 1.0) == "queued"
    feed(engine, RanksLost((b.group[0],), "worker died"), 1.5)
    assert any(isinstance(e, Retrying) and e.request_id == "B" for e in engine.take_events())
    feed(engine, ExecutorGone("workers could not be restarted"), 2.0)
    assert engine.idle and {o.state for o in engine.outcomes} == {"failed"}
    assert all(o.reason == "workers could not be restarted" for o in engine.outcomes)


def test_the_engine_remembers_a_bounded_window_of_ended_requests(cm):
    engine = make(cm, TestPolicy(chunk=None), keep_ended=10)
    executor = SimExecutor()
    for i in range(200):  # one at a time: each takes 3 s (whole trajectory at width 1)
        now = 4.0 * i
        engine.submit(req(f"r{i}", now, 1), now)
        for d in engine.schedule(now):
            executor.start(d, now)
        for end in executor.poll(now + 3.5):
            feed(engine, end, now + 3.5)
        engine.take_events()
    assert len(engine.outcomes) == 10 and [o.id for o in engine.outcomes][-1] == "r199"
    assert len(engine._ended) == 10 and engine.idle
    assert engine.submit(req("r199", 900, 1), 900) == "duplicate request id 'r199'"  # within the window


def test_the_simulator_keeps_every_outcome_from_the_events(cm):
    trace = [req(f"r{i}", i * 0.1, 2) for i in range(40)]
    result = simulate(TestPolicy(), trace, cm, gpus=2)
    assert sorted(o.id for o in result.outcomes) == sorted(r.id for r in trace)


def test_the_sketch_is_within_one_percent_of_the_exact_percentile():
    rng = random.Random(7)
    values = [rng.lognormvariate(0, 2) for _ in range(5000)] + [0.0] * 50
    sketch = Sketch()
    for v in values:
        sketch.add(v)
    for q in (0, 1, 50, 90, 95, 99, 100):
        assert sketch.percentile(q) == pytest.approx(percentile(values, q), rel=0.01, abs=1e-6), q
    assert sketch.count == len(values) and sketch.total == pytest.approx(sum(values))
    assert len(sketch._buckets) < 1500 and math.isnan(Sketch().percentile(50))


def test_the_tally_equals_a_recount_of_the_outcomes(cm):
    trace = [req(f"r{i}", i * 0.3, 1 + i % 4, deadline=i * 0.3 + 6, cls="ab"[i % 2]) for i in range(60)]
    result = simulate(TestPolicy(), trace, cm, gpus=2)
    tally = Tally()
    for o in result.outcomes:
        tally.add(o)
    got, want = tally.metrics(2), compute_metrics(result.outcomes, 2)
    assert set(got["classes"]) == set(want["classes"]) == {"a", "b"}
    for name, block in [("overall", got["overall"])] + list(got["classes"].items()):
        exact = want["overall"] if name == "overall" else want["classes"][name]
        assert block.keys() == exact.keys()
        for key, value in block.items():
            if key.startswith("p") and key.endswith("latency_s"):
                assert value == pytest.approx(exact[key], rel=0.01), (name, key)
            else:
                assert value == pytest.approx(exact[key], rel=1e-9), (name, key)


def test_undeclared_classes_share_one_label():
    declared = {"S", "M"}
    assert [class_label(c, declared) for c in ("S", "default", "zzz")] == ["S", "default", OTHER]
    tally = Tally()
    for i in range(1200):
        tally.add(Outcome(f"r{i}", f"class{i}", "completed", 0.0, 9.0, 1.0, 1.0),
                  class_label(f"class{i}", declared))
    assert list(tally.metrics(1)["classes"]) == [OTHER] and tally.counts() == {"completed": 1200}
