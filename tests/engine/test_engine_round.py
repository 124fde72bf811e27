"""The scheduling round, step by step: hold, order, width, allocate (skip/shrink/reserve), grow, place."""

from __future__ import annotations

import pytest

from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.engine import Engine
from gfdit.engine.policy import Why
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.request import State

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0, 4: 400.0}))


def wants(table):
    """A width hook: request id -> width."""
    return lambda view, r: (table[r.id], Why("test.width", {}))


def engine_with(policy, cm, gpus=4, per_node=None, log=None):
    return Engine(policy, cm, Cluster(gpus, per_node), log)


def run_first_task(engine, rid, now=0.0):
    """Submit and dispatch one request so it holds ranks."""
    engine.submit(req(rid, now, 5), now)
    (d,) = engine.schedule(now)
    return d


@pytest.mark.parametrize("on_short, expected", [
    ("skip", {"B": (1,)}),  # A (wants 2) does not fit, B backfills rank 1
    ("shrink", {"A": (1,)}),  # A takes the largest allowed width that fits
    ("reserve", {}),  # A blocks the round: nobody after it runs
])
def test_on_short(cm, on_short, expected):
    policy = TestPolicy(widths=(1, 2), on_short=on_short, width_fn=wants({"X": 1, "A": 2, "B": 1}))
    engine = engine_with(policy, cm, gpus=2)
    assert run_first_task(engine, "X").group == (0,)
    engine.submit(req("A", 1, 5), 1)
    engine.submit(req("B", 2, 5), 2)
    got = {d.request_id: d.group for d in engine.schedule(2)}
    assert got == expected


def test_order_by_key_then_arrival_then_id(cm):
    policy = TestPolicy(order_fn=lambda view, r: (-(r.priority or 0),), width_fn=wants({"a": 1, "b": 1, "c": 1, "d": 1}))
    engine = engine_with(policy, cm, gpus=2)
    engine.submit(req("d", 0, 5, priority=1), 0)
    engine.submit(req("c", 0, 5, priority=1), 0)
    engine.submit(req("b", 0, 5, priority=9), 0)
    engine.submit(req("a", 1, 5, priority=9), 1)
    # priority 9 first (b arrived before a), then c before d by id (same arrival)
    assert [d.request_id for d in engine.schedule(1)] == ["b", "a"]
    assert sorted(engine.waiting) == ["c", "d"]


def test_grow_gives_spare_ranks_to_the_most_urgent_then_the_next(cm):
    # 4 GPUs, A (urgent) and B each want 1: A grows 1 -> 2 (the next allowed width
    # that fits), 4 would need 2 more of the 1 left, so the search restarts and B grows to 2.
    grow = lambda view, r: (4, Why("test.grow", {"width": r.width}))  # noqa: E731
    policy = TestPolicy(widths=(1, 2, 4), chunk=1, width_fn=wants({"A": 1, "B": 1}), grow_fn=grow,
                        placement=("lowest",))
    engine = engine_with(policy, cm)
    engine.submit(req("A", 0, 5), 0)
    engine.submit(req("B", 0.5, 5), 0.5)
    got = {d.request_id: d.group for d in engine.schedule(1)}
    assert got == {"A": (0, 1), "B": (2, 3)}


def test_grow_alone_goes_to_the_widest_that_still_gains(cm):
    seen = []
    def grow(view, r):
        seen.append(r.width)  # the width of its last task: 0, it never ran
        return 4, Why("test.grow", {})
    policy = TestPolicy(widths=(1, 2, 4), width_fn=wants({"A": 1}), grow_fn=grow)
    engine = engine_with(policy, cm)
    engine.submit(req("A", 0, 5), 0)
    (d,) = engine.schedule(0)
    assert len(d.group) == 4 and seen[:2] == [0, 0]


def test_grow_respects_its_bound_and_needs_a_real_gain(tmp_path):
    flat = CostModel.load(write_cost_model(tmp_path / "flat", {1: 500.0, 2: 500.0, 4: 100.0}))
    bounded = TestPolicy(widths=(1, 2, 4), width_fn=wants({"A": 1}), grow_fn=lambda v, r: (2, Why("g", {})))
    engine = engine_with(bounded, flat)
    engine.submit(req("A", 0, 5), 0)
    # width 2 is no faster than 1 (500 ms either way, same decode), and 4 is over the bound
    assert len(engine.schedule(0)[0].group) == 1


