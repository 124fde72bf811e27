"""gfdit/data/policies/default.gfp: EDF with soft demotion of requests that cannot make their deadline.

What it must do (docs/policy-language.md, docs/benchmarks.md): a request that
misses its deadline even at its fastest width goes behind every request that
can still make its own, with key deadline + penalty x t_single (so it still
finishes); it is what runs without --policy.
"""

import math

from dsl_views import Req, Round

from gfdit.dsl import load_policy
from gfdit.engine import CostModel, Request, simulate
from gfdit.engine.workload import shipped_cost_model
from gfdit.policies import DEFAULT_POLICY, POLICY_DIR, resolve_policy

COST = CostModel.load(shipped_cost_model("qwen-h20"))
DEFAULT = load_policy(POLICY_DIR / "default.gfp")


def test_a_request_that_cannot_make_it_is_demoted_softly():
    view = Round(now=10.0)
    doomed = Req(id="late", deadline=11.0, t_single=2.0)  # needs more than 1 s at every width
    fine = Req(id="ok", deadline=60.0, t_single=2.0)
    assert DEFAULT.order_key(view, doomed)[0] == 11.0 + 8 * 2.0  # deadline + penalty x t_single
    assert DEFAULT.order_key(view, fine)[0] == 60.0
    later = Req(id="new", deadline=100.0, t_single=2.0)  # a later arrival with a loose deadline
    assert DEFAULT.order_key(view, doomed) < DEFAULT.order_key(view, later)  # not starved
    assert DEFAULT.order_key(view, Req(deadline=math.inf))[0] == math.inf


def burst(n: int, gap: float) -> list[Request]:
    """`n` identical small requests `gap` seconds apart, each due 1.5x its single-GPU time after arrival."""
    t_single = COST.t_single(Request("probe", 0.0, 512, 512, 30))
    return [Request(f"s{i:02d}", gap * i, 512, 512, 30, deadline=gap * i + 1.5 * t_single,
                    request_class="S") for i in range(n)]


def test_a_burst_of_identical_tight_requests_meets_more_deadlines_than_edf_and_srtf():
    requests = burst(32, 0.5)  # 4 GPUs cannot keep up: under EDF every request ends up late
    ours = simulate(DEFAULT, requests, COST, 4, time_rounds=False)
    assert all(o.state == "completed" for o in ours.outcomes)  # demoted, still finished
    got = ours.metrics["overall"]["slo_attainment"]
    for name in ("edf_best_fit", "srtf"):
        other = simulate(resolve_policy(name), requests, COST, 4, time_rounds=False).metrics["overall"]
        assert got >= 2 * other["slo_attainment"] > 0, (name, got, other["slo_attainment"])


def test_it_is_the_default():
    assert DEFAULT_POLICY == "default" and resolve_policy(DEFAULT_POLICY).name == "default"
