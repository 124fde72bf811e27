"""The lean round (gfdit/engine/lean.py) decides exactly what the general round decides.

Whole simulations are run twice, with the lean round and with every round taken by the general
`run_round` (`LeanCheck.of` answering False), and compared: every outcome, every task span, the
round count and the rule errors. The policies cover what the lean round handles itself (order,
promises, fresh width answers, capping, growth, each placement) and what makes it give up (a hook
that raises, an order key that is NaN), on traces with retries and several nodes.
"""

from __future__ import annotations

import math
import random

import pytest

from gfdit.dsl import compile_policy
from gfdit.engine import lean
from gfdit.engine.costmodel import CostModel
from gfdit.engine.lean import LeanCheck, LeanQueue
from gfdit.engine.request import Request
from gfdit.engine.simulator import simulate
from gfdit.engine.tracked import Clock, Tracked
from gfdit.engine.view import Round
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import generate, load_profile
from gfdit.policies import resolve_policy

CM = CostModel.load(shipped_cost_model("qwen-h20"))

HEAD = "policy p\nparam chunk = 1\nparam widths = {1, 2, 4}\nclass S { slo = 1.5x }\nclass default { slo = 2x }\n"
TEXTS = {
    "grow, lowest": HEAD + "order by req.deadline\nwidth * = min k in widths where finish(k) <= req.deadline "
                           "else argmin k in widths by finish(k)\ngrow denoise\nplace lowest\n",
    "max-first, compact": HEAD + "order by -req.priority, req.t_single\nwidth denoise = max k in widths where "
                                 "slack(k) >= 0 else 1\nwidth encode, decode = 1\nplace compact\n",
    "a width rule that fails": HEAD + "order by req.arrival\nwidth denoise = if req.steps_left > 4 then 2 else "
                                      "(if slack(max(req.width, 1) * 3) < 0s then 1 else 4)\n"  # no width 3
                                      "width encode, decode = 1\n",
    "an order key that is NaN": "policy p\nparam chunk = 1\nparam widths = {1, 2, 4}\n"  # no deadlines: inf
                                "order by req.deadline - req.deadline, -req.steps\nwidth * = 1\n",
    "conditional width": HEAD + "order by req.deadline\nwidth denoise when count(waiting) > 3 = 1\n"
                                "width denoise = argmin k in widths by finish(k)\nwidth encode, decode = 1\n",
}


def _policies() -> list:
    made = [lambda name=name: resolve_policy(name, {"chunk": "1"}) for name in
            ("edf_best_fit", "edf_greedy", "fcfs", "sjf", "srtf", "static_sp", "slo_grow")]
    made += [lambda name=name: resolve_policy(name, {}) for name in ("edf_best_fit", "fcfs", "static_sp")]
    return made + [lambda text=text: compile_policy(text, "p.gfp") for text in TEXTS.values()]


def _workload(profile: str, load: float, seed: int) -> Workload:
    workload = Workload.from_json(generate(load_profile(profile), CM, 4, load, seed, duration_scale=0.3))
    workload.requests = workload.requests[:150]
    return workload


def _general_only(monkeypatch) -> None:
    monkeypatch.setattr(LeanCheck, "of", lambda self, policy, class_facts: False)


def _same(a, b) -> None:
    assert a.outcomes == b.outcomes and a.spans == b.spans and a.rounds == b.rounds
    assert a.rule_errors == b.rule_errors and a.hook_errors == b.hook_errors


@pytest.mark.parametrize("profile,load,seed", [("burst", 1.2, 5), ("short", 0.9, 3), ("flash", 1.1, 7)])
def test_simulations_are_the_same_with_the_general_round_alone(profile, load, seed, monkeypatch):
    workload = _workload(profile, load, seed)
    options = [{"record_spans": True}, {"record_spans": True, "fail_rate": 0.05, "seed": 2},
               {"record_spans": True, "ranks_per_node": 2}]
    runs = [(make, kw) for make in _policies() for kw in options]
    lean_runs = [simulate(make(), workload, CM, 4, time_rounds=False, **kw) for make, kw in runs]
    _general_only(monkeypatch)
    general_runs = [simulate(make(), workload, CM, 4, time_rounds=False, **kw) for make, kw in runs]
    for a, b in zip(lean_runs, general_runs, strict=True):
        _same(a, b)
        assert len(a.outcomes) == len(workload.requests)


def test_a_width_wider_than_the_cluster_is_capped_alike(monkeypatch):
    workload = _workload("burst", 1.0, 2)
    text = HEAD + "order by req.deadline\nwidth * = 4\nplace lowest\n"  # on 3 GPUs: capped to 2
    lean_run = simulate(compile_policy(text, "p.gfp"), workload, CM, 3, time_rounds=False, record_spans=True)
    _general_only(monkeypatch)
    _same(lean_run, simulate(compile_policy(text, "p.gfp"), workload, CM, 3, time_rounds=False, record_spans=True))
    assert {len(span.group) for span in lean_run.spans} == {2}
    assert {o.state for o in lean_run.outcomes} == {"completed"}


