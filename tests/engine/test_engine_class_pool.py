"""Pinning a class to ranks: `class L { pool = big }` runs L's requests only on pool big's ranks (with
any stage pool intersected); other classes use every rank."""

from __future__ import annotations

from gfdit.dsl import compile_policy
from gfdit.dsl.check import check
from gfdit.engine import CostModel, Request, simulate
from gfdit.engine.workload import shipped_cost_model

COST = CostModel.load(shipped_cost_model("qwen-h20"))
TEXT = """policy pin
param chunk = 5
param widths = {1, 2, 4}
pool big = {4, 5, 6, 7}
class L { pool = big }
order by req.arrival
width * = 2
grow denoise
"""


def test_a_pinned_class_runs_only_on_its_pool():
    requests = [Request(f"{c}{i}", 0.5 * i, 1024, 1024, 20, request_class=c) for i, c in enumerate("LSLSLSLS")]
    result = simulate(compile_policy(TEXT, "p.gfp"), requests, COST, 8, record_spans=True, time_rounds=False)
    assert all(o.state == "completed" for o in result.outcomes)
    pinned = {r for s in result.spans if s.request_id.startswith("L") for r in s.group}
    others = {r for s in result.spans if s.request_id.startswith("S") for r in s.group}
    assert pinned <= {4, 5, 6, 7} and pinned and others & {0, 1, 2, 3}
    free = simulate(compile_policy(TEXT.replace("class L { pool = big }", "class L { }"), "p.gfp"), requests,
                    COST, 8, record_spans=True, time_rounds=False)
    assert {r for s in free.spans if s.request_id.startswith("L") for r in s.group} - {4, 5, 6, 7}


def test_the_pool_must_be_declared_and_named():
    assert compile_policy(TEXT, "p.gfp").classes["L"].pool == "big"
    unknown = check(TEXT.replace("pool = big }", "pool = bgi }"), "p.gfp")
    assert [d.code for d in unknown.diagnostics] == ["E109"] and "big" in unknown.diagnostics[0].hint
    assert [d.code for d in check(TEXT.replace("pool = big }", "pool = 3 }"), "p.gfp").diagnostics] == ["E111"]
