"""The lean round decides what the general round decides under every engine input, not only the
simulator's: random sequences of arrivals (some pinned to ranks), task ends (some failing, some
losing their state), cancels, lost and restored ranks (which restart requests), policy swaps and a
shadow policy's rounds (`Engine.decide`, which leaves its own promises on the requests) are driven
twice, with the lean round and with every round taken by `run_round` (`LeanCheck.of` answering
False), and every answer, dispatch and outcome is compared.
"""

from __future__ import annotations

import random

import pytest

from gfdit.dsl import compile_policy
from gfdit.engine import lean
from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.engine import Engine
from gfdit.engine.lean import LeanCheck
from gfdit.engine.request import Request
from gfdit.engine.workload import shipped_cost_model

CM = CostModel.load(shipped_cost_model("qwen-h20"))
HEAD = ("policy {name}\nparam chunk = 2\nparam widths = {{1, 2, 4}}\n"
        "class S {{ slo = 1.5x }}\nclass default {{ slo = 3x }}\n")
BODIES = {  # stage-dependent widths (a restart changes the answer), a choice, growth, a width of 1 for all
    "by_stage": "order by req.deadline\nwidth encode, decode = 1\nwidth denoise = 4\nplace sticky\n",
    "choice": "order by req.deadline, req.arrival\nwidth * = min k in widths where finish(k) <= req.deadline "
              "else argmin k in widths by finish(k)\ngrow denoise when slack(max(req.width, 1)) < 0\n",
    "ones": "order by req.arrival\nwidth * = 1\nplace compact\n",
}


def _policies() -> list:
    return [compile_policy(HEAD.format(name=name) + body, f"{name}.gfp") for name, body in BODIES.items()]


def _step(engine: Engine, rng: random.Random, now: float, running: set, policies: list, shadow) -> list:
    """One random input (or a round), and what the engine answered."""
    r, n = rng.random(), len(engine.outcomes) + len(engine.active)
    if r < 0.3:
        pin = frozenset(rng.sample(range(4), 2)) if rng.random() < 0.06 else None
        request = Request(f"r{n}", now, 512, rng.choice([512, 1024]), rng.choice([4, 8]),
                          request_class=rng.choice(["S", "default"]), ranks=pin)
        return ["submit", engine.submit(request, now)]
    if r < 0.55 and running:
        task = rng.choice(sorted(running))
        running.discard(task)
        ok = rng.random() < 0.85
        return ["done", engine.task_done(task, now, ok, None if ok else "boom", rng.random() < 0.5)]
    if r < 0.6 and engine.active:
        return ["cancel", engine.cancel(rng.choice(sorted(engine.active)), now)]
    if r < 0.63:
        hit = engine.ranks_lost([rng.randrange(4)], "gone", now)
        running.intersection_update(engine.tasks)  # the tasks on the lost rank were aborted
        return ["lost", hit]
    if r < 0.67:
        return ["back", list(engine.ranks_restored(rng.sample(range(4), 2), now))]
    if r < 0.69:
        engine.set_policy(rng.choice(policies))
        return ["swap"]
    decided = engine.decide(shadow, now, explain=False) if rng.random() < 0.25 else None  # leaves the
    dispatches = engine.schedule(now)  # shadow's promises on the requests
    running.update(d.task_id for d in dispatches)
    return ["round", decided is None, [(d.task_id, d.stages, d.steps, d.group, d.state_ranks) for d in dispatches]]


def _drive(seed: int) -> list:
    rng = random.Random(seed)
    policies = _policies()
    engine = Engine(policies[0], CM, Cluster(4, 2), keep_ended=None)
    shadow = policies[2]
    now, running, answers = 0.0, set(), []
    for _ in range(300):
        now += rng.expovariate(2.0)
        answers.append(_step(engine, rng, now, running, policies, shadow))
    return answers + [engine.outcomes, engine.rounds, dict(engine.rule_errors), sorted(engine.waiting)]


@pytest.mark.parametrize("seed", range(12))
def test_every_input_leaves_the_same_decisions_as_the_general_round(seed, monkeypatch):
    lean = _drive(seed)
    monkeypatch.setattr(LeanCheck, "of", lambda self, policy, class_facts: False)
    assert lean == _drive(seed)


def test_a_request_restarted_while_it_waits_is_asked_its_width_again():
    text = HEAD.format(name="by_stage") + BODIES["by_stage"]
    engine = Engine(compile_policy(text, "by_stage.gfp"), CM, Cluster(4))
    for i in range(4):
        engine.submit(Request(f"r{i}", 0.0, 512, 512, 8), 0.0)
    encodes = engine.schedule(0.0)  # one rank each
    for dispatch in encodes[1:]:
        engine.task_done(dispatch.task_id, 1.0)
    assert engine.schedule(1.0) == []  # r1..r3 want 4 ranks for denoise, 3 are free: each promised 4
    assert engine.schedule(1.2) == []  # passed over by their promises (LeanQueue.passed)
    assert engine.ranks_lost([1], "gone", 1.5) == ["r1"]  # r1's state was on rank 1 alone: back to encode
    engine.ranks_restored([1], 1.6)
    started = engine.schedule(1.6)  # a lean round: r1's promise of 4 was for its denoise
    assert [(d.request_id, d.stage, len(d.group)) for d in started] == [("r1", "encode", 1)]