def test_a_lone_request_grows_into_the_free_ranks_before_it_stays_on_its_own(monkeypatch):
    alone = [Request(f"a{i}", i * 100.0, 1024, 1024, 8) for i in range(3)]  # each runs alone on 4 GPUs
    text = HEAD + "order by req.deadline\nwidth * = 1\ngrow denoise\nplace sticky\n"
    lean_run = simulate(compile_policy(text, "p.gfp"), alone, CM, 4, time_rounds=False, record_spans=True)
    _general_only(monkeypatch)
    _same(lean_run, simulate(compile_policy(text, "p.gfp"), alone, CM, 4, time_rounds=False, record_spans=True))
    assert {len(span.group) for span in lean_run.spans if span.stage == "denoise"} == {4}


def test_the_lean_round_decides_most_rounds_and_gives_up_where_it_must(monkeypatch):
    taken = {"lean": 0, "gave up": 0}
    real = lean.lean_round

    def counted(*args):
        grants = real(*args)
        taken["gave up" if grants is None else "lean"] += 1
        return grants

    monkeypatch.setattr("gfdit.engine.engine.lean_round", counted)
    workload = _workload("short", 0.9, 3)
    result = simulate(resolve_policy("edf_best_fit", {"chunk": "1"}), workload, CM, 4, time_rounds=False)
    assert taken["lean"] > 0.9 * result.rounds and taken["gave up"] == 0
    taken.update(lean=0)
    failing = simulate(compile_policy(TEXTS["a width rule that fails"], "p.gfp"), workload, CM, 4, time_rounds=False)
    assert taken["gave up"] > 0 and failing.rule_errors  # the general round reported the errors
    taken.update(lean=0, **{"gave up": 0})
    no_deadlines = [Request(f"n{i}", i * 0.5, 512, 512, 6) for i in range(30)]  # inf - inf: NaN keys
    nan = simulate(compile_policy(TEXTS["an order key that is NaN"], "p.gfp"), no_deadlines, CM, 2,
                   time_rounds=False, record_spans=True)
    assert taken["lean"] == 0 and taken["gave up"] > 0
    _general_only(monkeypatch)
    _same(nan, simulate(compile_policy(TEXTS["an order key that is NaN"], "p.gfp"), no_deadlines, CM, 2,
                        time_rounds=False, record_spans=True))


def _tracked(i: int, clock: Clock) -> Tracked:
    return Tracked(Request(f"r{i:03d}", float(i % 7), 512, 512, 10, deadline=float(i * 37 % 50)), None, CM, clock)


def _churn(steps: int):
    """A LeanQueue and the waiting requests it tracks, after each of `steps` random arrivals and
    departures: yields (step, queue, waiting)."""
    clock, rng = Clock(), random.Random(4)
    queue, waiting = LeanQueue(), {}
    for step in range(steps):
        if waiting and rng.random() < 0.45:
            req = rng.choice(list(waiting.values()))
            del waiting[req.id]
            queue.discard(req)
        else:
            req = _tracked(step, clock)
            waiting[req.id] = req
            queue.add(req)
        yield step, queue, waiting


def test_the_kept_order_is_the_sorted_order_through_arrivals_and_departures():
    policy = compile_policy(HEAD + "order by req.deadline, req.arrival\nwidth * = 1\n", "p.gfp")
    view = Round(0.0, 4, 4, 0, list, False)
    for step, queue, waiting in _churn(400):
        if step % 3 == 0:
            got = [item[-1] for item in queue.ordered(policy, view, waiting)]
            assert got == sorted(waiting.values(), key=lambda t: (policy.order_key(view, t), t.arrival, t.id))
    assert len(waiting) > 10


@pytest.mark.parametrize("key", [
    lambda q: ((math.nan,) if q.deadline % 3 else (1.0,), q.deadline),  # a NaN inside an element
    lambda q: (frozenset({q.deadline % 4, q.arrival % 3}), q.deadline),  # sets: ordered by inclusion
])
def test_keys_that_are_not_totally_ordered_leave_no_request_in_the_queue_twice_or_lost(key):
    """Such keys break `order_key`'s contract: the kept queue may order them otherwise than a sort
    does, but a request that stops waiting must leave the queue itself (a search by its key can land
    on another one: that one would be lost, and this one started again)."""
    policy = compile_policy(HEAD + "order by req.deadline\nwidth * = 1\n", "p.gfp")
    policy.order_key = lambda view, q: key(q)
    view = Round(0.0, 4, 4, 0, list, False)
    for _, queue, waiting in _churn(300):
        got = sorted(item[-1].id for item in queue.ordered(policy, view, waiting))
        assert got == sorted(waiting)
    assert len(waiting) > 10


@pytest.mark.parametrize("key", [
    lambda q: (q.priority,) if q.id[-1] in "13579" else (q.priority, -q.arrival),  # two lengths
    lambda q: frozenset({q.priority, round(q.arrival, 3)}),  # not a tuple: compared as a set, by inclusion
])
def test_order_keys_the_flat_queue_cannot_hold_go_to_the_general_round(key, monkeypatch):
    """The kept queue files keys as flat tuples, which compare like the nested (key, arrival, id)
    only for tuple keys of one length: for others the round must be the general one's."""
    workload = _workload("burst", 1.2, 5)

    def policy():
        made = compile_policy(HEAD + "order by req.priority\nwidth * = 1\n", "p.gfp")
        made.order_key = lambda view, q: key(q)  # still fixed for a request's life (static_order)
        return made

    lean_run = simulate(policy(), workload, CM, 4, time_rounds=False, record_spans=True)
    _general_only(monkeypatch)
    _same(lean_run, simulate(policy(), workload, CM, 4, time_rounds=False, record_spans=True))
