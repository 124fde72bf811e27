"""Compiled hooks agree with the tree-walking reference interpreter, on random views.

Two sources of policies: every shipped policy (and the every-form golden case),
and randomly generated well-typed expressions placed in every kind of rule.
"""

import math
import random
from pathlib import Path

from dsl_views import Req, Round
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gfdit.dsl.check import check
from gfdit.dsl.interpret import Interpreter
from gfdit.dsl.load import compile_policy
from gfdit.engine.policy import RuleError
from gfdit.resources import data_dir

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILES = sorted(data_dir("policies").glob("*.gfp")) + [
    Path(__file__).with_name("cases") / "ok_every_form.gfp"]
CLASSES = ("S", "M", "batch", "other")
STAGES = ("encode", "denoise", "decode")


def random_request(rng: random.Random, i: int) -> Req:
    steps = rng.choice((4, 20, 50))
    done = rng.randint(0, steps)
    arrival = rng.uniform(0, 50)
    return Req(id=f"q{i}", request_class=rng.choice(CLASSES), priority=rng.choice((0, 50, 100)),
               arrival=arrival, deadline=rng.choice((math.inf, arrival + rng.uniform(0.5, 80))),
               age=rng.uniform(0, 60), waited=rng.uniform(0, 10), paused=rng.uniform(0, 40),
               tokens=rng.choice((256, 1024, 4096, 9216)), steps=steps, steps_done=done,
               steps_left=steps - done, stage=rng.choice(STAGES), width=rng.choice((0, 1, 2, 4)),
               t_single=rng.uniform(0.5, 90), preemptible=rng.random() < 0.4)


def random_round(rng: random.Random) -> tuple[Round, Req]:
    waiting = [random_request(rng, i) for i in range(rng.randint(0, 6))]
    running = [random_request(rng, 10 + i) for i in range(rng.randint(0, 3))]
    gpus = rng.choice((1, 2, 4, 8))
    free = rng.randint(0, gpus)
    view = Round(now=rng.uniform(0, 100), gpus=gpus, free=free, busy=gpus - free,
                 waiting=waiting, running=running)
    candidate = rng.choice(waiting) if waiting else random_request(rng, 99)
    return view, candidate


def same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def outcome(hook, view, req, shape=lambda x: x):
    """The hook's result, or the type of what it raised (the view's cost model may raise)."""
    try:
        return shape(hook(view, req))
    except RuleError as error:  # the compiled policy locates what the cost model raised
        return ("raised", type(error.cause).__name__)
    except (ValueError, ArithmeticError) as error:
        return ("raised", type(error).__name__)


def hook_results(policy, view, req) -> dict:
    return {"width": outcome(policy.width, view, req, lambda w: (w[0], w[1].rule)),
            "grow": outcome(policy.grow, view, req, lambda g: g and (g[0], g[1].rule)),
            "hold": outcome(policy.hold, view, req, lambda h: h and h.rule),
            "admit": outcome(policy.admit, view, req, lambda a: (a[0], a[1] and a[1].rule)),
            "order": outcome(policy.order_key, view, req),
            "chunk": outcome(policy.chunk_rule or (lambda view, req: None), view, req,
                             lambda c: c and (c[0], c[1].rule))}


def interpreted_results(oracle, view, req) -> dict:
    return {hook: outcome(getattr(oracle, hook if hook != "order" else "order_key"), view, req)
            for hook in ("width", "grow", "hold", "admit", "order", "chunk")}


def both(text: str, filename: str) -> tuple:
    return compile_policy(text, filename), Interpreter(check(text, filename).decls, filename)


def assert_agree(pair: tuple, seed: int) -> None:
    policy, oracle = pair
    view, req = random_round(random.Random(seed))
    compiled, interpreted = hook_results(policy, view, req), interpreted_results(oracle, view, req)
    for hook in compiled:
        assert same(compiled[hook], interpreted[hook]), (hook, compiled[hook], interpreted[hook],
                                                         policy.source)


SHIPPED = [both(path.read_text(), path.name) for path in POLICY_FILES]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_shipped_policies_agree_with_interpreter(seed):
    for pair in SHIPPED:
        assert_agree(pair, seed)


# ---- random well-typed expressions ---------------------------------------

NUM_ATOMS = ("0", "1", "2", "3.5", "req.width", "req.priority", "req.tokens", "req.steps_left",
             "gpus", "free", "busy", "count(waiting)", "count(running where r.preemptible)", "cap")
DUR_ATOMS = ("1s", "250ms", "2min", "req.age", "req.deadline", "req.arrival", "req.paused",
             "req.t_single", "now", "margin", "step(1)", "est(2)", "finish(4)", "slack(1)",
             "gpu_time(2)", "sum(waiting, r.age)", "min(waiting where r.width > 0, r.deadline)",
             "max(running, r.waited)")