def test_a_request_that_leaves_the_passed_over_head_lets_the_next_one_be_asked():
    """r1..r3 are passed over by their promises (LeanQueue.passed); r1 is cancelled, r4 arrives and
    is filed after r3: the round must ask r4 (it fits), not pass over three requests again."""
    text = HEAD.format(name="by_stage") + BODIES["by_stage"]
    engine = Engine(compile_policy(text, "by_stage.gfp"), CM, Cluster(4))
    for i in range(4):
        engine.submit(Request(f"r{i}", 0.0, 512, 512, 8), 0.0)
    for dispatch in engine.schedule(0.0)[1:]:
        engine.task_done(dispatch.task_id, 1.0)
    assert engine.schedule(1.0) == [] and engine.schedule(1.2) == []  # r0 encodes, r1..r3 want 4 of 3
    engine.cancel("r1", 1.3)
    engine.submit(Request("r4", 1.3, 512, 512, 8), 1.3)  # its deadline is the latest: filed after r3
    started = engine.schedule(1.4)
    assert [(d.request_id, d.stage, len(d.group)) for d in started] == [("r4", "encode", 1)]


def test_a_request_cancelled_in_the_passed_over_head_does_not_hide_the_one_after_it():
    """P1 is passed over by its promise of 4 (LeanQueue.passed), X after it wants 2 of the 1 free
    rank; P1 is cancelled and a task ends: X (2 now fit) must be asked, not passed over in P1's place."""
    text = HEAD.format(name="choice") + BODIES["choice"]
    engine = Engine(compile_policy(text, "choice.gfp"), CM, Cluster(4))
    for name in "ABC":  # no deadline to speak of: one rank each
        engine.submit(Request(name, 0.0, 1024, 1024, 20, deadline=1e6), 0.0)
    encodes = {d.request_id: d.task_id for d in engine.schedule(0.0)}
    assert sorted(encodes) == ["A", "B", "C"]
    engine.submit(Request("P1", 0.01, 1024, 1024, 20, deadline=1.01), 0.01)  # none meets it: the fastest, 4
    assert engine.schedule(0.01) == [] and engine.schedule(0.02) == []  # the second answer is promised
    engine.submit(Request("X", 0.025, 1024, 1024, 20, deadline=10.025), 0.025)  # 2 meets it, 1 does not
    assert engine.schedule(0.03) == []  # P1 passed over by its promise, X asked: 2 > 1 free
    engine.cancel("P1", 0.035)
    engine.task_done(encodes["A"], 0.04)  # 2 free
    started = engine.schedule(0.04)
    assert [(d.request_id, d.stage, len(d.group)) for d in started] == [("X", "encode", 2)]


def test_a_swap_to_another_order_files_the_waiting_requests_by_its_own_keys(monkeypatch):
    """A request keeps the flat key a LeanQueue computed for it (`lean_key`) for the policy it was
    computed for alone: after a swap to a policy ordering the other way, with keys of another length,
    the next round is still a lean one and starts the most urgent request of the new order."""
    taken = []  # what each lean round answered (None: it gave up)
    real = lean.lean_round

    def recorded(*args):
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr("gfdit.engine.engine.lean_round", recorded)
    head = "policy {}\nparam chunk = 2\nparam widths = {{1, 2}}\n"
    wide = compile_policy(head.format("wide") + "order by req.deadline\nwidth * = 2\n", "wide.gfp")
    latest_first = compile_policy(head.format("latest_first") + "order by -req.deadline, req.steps\nwidth * = 1\n",
                                  "latest_first.gfp")
    engine = Engine(wide, CM, Cluster(3))
    engine.submit(Request("busy", 0.0, 512, 512, 8), 0.0)
    assert [len(d.group) for d in engine.schedule(0.0)] == [2]  # one rank left
    for rid, deadline in (("r1", 100.0), ("r2", 50.0), ("r3", 200.0)):
        engine.submit(Request(rid, 0.1, 512, 512, 8, deadline=deadline), 0.1)
    assert engine.schedule(0.1) == []  # filed by deadline (r2, r1, r3); each wants 2 of the 1 free rank
    engine.set_policy(latest_first)
    started = engine.schedule(0.2)
    assert [(d.request_id, len(d.group)) for d in started] == [("r3", 1)]  # the latest deadline first
    assert taken[-1] is not None  # decided by the lean round, on the new policy's keys
