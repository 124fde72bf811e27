"""The simulator's fast paths decide exactly what the plain ones decide.

- Without a decision log the round does not explain (`Round.explain` False):
  hooks leave `Why.values` empty, and every decision and metric is the same.
- `static_order`: an order key over fixed request fields is computed once per
  request; a key that reads the clock, progress or the cost model is not static.
- `never_holds`: a policy without hold rules is not asked about holds.
- Choices over a constant set tested by one cost call (gfdit/dsl/compile_fast.py)
  agree with the reference interpreter, errors located at the cost call.
"""

import math

import pytest
from dsl_views import Req, Round

from gfdit.dsl import compile_choice, compile_policy
from gfdit.dsl.check import check
from gfdit.dsl.interpret import Interpreter
from gfdit.dsl.names import DUR, REQUEST_FIELDS
from gfdit.engine.costmodel import CostModel
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.policy import RuleError
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model
from gfdit.engine.workload_gen import generate, load_profile
from gfdit.policies import resolve_policy

EDF = """policy p
param widths = {1, 2, 4}
order by req.deadline, -req.priority
width * = min k in widths where finish(k) <= req.deadline else argmin k in widths by finish(k)
"""


def test_a_round_that_does_not_explain_leaves_values_out():
    policy = compile_policy(EDF, "p.gfp")
    view, req = Round(), Req(deadline=30.0)
    width, why = policy.width(view, req)
    assert why.values["width"] == width and "finish(k)" in why.values
    view.explain = False
    quiet_width, quiet = policy.width(view, req)
    assert quiet_width == width and quiet.rule == why.rule and dict(quiet.values) == {}


@pytest.mark.parametrize("name", ["edf_best_fit", "preempt_pause", "slo_grow", "load_adaptive"])
def test_simulation_is_the_same_with_and_without_a_decision_log(tmp_path, name):
    cm = CostModel.load(shipped_cost_model("qwen-h20"))
    workload = Workload.from_json(generate(load_profile("burst"), cm, 4, 1.1, 3, duration_scale=0.3))
    policy = resolve_policy(name, {"chunk": "2"})
    plain = simulate(policy, workload, cm, 4, time_rounds=False)
    log = DecisionLog([])
    logged = simulate(policy, workload, cm, 4, time_rounds=False, decision_log=log)
    assert any(r["event"] == "skip" for r in log.records)
    assert plain.outcomes == logged.outcomes and plain.rounds == logged.rounds
    assert len(plain.outcomes) == len(workload.requests) > 20


def test_static_order_keys():
    assert compile_policy(EDF, "p.gfp").static_order
    for key in ("req.age", "slack(1)", "req.steps_left", "count(waiting)", "if now > 1s then 1 else 2"):
        text = EDF.replace("order by req.deadline, -req.priority", f"order by req.deadline, {key}")
        assert not compile_policy(text, "p.gfp").static_order, key
    let = EDF.replace("order by req.deadline, -req.priority", "let d = req.deadline * 2\norder by d")
    assert compile_policy(let, "p.gfp").static_order


def test_never_holds_only_without_hold_rules():
    assert compile_policy(EDF, "p.gfp").never_holds
    held = EDF + "hold * when req.age > 1s\n"
    assert not compile_policy(held, "p.gfp").never_holds


def _result(hook, view, req):
    try:
        return hook(view, req)[0]
    except RuleError as exc:
        return ("raised", exc.rule, type(exc.cause))


@pytest.mark.parametrize("rule", [
    "min k in widths where finish(k) <= req.deadline else 8",
    "max k in widths where slack(k) > 0 else 1",
    "min k in widths where req.deadline >= finish(k) else argmax k in widths by est(k)",
    "argmin k in widths by finish(k)",
    "argmax k in widths by gpu_time(k)",
    "max k in widths where finish(k) < req.deadline else 1",  # the view cannot price 16: located error
    "argmin k in widths by slack(k)",  # the same, in a `by`
])
def test_fast_choices_agree_with_the_generic_closures(rule, monkeypatch):
    text = f"policy p\nparam widths = {{1, 2, 4, 8, 16}}\norder by req.arrival\nwidth * = {rule}\n"
    fast = compile_policy(text, "p.gfp")
    monkeypatch.setattr(compile_choice, "fast_pick", lambda *args: None)
    monkeypatch.setattr(compile_choice, "fast_best", lambda *args: None)
    generic = compile_policy(text, "p.gfp")
    oracle = Interpreter(check(text, "p.gfp").decls, "p.gfp")
    outcomes = set()
    for deadline in (0.5, 3.0, 12.0, 40.0, math.inf):
        for now in (0.0, 5.0):
            view, req = Round(now=now), Req(deadline=deadline, tokens=4096)
            got = _result(fast.width, view, req)
            assert got == _result(generic.width, view, req)
            outcomes.add(got if isinstance(got, int) else got[0])
            if isinstance(got, int):
                if 16 not in _priced(oracle, view, req):
                    assert got == oracle.width(view, req)[0]  # (the interpreter prices every k)
            else:  # located at the cost call that failed
                col = text.splitlines()[3].index(rule.split("(k)")[0].split()[-1]) + 1
                assert got[1] == f"p.gfp:4:{col}"
    assert outcomes != {"raised"} or not rule.startswith("min k")  # (max, argmin, argmax price 16)


def _priced(oracle, view, req) -> set:
    """The widths the interpreter would need priced (it evaluates every k): {16} if it would fail."""
    try:
        oracle.width(view, req)
        return set()
    except ValueError:
        return {16}


class _SameCost(Round):
    def est(self, req, k):  # the same for every request: only the bound tells the answers apart
        return 10.0 * k


@pytest.mark.parametrize("name", [name for name, (kind, _, _) in REQUEST_FIELDS.items() if kind == DUR])
def test_a_request_field_bound_is_read_from_that_field(name):
    """`COST(k) OP req.FIELD` (a duration field: what a cost compares with) reads the field itself
    (compile_fast reads it with an attrgetter, not through its compiled closure): every field gives
    its own answer."""
    text = (f"policy p\nparam widths = {{1, 2, 4, 8}}\norder by req.arrival\n"
            f"width * = max k in widths where est(k) <= req.{name} else 1\n")
    others = {attr: 85 for kind, attr, _ in REQUEST_FIELDS.values() if kind == DUR}
    req = Req(**(others | {REQUEST_FIELDS[name][1]: 25}))
    assert compile_policy(text, "p.gfp").width(_SameCost(), req)[0] == 2  # est(2) <= 25 < est(4); 85: 8
