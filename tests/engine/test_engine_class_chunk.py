"""Chunk size per class: `class L { chunk = 10 }` cuts L's denoise into tasks of 10 steps while the
policy's `chunk` cuts the others; ignored (and E111 in the language) under `chunk = all`."""

from __future__ import annotations

from gfdit.dsl import compile_policy
from gfdit.dsl.check import check
from gfdit.engine import CostModel, DecisionLog, Request, simulate
from gfdit.engine.workload import shipped_cost_model

COST = CostModel.load(shipped_cost_model("qwen-h20"))
TEXT = """policy c
param chunk = 2
param widths = {1}
class L { chunk = 10 }
class S { }
order by req.arrival
width * = 1
"""


def denoise_steps(records, prefix):
    return {r["steps"][1] - r["steps"][0] for r in records
            if r["event"] == "dispatch" and r["stage"] == "denoise" and r["request"].startswith(prefix)}


def test_each_class_is_cut_by_its_own_chunk():
    requests = [Request(f"{c}{i}", float(i), 512, 512, 20, request_class=c) for i, c in enumerate("LSLSX")]
    log = DecisionLog()
    result = simulate(compile_policy(TEXT, "c.gfp"), requests, COST, 2, decision_log=log, time_rounds=False)
    assert all(o.state == "completed" for o in result.outcomes)
    assert denoise_steps(log.records, "L") == {10}
    assert denoise_steps(log.records, "S") == {2} and denoise_steps(log.records, "X") == {2}  # unnamed: policy's


def test_a_class_chunk_needs_a_numeric_policy_chunk_and_a_whole_number():
    assert compile_policy(TEXT, "c.gfp").classes["L"].chunk == 10
    under_all = check(TEXT.replace("param chunk = 2", "param chunk = all"), "c.gfp")
    assert [d.code for d in under_all.diagnostics] == ["E111"]
    assert [d.code for d in check(TEXT.replace("chunk = 10", "chunk = 2.5"), "c.gfp").diagnostics] == ["E111"]
