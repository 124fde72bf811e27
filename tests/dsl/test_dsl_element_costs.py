"""Cost functions of other requests inside aggregates (`r.slack(k)`, `r.est(1)`, `req.est(1)`) and
`req.queued`, the total time a request has waited with no task in flight (not reset by a task)."""

import random

from dsl_views import Req, Round
from test_dsl_oracle import random_round, same

from gfdit.dsl import compile_policy
from gfdit.dsl.check import check
from gfdit.dsl.interpret import Interpreter
from gfdit.engine import CostModel, DecisionLog, Request, simulate
from gfdit.engine.cluster import Cluster
from gfdit.engine.engine import Engine
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import generate, load_profile

POLICY = """policy t
param widths = {1, 2, 4}
let late_others = count(waiting where r.id != req.id and r.slack(1) < 0s)
let shorter = count(waiting where r.est(1) < req.est(1))
let soonest = min(running, r.finish(max(r.width, 1)))
order by shorter, -req.queued
hold * when late_others > 1 and req.slack(1) > 20s
width * = if soonest < now + 1s then 1 else argmin k in widths by sum(waiting where r.est(k) > 0s, 1) + k
"""


def test_element_costs_are_the_elements_and_agree_with_the_interpreter():
    policy, oracle = compile_policy(POLICY, "t.gfp"), Interpreter(check(POLICY, "t.gfp").decls, "t.gfp")
    view = Round(now=10.0, waiting=[Req(id="a", tokens=1000), Req(id="b", tokens=4000), Req(id="c", tokens=2000)])
    assert policy.order_key(view, view.waiting[2]) == (1, -0.0)  # only a is shorter than c
    assert policy.order_key(view, view.waiting[1]) == (2, -0.0)
    for seed in range(300):
        view, req = random_round(random.Random(seed))
        req.queued = random.Random(seed).uniform(0, 50)
        for hook in ("order_key", "width", "hold"):
            got, want = _result(getattr(policy, hook), view, req), _result(getattr(oracle, hook), view, req)
            assert same(got, want), (seed, hook, got, want)


def _result(hook, view, req):
    """Comparable: order keys as they are, a width without its why, a hold as held or not."""
    try:
        out = hook(view, req)
    except Exception as exc:  # noqa: BLE001 -- the view cannot price a width: both must fail
        return ("raised", type(getattr(exc, "cause", exc)).__name__)
    if hook.__name__ == "width":
        return out[0]
    if hook.__name__ == "hold":
        return out is not None
    return out


def test_an_order_by_rank_of_element_costs_is_srtf():
    cm = CostModel.load(shipped_cost_model("qwen-h20"))
    workload = Workload.from_json(generate(load_profile("short"), cm, 4, 1.0, 2, duration_scale=0.3))
    base = "policy p\nparam widths = {1}\nwidth * = 1\n"
    ranked = compile_policy(base + "order by count(waiting where r.est(1) < req.est(1))\n", "p.gfp")
    direct = compile_policy(base + "order by est(1)\n", "p.gfp")
    logs = [DecisionLog(), DecisionLog()]
    for policy, log in zip((ranked, direct), logs, strict=True):
        simulate(policy, workload, cm, 4, decision_log=log, time_rounds=False)
    dispatched = [[(r["request"], r["t"]) for r in log.records if r["event"] == "dispatch"] for log in logs]
    assert dispatched[0] == dispatched[1] and len(dispatched[0]) > 50


def test_queued_is_the_total_time_without_a_task():
    policy = compile_policy("policy p\nparam widths = {1}\nparam chunk = 1\norder by req.arrival\nwidth * = 1\n",
                            "p.gfp")
    engine = Engine(policy, CostModel.load(shipped_cost_model("qwen-h20")), Cluster(1))
    engine.submit(Request("a", 0.0, 512, 512, 2), 0.0)
    (encode,) = engine.schedule(0.5)  # queued 0.5 s, then encode runs 1 s
    engine.task_done(encode.task_id, 1.5)
    a = engine.active["a"]
    engine.clock.now = 3.0
    assert a.queued == 2.0 and a.waited == 1.5  # 0.5 before its first task + 1.5 since
    (step,) = engine.schedule(3.0)
    engine.clock.now = 3.5
    assert a.queued == 2.0  # running: not queued
    engine.task_done(step.task_id, 4.0)
    engine.clock.now = 6.0
    assert a.queued == 4.0 and a.waited == 2.0
