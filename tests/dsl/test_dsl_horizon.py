"""Kept width answers (gfdit/dsl/horizon.py) and width promises (gfdit/engine/promise.py) decide
exactly what a fresh evaluation decides: at every instant, for every rule shape, and over whole
simulations.

The instants include the exact times at which a width's test flips (`now + est(k) == bound`) and
times a hair either side, where a horizon computed without its safety margin would be wrong.
"""

from __future__ import annotations

import math

import pytest

from gfdit.dsl import compile_fast, compile_policy
from gfdit.dsl import policy as compiled_policy
from gfdit.engine.costmodel import CostModel
from gfdit.engine.promise import promised
from gfdit.engine.request import Request
from gfdit.engine.simulator import simulate
from gfdit.engine.tracked import Clock, Tracked
from gfdit.engine.view import Round
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import generate, load_profile
from gfdit.policies import resolve_policy

CM = CostModel.load(shipped_cost_model("qwen-h20"))

RULES = [  # (rule, kept: whether an answer is kept at all)
    ("min k in widths where finish(k) <= req.deadline else argmin k in widths by finish(k)", True),
    ("min k in widths where finish(k) < req.deadline else 4", True),
    ("max k in widths where slack(k) >= 0 else 1", True),
    ("min k in widths where slack(k) > 3s else argmax k in widths by slack(k)", True),
    ("min k in widths where finish(k) >= req.deadline else argmin k in widths by finish(k)", True),  # grows
    ("max k in widths where req.deadline < finish(k) else 2", True),  # grows, bound on the left
    ("argmin k in widths by finish(k)", True),
    ("argmax k in widths by slack(k)", True),
    ("min k in widths where finish(k) <= req.deadline - 1s else 1", False),  # not one the fast path takes
    ("min k in widths where finish(k) == req.deadline else 1", False),  # == can flip back: never kept
    ("max k in widths where slack(k) >= req.waited else 1", False),  # its bound moves with the clock
]


def _policy(rule: str):
    return compile_policy(f"policy p\nparam widths = {{1, 2, 4}}\norder by req.arrival\nwidth * = {rule}\n",
                          "p.gfp")


def _tracked(clock: Clock, deadline: float, steps_done: int = 3) -> Tracked:
    tracked = Tracked(Request("r", 0.0, 1024, 1024, 20, deadline=deadline), None, CM, clock)
    tracked.encoded, tracked.steps_done = True, steps_done
    return tracked


def _instants(deadline: float) -> list[float]:
    """A grid, plus each width's flip time (finish and slack forms) and its neighbours in floats."""
    probe = _tracked(Clock(), deadline)
    times = [i * 0.37 for i in range(60)]
    for k in (1, 2, 4):
        for x in (deadline, deadline - 3.0):
            t = x - probe.remaining_s(k)
            times += [t, math.nextafter(t, -math.inf), math.nextafter(t, math.inf), t - 1e-7, t + 1e-7]
    return sorted(t for t in times if t >= 0.0)


@pytest.mark.parametrize("rule,kept", RULES)
@pytest.mark.parametrize("deadline", [6.0, 14.5, 40.0, math.inf])
def test_a_kept_answer_is_the_fresh_answer_at_every_instant(rule, kept, deadline):
    policy = _policy(rule)
    clock = Clock()
    waiting = _tracked(clock, deadline)  # asked at every instant: keeps what it may
    hits = 0
    for now in _instants(deadline):
        clock.now = now
        view = Round(now, 4, 4, 0, lambda: [], explain=False)
        before = promised(waiting, policy, now)
        got = policy.width(view, waiting)[0]
        fresh = policy.width(view, _tracked(clock, deadline))[0]
        assert got == fresh, (rule, deadline, now)
        if before is not None:
            hits += 1
            assert before[0] == fresh, (rule, deadline, now)
    assert (hits > 0) == kept or math.isinf(deadline), rule


def test_progress_or_a_new_policy_voids_a_promise():
    policy = _policy(RULES[0][0])
    clock = Clock(1.0)
    tracked = _tracked(clock, 30.0)
    view = Round(1.0, 4, 4, 0, lambda: [], explain=False)
    policy.width(view, tracked)  # the first answer at this progress keeps nothing (horizon.recall)
    width = policy.width(view, tracked)[0]
    assert promised(tracked, policy, 1.0)[0] == width
    assert promised(tracked, _policy(RULES[0][0]), 1.0) is None  # another policy object
    assert promised(tracked, policy, 0.5) is None  # before it was made
    tracked.steps_done += 1
    assert promised(tracked, policy, 1.0) is None


class NearTies:
    """A cost model whose step times at widths 1 and 2 differ by one rounding: rem(1) = 0.1 + 0.2 =
    0.30000000000000004, rem(2) = 0.3. `now + rem` ties at some instants and not at others."""

    def parts(self, shape, width):
        return 0.0, {1: 0.1 + 0.2, 2: 0.3, 4: 1.0}[width], 0.0

    def prepare_s(self, shape, width):
        return 0.0

    def t_single(self, shape):
        return 1.0


