"""`chunk [when COND] = EXPR` rules: the denoise steps of each task, decided per request as the task is cut
(by class, progress, slack, queue), before the class's `chunk` and the policy's; a rule that fails is a
rule error of hook `chunk` (counted, logged) and the class's or the policy's chunk applies."""

from __future__ import annotations

import copy

import pytest

from gfdit.cli.explain import SourceLines, explain_line
from gfdit.dsl import compile_policy
from gfdit.engine import CostModel, DecisionLog, Request, simulate
from gfdit.engine.policy import Why
from gfdit.engine.workload import shipped_cost_model

COST = CostModel.load(shipped_cost_model("qwen-h20"))
TEXT = """policy c
param chunk = 2
param widths = {1, 2}
class L { }
class S { chunk = 4 }
chunk when req.class == L = 10
chunk when req.steps_done >= 16 = 1
order by req.arrival
width * = 1
"""


def chunks(text: str, requests: list[Request], gpus: int = 2):
    log = DecisionLog()
    result = simulate(compile_policy(text, "c.gfp"), requests, COST, gpus, decision_log=log, time_rounds=False)
    assert [o.state for o in result.outcomes] == ["completed"] * len(requests)
    cut: dict[str, list[tuple[int, int]]] = {}
    for r in log.records:
        if r["event"] == "dispatch" and r["stage"] == "denoise":
            cut.setdefault(r["request"], []).append(tuple(r["steps"]))
    return cut, result


def test_rules_decide_first_then_the_class_chunk_then_the_policy_chunk():
    requests = [Request(f"{c}{i}", float(i), 512, 512, 20, request_class=c) for i, c in enumerate("LSX")]
    cut, _ = chunks(TEXT, requests)
    assert cut["L0"] == [(0, 10), (10, 20)]  # the first rule
    assert cut["S1"] == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 17), (17, 18), (18, 19), (19, 20)]  # class, then rule 2
    assert cut["X2"] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14), (14, 16),
                         (16, 17), (17, 18), (18, 19), (19, 20)]  # the policy's chunk, then rule 2


def test_the_decision_log_names_the_chunk_rule_and_explain_shows_it():
    log = DecisionLog()
    simulate(compile_policy(TEXT, "c.gfp"), [Request("L0", 0.0, 512, 512, 20, request_class="L")], COST, 2,
             decision_log=log, time_rounds=False)
    noted = [r for r in log.records if r["event"] == "chunk"]
    assert [(r["request"], r["rule"], r["steps"]) for r in noted] == [("L0", "c.gfp:6", 10)] * 2
    assert noted[0]["values"]["steps"] == 10 and noted[0]["values"]["req.class"] == "L"
    line = explain_line(noted[0], SourceLines())
    assert "chunk    L0 next denoise task: 10 step(s)" in line and "rule c.gfp:6" in line


def test_a_rule_reads_the_round_small_chunks_while_the_queue_is_longer_than_the_cluster():
    text = "policy q\nparam chunk = 10\nparam widths = {1}\norder by req.arrival\nwidth * = 1\n" \
           "chunk when count(waiting) > gpus = 1\n"
    crowd = [Request(f"r{i}", 0.0, 512, 512, 20) for i in range(6)]
    cut, _ = chunks(text, crowd)
    assert cut["r0"][0] == (0, 1)  # 6 waiting on 2 GPUs as r0's first denoise task is cut
    alone, _ = chunks(text, [Request("a", 0.0, 512, 512, 20)])
    assert alone["a"] == [(0, 10), (10, 20)]


def test_a_failing_chunk_rule_is_a_counted_rule_error_and_the_policy_chunk_applies():
    text = TEXT.replace("chunk when req.steps_done >= 16 = 1", "chunk when slack(max(req.width, 1) * 3) < 0s = 1")
    requests = [Request("X0", 0.0, 512, 512, 20)]
    cut, result = chunks(text, requests)
    assert cut["X0"] == [(a, a + 2) for a in range(0, 20, 2)]  # no width-3 layout: chunk 2, every task
    assert result.hook_errors == {"chunk": 10}
    assert list(result.rule_errors) == ["c.gfp:7:12"]


def test_a_policy_without_chunk_rules_has_none():
    assert compile_policy(TEXT.replace("chunk when", "# chunk when"), "c.gfp").chunk_rule is None


@pytest.mark.parametrize("value", ["1e300 * req.steps", "100 / count(running where r.width > 8)"])
def test_a_rule_asking_for_more_steps_than_are_left_logs_and_explains_the_steps_the_task_covers(value):
    text = ("policy c\nparam chunk = 2\nparam widths = {1, 2}\nclass S { chunk = 4 }\n"
            f"chunk when req.steps_done >= 6 = {value}\norder by req.arrival\nwidth * = 1\n")
    log = DecisionLog()
    simulate(compile_policy(text, "c.gfp"), [Request("S0", 0.0, 512, 512, 20, request_class="S")], COST, 2,
             decision_log=log, time_rounds=False)
    cut = [tuple(r["steps"]) for r in log.records if r["event"] == "dispatch" and r["stage"] == "denoise"]
    assert cut == [(0, 4), (4, 8), (8, 20)]  # the class chunk twice, then the rule: the rest (12 steps)
    noted = [r for r in log.records if r["event"] == "chunk"]
    assert [(r["steps"], r["values"]["steps"]) for r in noted] == [(12, 12)]
    assert "chunk    S0 next denoise task: 12 step(s)" in explain_line(noted[0], SourceLines())


def test_the_engine_logs_at_most_the_steps_left_whatever_a_python_chunk_rule_answers():
    policy = copy.copy(compile_policy(TEXT, "c.gfp"))
    policy.chunk_rule = lambda view, req: (10**9, Why("python:huge_chunk", {"steps": 10**9}))
    log = DecisionLog()
    simulate(policy, [Request("X0", 0.0, 512, 512, 20)], COST, 2, decision_log=log, time_rounds=False)
    assert [(r["rule"], r["steps"]) for r in log.records if r["event"] == "chunk"] == [("python:huge_chunk", 20)]
    assert "next denoise task: 20 step(s)" in explain_line(
        next(r for r in log.records if r["event"] == "chunk"), SourceLines())