def test_place_sticky_compact_and_lowest(cm):
    policy = TestPolicy(widths=(1, 2), chunk=1, width_fn=wants({"A": 2, "B": 1, "C": 2}),
                        placement=("sticky", "compact"))
    engine = engine_with(policy, cm, gpus=4, per_node=2)
    engine.submit(req("B", 0, 5), 0)
    assert engine.schedule(0)[0].group == (0,)  # lowest
    engine.submit(req("A", 0.1, 5), 0.1)
    # free: 1, 2, 3. compact: node 1 = {2, 3} fits width 2 in one node
    assert engine.schedule(0.1)[0].group == (2, 3)
    task_a = next(t for t, r in engine.tasks.items() if r.id == "A")
    engine.task_done(task_a, 1.0)
    engine.submit(req("C", 1.0, 5), 1.0)
    got = {d.request_id: d for d in engine.schedule(1.0)}
    assert got["A"].group == (2, 3) and got["A"].state_ranks == (2, 3)  # sticky: no migration
    assert got["A"].migration_s == 0
    assert "C" not in got  # only rank 1 is free: C waits (skip)


def test_sticky_beats_lowest_for_a_request_holding_high_ranks(cm):
    policy = TestPolicy(widths=(1,), chunk=1, width_fn=wants({"A": 1, "B": 1, "C": 1, "D": 1}))
    engine = engine_with(policy, cm, gpus=4)
    for i, rid in enumerate("ABCD"):
        engine.submit(req(rid, i * 0.01, 5), i * 0.01)
    first = {d.request_id: d.group for d in engine.schedule(0.1)}
    assert first == {"A": (0,), "B": (1,), "C": (2,), "D": (3,)}
    for task_id in list(engine.tasks):
        engine.task_done(task_id, 2.0)
    second = {d.request_id: d.group for d in engine.schedule(2.0)}
    assert second == first


def test_pools_restrict_stages(cm):
    policy = TestPolicy(widths=(1, 2), chunk=1, width_fn=wants({"A": 1, "B": 1}),
                        pools={"aux": frozenset({0}), "main": frozenset({1, 2, 3})},
                        stage_pools={"encode": "aux", "decode": "aux", "denoise": "main"})
    engine = engine_with(policy, cm)
    engine.submit(req("A", 0, 1), 0)
    engine.submit(req("B", 0, 1), 0)
    assert [(d.request_id, d.group) for d in engine.schedule(0)] == [("A", (0,))]  # B's encode waits for rank 0
    (task_id,) = engine.tasks
    engine.task_done(task_id, 1)
    got = {d.request_id: (d.stage, d.group) for d in engine.schedule(1)}
    assert got == {"A": ("denoise", (1,)), "B": ("encode", (0,))}


def test_a_pool_too_small_for_every_width_fails_the_request(cm):
    policy = TestPolicy(widths=(2,), chunk=1, width_fn=wants({"A": 2}),
                        pools={"aux": frozenset({0})}, stage_pools={"encode": "aux"})
    engine = engine_with(policy, cm, gpus=2)
    engine.submit(req("A", 0, 1), 0)
    assert engine.schedule(0) == []
    (outcome,) = engine.outcomes
    assert outcome.state == "failed" and "fits its 1 usable ranks" in outcome.reason


def test_a_wanted_width_wider_than_the_cluster_is_capped(cm):
    policy = TestPolicy(widths=(1, 2, 4), width_fn=wants({"A": 4}))
    engine = engine_with(policy, cm, gpus=2)
    engine.submit(req("A", 0, 1), 0)
    assert engine.schedule(0)[0].group == (0, 1)


def test_hold_pauses_and_accumulates_paused_time(cm):
    hold = lambda view, r: Why("test.hold", {}) if view.now < 5 else None  # noqa: E731
    policy = TestPolicy(hold_fn=hold)
    engine = engine_with(policy, cm)
    engine.submit(req("A", 0, 1), 0)
    assert engine.schedule(0) == [] and engine.active["A"].state is State.HELD
    assert engine.schedule(3) == []
    assert engine.active["A"].paused == pytest.approx(3)  # held since 0, still held at 3
    (d,) = engine.schedule(5)
    assert engine.active["A"].paused_total == pytest.approx(5) and engine.active["A"].state is State.RUNNING


def test_incomparable_order_keys_fall_back_to_arrival(cm):
    policy = TestPolicy(order_fn=lambda v, r: ("x",) if r.id == "A" else (1,))
    engine = engine_with(policy, cm, gpus=2)
    engine.submit(req("A", 0, 1), 0)
    engine.submit(req("B", 0.1, 1), 0.1)
    assert [d.request_id for d in engine.schedule(0.1)] == ["A", "B"]
    assert engine.hook_errors == {"order": 2}


