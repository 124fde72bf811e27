"""Fuzzing: random and mutated policy text never raises anything but `PolicyError`, never hangs.

Each compile runs under a wall-clock alarm (ITIMER_REAL); a policy that does
compile also has its hooks run on a random view.
"""

import random
import signal
from contextlib import contextmanager
from pathlib import Path

from dsl_views import Req, Round
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gfdit.dsl.diagnostics import PolicyError
from gfdit.dsl.load import compile_policy
from gfdit.resources import data_dir

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [p.read_text() for p in sorted(data_dir("policies").glob("*.gfp"))] + [
    (Path(__file__).with_name("cases") / f"{name}.gfp").read_text()
    for name in ("ok_every_form", "ok_pools_sized_by_cluster", "ok_chunk_rules")]
VOCABULARY = ("policy", "param", "class", "let", "pool", "place", "admit", "hold", "order", "by",
              "width", "grow", "on", "short", "when", "else", "where", "if", "then", "min", "max",
              "argmin", "argmax", "count", "any", "sum", "in", "up", "to", "and", "or", "not",
              "req.deadline", "r.width", "widths", "free", "waiting", "finish(k)", "k", "*", "=",
              "==", "<", "(", ")", "{", "}", ",", "1", "2.5", "3s", "1.5x", '"x"', "\n", "#", "-",
              "all", "true", "encode", "denoise", "slo", "preemptible", "asc", "desc", ".", "/",
              "1e400", "{1e400}", "1e400s", "1e400x", "{1.5, 3}", "rest", "..", "gpus", "chunk",
              "{0 .. gpus - 1}", "1e300")
TIME_LIMIT_S = 5.0


@contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise TimeoutError(f"compile took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def compile_or_policy_error(text: str) -> None:
    with time_limit(TIME_LIMIT_S):
        try:
            policy = compile_policy(text, "fuzz.gfp")
        except PolicyError as error:
            assert error.diagnostics, "a PolicyError always carries diagnostics"
            assert all(d.render() for d in error.diagnostics)
            return
        for gpus in (1, 8, 1000):  # pools sized by the cluster stay within it
            sized = policy.for_cluster(gpus).pools
            assert all(isinstance(r, int) and 0 <= r < gpus for name in policy.declarations.sized_pools
                       for r in sized[name])
        view = Round(waiting=[Req(id="a"), Req(id="b", deadline=5.0, preemptible=True)],
                     running=[Req(id="c", width=2)], free=2, busy=2)
        for req in view.waiting:
            for hook in (policy.admit, policy.hold, policy.order_key, policy.width, policy.grow,
                         policy.chunk_rule or policy.hold):
                try:
                    hook(view, req)
                except ValueError:  # the view's cost model refuses a width it has no layout for
                    pass


def let_chain(n: int) -> str:
    lets = "".join(f"let a{i} = a{i - 1} + 1\n" for i in range(1, n))
    return f"policy p\nlet a0 = req.width\n{lets}order by a{n - 1}\nwidth * = 1\n"


def test_a_long_let_chain_compiles_and_runs_or_is_refused():
    policy = compile_policy(let_chain(70), "chain.gfp")
    assert policy.order_key(Round(), Req(width=1)) == (70,)
    try:
        compile_policy(let_chain(500), "chain.gfp")
    except PolicyError as error:
        assert [d.code for d in error.errors] == ["E004"]
    else:
        raise AssertionError("a 500-let chain must be refused")


def mutate(text: str, rng: random.Random, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        at = rng.randrange(len(chars) + 1)
        action = rng.randrange(4)
        if action == 0 and chars:
            del chars[min(at, len(chars) - 1)]
        elif action == 1:
            chars.insert(at, rng.choice(VOCABULARY) + rng.choice(("", " ")))
        elif action == 2 and chars:
            span = rng.randrange(1, 12)
            del chars[at:at + span]
        else:
            chars.insert(at, chr(rng.randrange(32, 127)))
    return "".join(chars)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, len(SEEDS) - 1),
       edits=st.integers(1, 6))
def test_mutated_policies_only_raise_policy_error(seed, which, edits):
    compile_or_policy_error(mutate(SEEDS[which], random.Random(seed), edits))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(VOCABULARY), max_size=60))
def test_token_soup_only_raises_policy_error(words):
    compile_or_policy_error("policy soup\n" + " ".join(words))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_arbitrary_text_only_raises_policy_error(text):
    compile_or_policy_error(text)


def test_pathological_inputs_are_refused_quickly():
    for text in ("(" * 100_000, "policy p\nlet a = " + "not " * 5000 + "true",
                 "policy p\nlet a = " + "1 + " * 3000 + "1", "x" * 300_000, "\x00\n\t\r",
                 "policy p\n" + "let a = 1\n" * 2000, let_chain(3000), let_chain(74)):
        compile_or_policy_error(text)


def test_out_of_range_numeric_literals_only_raise_policy_error():
    head = "policy p\nparam widths = {1, 2, 4}\norder by req.arrival\n"
    for body in ("let ws = {1e400}\nwidth * = min k in ws", "param ws = {1e400}\nwidth * = min k in ws",
                 "let ws = {1.5, 2}\nwidth * = min k in ws", "param chunk = 1e400\nwidth * = 1",
                 "class S { slo = 1e400x }\nwidth * = 1", "width * = 1e400",
                 "width * = 1\nhold * when slack(1e400) < 0s", "class S { slo = 2x, priority = 1e400 }\nwidth * = 1"):
        compile_or_policy_error(head + body)