BOOL_ATOMS = ("true", "false", "req.preemptible", "req.class == S", "req.stage == denoise",
              "req.class != batch", "any(waiting where r.class == S and r.age > 5s)", "flag")


def gen(kind: str, rng: random.Random, depth: int, var: str | None = None) -> str:
    if depth <= 0 or rng.random() < 0.3:
        return atom(kind, rng, var)
    return rng.choice(COMPOSITES[kind])(rng, depth - 1, var)


def atom(kind: str, rng: random.Random, var: str | None) -> str:
    pool = {"num": NUM_ATOMS, "dur": DUR_ATOMS, "bool": BOOL_ATOMS}[kind]
    if var and kind == "num" and rng.random() < 0.4:
        return var
    if var and kind == "dur" and rng.random() < 0.4:
        return rng.choice(("step", "finish", "slack", "est")) + f"({var})"
    return rng.choice(pool)


def choice_expr(rng, d, var):
    v = "k" if var is None else var + "k"
    if rng.random() < 0.5:
        kind = rng.choice(("min", "max"))
        return f"({kind} {v} in widths where {gen('bool', rng, d, v)} else {gen('num', rng, d, var)})"
    kind = rng.choice(("argmin", "argmax"))
    where = f" where {gen('bool', rng, d, v)}" if rng.random() < 0.5 else ""
    orelse = f" else {gen('num', rng, d, var)}" if where else ""
    return f"({kind} {v} in widths{where} by {gen(rng.choice(('num', 'dur')), rng, d, v)}{orelse})"


COMPOSITES = {
    "num": [
        lambda r, d, v: f"({gen('num', r, d, v)} {r.choice('+-*/')} {gen('num', r, d, v)})",
        lambda r, d, v: f"-{gen('num', r, d, v)}",
        lambda r, d, v: f"(if {gen('bool', r, d, v)} then {gen('num', r, d, v)} else {gen('num', r, d, v)})",
        lambda r, d, v: f"{r.choice(('min', 'max'))}({gen('num', r, d, v)}, {gen('num', r, d, v)})",
        lambda r, d, v: f"({gen('dur', r, d, v)} / {gen('dur', r, d, v)})",
        lambda r, d, v: f"count(waiting where {gen('bool', r, d, v)})",
        choice_expr,
    ],
    "dur": [
        lambda r, d, v: f"({gen('dur', r, d, v)} {r.choice('+-')} {gen('dur', r, d, v)})",
        lambda r, d, v: f"({gen('dur', r, d, v)} * {gen('num', r, d, v)})",
        lambda r, d, v: f"({gen('dur', r, d, v)} / {gen('num', r, d, v)})",
        lambda r, d, v: f"(if {gen('bool', r, d, v)} then {gen('dur', r, d, v)} else {gen('dur', r, d, v)})",
        lambda r, d, v: f"step({choice_expr(r, d, v)})",
    ],
    "bool": [
        lambda r, d, v: f"({gen('bool', r, d, v)} {r.choice(('and', 'or'))} {gen('bool', r, d, v)})",
        lambda r, d, v: f"not {gen('bool', r, d, v)}",
        lambda r, d, v: f"({gen('num', r, d, v)} {r.choice(('<', '<=', '>', '>=', '==', '!='))} {gen('num', r, d, v)})",
        lambda r, d, v: f"({gen('dur', r, d, v)} {r.choice(('<', '>='))} {gen('dur', r, d, v)})",
        lambda r, d, v: f"any(waiting where {gen('bool', r, d, v)})",
    ],
}


def random_policy(rng: random.Random) -> str:
    g = lambda kind: gen(kind, rng, 3)  # noqa: E731
    return "\n".join([
        "policy random", "param widths = {1, 2, 4}", "param cap = 3", "param margin = 2s",
        "param flag = true", "class S { slo = 1.5x }", "class batch { slo = 6x, preemptible }",
        f"let a = {g('num')}", f"let b = {g('bool')} or a > 1",
        f"admit when {g('bool')} else \"no\"",
        f"hold denoise when {g('bool')} and b",
        f"order by {g('num')}, {g('dur')} desc, {g('bool')}",
        f"width denoise when {g('bool')} = {g('num')}",
        f"width * = {choice_expr(rng, 2, None)}",
        f"grow denoise when {g('bool')} up to {g('num')}",
        f"chunk when {g('bool')} = {g('num')}",
    ]) + "\n"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_seed=st.integers(0, 2**32 - 1), view_seed=st.integers(0, 2**32 - 1))
def test_random_expressions_agree_with_interpreter(policy_seed, view_seed):
    text = random_policy(random.Random(policy_seed))
    errors = {d.code for d in check(text, "random.gfp").diagnostics if d.severity == "error"}
    assert errors <= {"E302", "E313"}, text  # a constant width outside `widths`, a constant chunk below 1
    assume(not errors)
    pair = both(text, "random.gfp")
    for offset in range(4):
        assert_agree(pair, view_seed + offset)