def test_bad_policies_are_refused_with_every_problem(cm):
    bad = TestPolicy(widths=(2, 1), chunk=0, on_short="maybe", placement=("random",),
                     stage_pools={"denoise": "nowhere"})
    with pytest.raises(PolicyError) as info:
        engine_with(bad, cm)
    text = str(info.value)
    for part in ("ascending", "chunk", "on_short", "placement", "unknown pool"):
        assert part in text
    with pytest.raises(PolicyError, match=r"no layout for widths \[8\]"):
        engine_with(TestPolicy(widths=(1, 8)), cm, gpus=8)
    split = dict(pools={"aux": frozenset({0}), "main": frozenset({1, 2, 3})},
                 stage_pools={"encode": "aux", "decode": "aux", "denoise": "main"})
    engine_with(TestPolicy(**split), cm, gpus=4)  # chunked: each task fits its own pool
    with pytest.raises(PolicyError, match="pools share 0 rank"):  # one whole task needs ranks in both
        engine_with(TestPolicy(chunk=None, **split), cm, gpus=4)


def test_view_estimates_for_a_candidate(cm):
    seen = {}
    def width(view, r):
        # encode 1 s + 3 steps + decode 1 s, now = 2, deadline 20
        seen.update(step2=view.step(r, 2), est1=view.est(r, 1), est2=view.est(r, 2), finish2=view.finish(r, 2),
                    slack1=view.slack(r, 1), gpu4=view.gpu_time(r, 4), free=view.free, waiting=len(view.waiting))
        return 1, Why("w", {})
    engine = engine_with(TestPolicy(widths=(1, 2, 4), width_fn=width), cm)
    engine.submit(req("A", 2, 3, deadline=20), 2)
    engine.schedule(2)
    assert seen["step2"] == pytest.approx(0.6)
    assert seen["est1"] == pytest.approx(1 + 3 * 1.0 + 1)
    assert seen["est2"] == pytest.approx(1 + 3 * 0.6 + 1)
    assert seen["finish2"] == pytest.approx(2 + 3.8)
    assert seen["slack1"] == pytest.approx(20 - 2 - 5)
    assert seen["gpu4"] == pytest.approx(3 * 0.4 * 4)
    assert (seen["free"], seen["waiting"]) == (4, 1)


def test_compact_prefers_the_fullest_node_that_fits(cm):
    # 6 ranks, 2 per node. Busy: 0 (node 0) and 2 (node 1). Free: 1 | 3 | 4, 5.
    # A width-1 request goes to the node with the fewest free ranks that fits: node 0 (rank 1),
    # keeping node 2 whole for a width-2 group.
    policy = TestPolicy(widths=(1, 2), chunk=1, placement=("compact",),
                        width_fn=wants({"x": 1, "y": 1, "z": 1, "A": 1}))
    engine = engine_with(policy, cm, gpus=6, per_node=2)
    for rid in "xyz":
        engine.submit(req(rid, 0, 5), 0)
    engine.schedule(0)  # x -> 0, y -> 1 (the fuller node), z -> 2
    y_task = next(t for t, r in engine.tasks.items() if r.id == "y")
    engine.task_done(y_task, 1)
    engine.cancel("y", 1)
    engine.submit(req("A", 1, 5), 1)
    (d,) = engine.schedule(1)
    assert d.request_id == "A" and d.group == (1,)


def test_dispatch_carries_migration_bytes_and_time(tmp_path):
    cm = CostModel.load(write_cost_model(tmp_path / "m", {1: 1000.0, 2: 600.0}, migration={
        "bandwidth_Bps": 1e6, "fixed_s": 0.5, "bytes_per_token": 10, "bytes_per_text_token": 1, "fixed_bytes": 0}))
    policy = TestPolicy(stage_width={"encode": 1, "denoise": 2, "decode": 1})
    engine = engine_with(policy, cm, gpus=2)
    engine.submit(req("A", 0, 2, tokens=1000), 0)
    (encode,) = engine.schedule(0)
    assert encode.migration_bytes == 0 and encode.state_ranks == ()
    engine.task_done(encode.task_id, 1)
    (step,) = engine.schedule(1)
    # 10 B x 1000 tokens + 1 B x 512 text tokens = 10512 B; one round: 0.5 + 10512 / 1e6
    assert step.state_ranks == (0,) and step.group == (0, 1)
    assert step.migration_bytes == 10512 and step.migration_s == pytest.approx(0.5 + 0.010512)


def test_a_pool_emptied_by_lost_ranks_waits_for_them(cm):
    policy = TestPolicy(widths=(1,), chunk=1, width_fn=wants({"A": 1}),
                        pools={"aux": frozenset({0})}, stage_pools={"encode": "aux"})
    engine = engine_with(policy, cm, gpus=2)
    engine.ranks_lost([0], "worker 0 died", 0)
    engine.submit(req("A", 0, 1), 0)
    assert engine.schedule(0) == [] and "A" in engine.active  # waits, does not fail
    engine.ranks_restored([0])
    assert engine.schedule(1)[0].group == (0,)
