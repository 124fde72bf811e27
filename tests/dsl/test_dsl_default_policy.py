"""gfdit/data/policies/default.gfp: EDF with soft demotion of requests that cannot make their deadline.

What it must do (docs/policy-language.md, docs/benchmarks.md): a request that
misses its deadline even at its fastest width goes behind every request that
can still make its own, with key deadline + penalty x t_single (so it still
finishes), and runs at its thriftiest width (the fewest GPU-seconds), not its
fastest; it is what runs without --policy.
"""

import math

from dsl_views import Req, Round

from gfdit.dsl import compile_policy, load_policy
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


def test_a_request_that_cannot_make_it_runs_at_its_thriftiest_width():
    view = Round(now=10.0)
    doomed = Req(id="late", tokens=4096, deadline=10.5, steps_left=20)  # 21.8 s left even at width 4
    assert DEFAULT.width(view, doomed)[0] == 1  # width 1 costs the fewest GPU-seconds (dsl_views' cost)
    tight = Req(id="tight", tokens=4096, deadline=10.0 + 30.0, steps_left=20)  # makes it at width 4 only
    assert DEFAULT.width(view, tight)[0] == 4
    loose = Req(id="loose", tokens=4096, deadline=10.0 + 90.0, steps_left=20)
    assert DEFAULT.width(view, loose)[0] == 1


def test_doomed_large_requests_share_the_ranks_instead_of_taking_them_all():
    """Four large requests that cannot make their deadlines and a stream of small ones that can, on 4 GPUs:
    at their fastest width the large ones take every rank in turn; at their thriftiest (width 1) the
    same deadlines are met and latency drops (the rule the default adds over "fastest width when late")."""
    t_large = COST.t_single(Request("probe", 0.0, 1024, 1024, 30))
    t_small = COST.t_single(Request("probe", 0.0, 512, 512, 30))
    late = [Request(f"b{i}", 0.0, 1024, 1024, 30, deadline=0.3 * t_large, request_class="M") for i in range(4)]
    small = [Request(f"s{i:02d}", 2.0 * i, 512, 512, 30, deadline=2.0 * i + 1.5 * t_small, request_class="S")
             for i in range(20)]
    text = (POLICY_DIR / "default.gfp").read_text()
    assert "else thrifty" in text
    fastest = compile_policy(text.replace("else thrifty", "else fastest"), "fastest.gfp", {})
    ours = simulate(DEFAULT, late + small, COST, 4, time_rounds=False).metrics["overall"]
    theirs = simulate(fastest, late + small, COST, 4, time_rounds=False).metrics["overall"]
    assert ours["completed"] == theirs["completed"] == 24
    assert ours["slo_attainment"] >= theirs["slo_attainment"] > 0
    assert ours["mean_latency_s"] < 0.8 * theirs["mean_latency_s"], (ours, theirs)


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