@pytest.mark.parametrize("rule", ["argmin k in widths by finish(k)",
                                  "min k in widths where finish(k) <= 0s else argmin k in widths by finish(k)",
                                  "argmax k in widths by slack(k)"])
def test_widths_tied_by_rounding_are_never_kept_past_the_tie(rule):
    policy = _policy(rule)
    clock = Clock()

    def tracked():
        t = Tracked(Request("r", 0.0, 1024, 1024, 1, deadline=3.0), None, NearTies(), clock)
        t.encoded = True
        return t

    kept, answers = tracked(), set()
    for i in range(400):
        clock.now = 1.0 + i * 0.0173
        view = Round(clock.now, 4, 4, 0, lambda: [], explain=False)
        fresh = policy.width(view, tracked())[0]
        assert policy.width(view, kept)[0] == fresh, clock.now
        answers.add(fresh)
    assert answers == {1, 2}  # the tie did flip the fresh answer: there was something to get wrong


def _without_memos(monkeypatch) -> None:
    monkeypatch.setattr(compile_fast, "recall", lambda *args: compile_fast.MISS)
    monkeypatch.setattr(compiled_policy, "promise", lambda *args: None)


SIM_RULES = [
    "min k in widths where finish(k) <= req.deadline else argmin k in widths by finish(k)",
    "max k in widths where slack(k) >= req.waited else 1",
    "min k in widths where finish(k) >= req.deadline else argmin k in widths by finish(k)",
    "max k in widths where slack(k) >= 0 else 1",
]


@pytest.mark.parametrize("profile,load", [("burst", 1.2), ("flash", 1.0), ("short", 0.9)])
def test_simulations_are_the_same_without_kept_answers(profile, load, monkeypatch):
    workload = Workload.from_json(generate(load_profile(profile), CM, 4, load, 5, duration_scale=0.3))
    policies = [lambda name=name: resolve_policy(name, {"chunk": "1"}) for name in ("edf_best_fit", "default", "slo_grow")]
    policies += [lambda rule=rule: compile_policy(
        f"policy p\nparam chunk = 2\nparam widths = {{1, 2, 4}}\nclass default {{ slo = 2x }}\n"
        f"order by req.deadline\nwidth denoise = {rule}\nwidth encode, decode = 1\ngrow denoise when slack(1) < 0\n",
        "p.gfp") for rule in SIM_RULES]
    fast = [simulate(make(), workload, CM, 4, time_rounds=False, record_spans=True) for make in policies]
    _without_memos(monkeypatch)
    plain = [simulate(make(), workload, CM, 4, time_rounds=False, record_spans=True) for make in policies]
    for a, b in zip(fast, plain, strict=True):
        assert a.outcomes == b.outcomes and a.spans == b.spans and a.rounds == b.rounds
        assert len(a.outcomes) == len(workload.requests) > 10


@pytest.mark.parametrize("rule", [rule for rule, kept in RULES[:5] + RULES[6:] if kept])  # RULES[5]: its `else 2` here
def test_only_a_second_answer_at_the_same_progress_keeps_its_horizon(rule):
    """Nearly every request asked just after its task ended is dispatched at once: a horizon
    computed then is never read. The first answer at a progress keeps nothing, the second keeps it,
    and a task's end (new progress) starts over."""
    policy = _policy(rule)
    clock = Clock(1.0)
    tracked = _tracked(clock, 30.0)
    view = Round(1.0, 4, 4, 0, lambda: [], explain=False)
    first = policy.width(view, tracked)[0]
    assert promised(tracked, policy, 1.0) is None
    assert policy.width(view, tracked)[0] == first
    assert promised(tracked, policy, 1.0)[0] == first
    tracked.steps_done += 1
    tracked.width_memo = None  # what the engine does when a task ends
    policy.width(view, tracked)
    assert promised(tracked, policy, 1.0) is None


def test_an_answer_kept_before_the_encode_is_not_used_after_it():
    """An encode task changes a request's progress (`encoded`) but not its `steps_done`: an answer
    kept before it was made at another progress, and the first answer after it is a fresh one."""
    policy = _policy(RULES[0][0])  # the smallest width that meets the deadline
    clock = Clock()
    tracked = _tracked(clock, math.inf, steps_done=0)
    tracked.encoded = False
    before = tracked.remaining_s(2)
    tracked.encoded = True
    after = tracked.remaining_s(2)
    tracked = _tracked(clock, (before + after) / 2, steps_done=0)  # width 2 meets it once encoded only
    tracked.encoded = False
    view = Round(0.0, 4, 4, 0, lambda: [], explain=False)
    assert [policy.width(view, tracked)[0] for _ in range(3)] == [4, 4, 4]  # kept from the second answer
    tracked.encoded = True  # its encode task ended
    tracked.width_memo = None  # what the engine does when a task ends
    assert policy.width(view, tracked)[0] == 2
