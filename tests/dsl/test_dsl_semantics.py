"""What `waiting`, `running`, `req.width` and `grow` mean, pinned on the engine with compiled
policies (docs/policy-language.md, "Semantics in detail")."""

from gfdit.dsl import compile_policy
from gfdit.engine import Cluster, CostModel, DecisionLog, Engine, Request
from gfdit.engine.workload import shipped_cost_model

COST = CostModel.load(shipped_cost_model("qwen-h20"))


def engine(text: str, gpus: int = 4) -> tuple[Engine, DecisionLog]:
    log = DecisionLog()
    policy = compile_policy("policy t\n" + text, "t.gfp")
    return Engine(policy, COST, Cluster(gpus), log), log


def req(rid: str, at: float = 0.0, **kw) -> Request:
    return Request(rid, at, 1024, 1024, 50, **kw)


def dispatched(log: DecisionLog) -> dict[str, int]:
    return {r["request"]: r["width"] for r in log.records if r["event"] == "dispatch"}


def test_waiting_includes_the_candidate():
    eng, log = engine("order by req.arrival\nwidth * = if count(waiting) >= 1 then 2 else 1\n")
    eng.submit(req("a"), 0.0)
    eng.schedule(0.0)
    assert dispatched(log) == {"a": 2}  # alone in the queue, it counts itself


def test_admit_does_not_see_the_arriving_request():
    eng, _ = engine('admit when count(waiting) < 1 else "full"\norder by req.arrival\nwidth * = 1\n')
    assert eng.submit(req("a"), 0.0) is None  # the queue was empty: a is not counted
    assert eng.submit(req("b"), 0.0) == "full"  # a waits now


def test_a_running_request_has_its_current_tasks_width():
    eng, log = engine("order by req.arrival\n"
                      "width * = if req.id == \"a\" then 2 "
                      "else (if sum(running, r.width) == 2 then 1 else 4)\n")
    eng.submit(req("a"), 0.0)
    eng.schedule(0.0)  # a's first task: width 2, none finished yet
    eng.submit(req("b", 0.1), 0.1)
    eng.schedule(0.1)
    assert dispatched(log) == {"a": 2, "b": 1}  # b saw running a at width 2


def test_a_running_request_reads_as_its_new_width_after_a_regroup():
    eng, log = engine("param chunk = 50\norder by req.arrival\n"
                      "width * = if req.id == \"a\" then (if req.stage == denoise then 2 else 1) "
                      "else (if sum(running, r.width) == 2 then 1 else 4)\n")
    eng.submit(req("a"), 0.0)
    (enc,) = eng.schedule(0.0)  # a encodes at width 1
    eng.task_done(enc.task_id, 1.0)
    (den,) = eng.schedule(1.0)  # a denoises at width 2: its last finished task had width 1
    assert len(den.group) == 2
    eng.submit(req("b", 1.1), 1.1)
    eng.schedule(1.1)
    assert dispatched(log) == {"a": 2, "b": 1}  # b saw a at 2, not at its encode's 1


def test_grow_follows_the_order_by_keys():
    # 3 GPUs: both fit at width 1, one rank is left, only the first in `order by` may grow
    text = ("param widths = {1, 2}\norder by -req.priority\nwidth * = 1\ngrow * up to 2\n")
    for first, second in (("a", "b"), ("b", "a")):
        eng, log = engine(text, gpus=3)
        eng.submit(req(first, priority=1), 0.0)
        eng.submit(req(second, priority=5), 0.0)
        eng.schedule(0.0)
        assert dispatched(log) == {second: 2, first: 1}
