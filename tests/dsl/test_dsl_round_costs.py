"""`Tracked.remaining_s` is memoised per width until the request's progress changes, and the
compiled `finish(k)` / `slack(k)` choices read it directly on the engine's own `Round`
(gfdit/dsl/compile_fast.py), an `else argmin|argmax k by` the same cost reusing the values the
`where` loop computed: all give exactly the answers of the plain computation."""

import random

import pytest

from gfdit.dsl import compile_policy
from gfdit.engine.costmodel import CostModel
from gfdit.engine.request import Request
from gfdit.engine.tracked import Clock, Tracked
from gfdit.engine.view import Round
from gfdit.engine.workload import shipped_cost_model

WIDTHS = (1, 2, 4)


def _tracked(clock: Clock, steps: int = 30) -> Tracked:
    cm = CostModel.load(shipped_cost_model("qwen-h20"))
    return Tracked(Request("r", 0.0, 1024, 1024, steps, deadline=40.0), None, cm, clock)


def test_remaining_follows_progress():
    tracked = _tracked(Clock())
    fresh = {}
    for steps_done, encoded in [(0, False), (0, True), (1, True), (7, True), (30, True), (0, False)]:
        tracked.steps_done, tracked.encoded = steps_done, encoded
        for width in WIDTHS:
            value = tracked.remaining_s(width)
            plain = _tracked(Clock())  # nothing memoised: computed at this progress
            plain.steps_done, plain.encoded = steps_done, encoded
            assert value == plain.remaining_s(width)
            fresh[(steps_done, encoded, width)] = value
    assert fresh[(0, False, 1)] > fresh[(0, True, 1)] > fresh[(1, True, 1)] > fresh[(30, True, 1)]


class _PlainRound(Round):
    """Not the engine's Round by type: compiled choices call its cost methods."""


CHOICES = ["min k in widths where finish(k) <= req.deadline else argmin k in widths by finish(k)",
           "max k in widths where slack(k) < 0 else argmax k in widths by slack(k)",
           "min k in widths where slack(k) >= 0 else argmax k in widths by slack(k)"]


@pytest.mark.parametrize("choice", CHOICES)
def test_compiled_cost_choices_on_the_round_match_its_methods(monkeypatch, choice):
    policy = compile_policy(f"policy p\nparam widths = {{1, 2, 4}}\norder by req.arrival\nwidth * = {choice}\n", "p.gfp")
    clock = Clock()
    tracked = _tracked(clock)
    rng = random.Random(5)
    expected = []
    for _ in range(300):
        clock.now = rng.uniform(0.0, 60.0)
        tracked.steps_done, tracked.encoded = rng.randint(0, 30), rng.random() < 0.8
        plain = _PlainRound(clock.now, 4, 4, 0, lambda: [tracked], explain=False)
        expected.append((clock.now, tracked.steps_done, tracked.encoded, policy.width(plain, tracked)[0]))
    assert len({e[3] for e in expected}) > 1  # the sample covers more than one answer

    def not_called(self, req, k):
        raise AssertionError("the compiled choice called the Round's method")

    monkeypatch.setattr(Round, "finish", not_called)
    monkeypatch.setattr(Round, "slack", not_called)
    for now, steps_done, encoded, width in expected:
        clock.now, tracked.steps_done, tracked.encoded = now, steps_done, encoded
        view = Round(now, 4, 4, 0, lambda: [tracked], explain=False)
        assert policy.width(view, tracked)[0] == width
