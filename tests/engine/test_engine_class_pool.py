"""Pinning a class to ranks: `class L { pool = big }` runs L's requests only on pool big's ranks (with
any stage pool intersected); other classes use every rank."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from engine_support import PINNED_CLASS

from gfdit.dsl import compile_policy
from gfdit.dsl.check import check
from gfdit.engine import CostModel, Request, simulate
from gfdit.engine.policy_check import PolicyError, check_policy
from gfdit.engine.workload import shipped_cost_model
from gfdit.policies import fit_to

COST = CostModel.load(shipped_cost_model("qwen-h20"))
TEXT = PINNED_CLASS


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


def test_a_class_pool_the_cluster_lacks_is_cleared_with_a_note_and_its_requests_run():
    """pool big = {4..7} on 4 GPUs: fitting drops the pool, L then runs anywhere (not unplaceable)."""
    policy, notes = fit_to(compile_policy(TEXT, "p.gfp"), None, COST, 4)
    assert policy.classes["L"].pool is None and "big" not in policy.pools
    assert any("class L" in n and "pool big has no rank left" in n for n in notes)
    requests = [Request(f"{c}{i}", 0.5 * i, 1024, 1024, 20, request_class=c) for i, c in enumerate("LSLS")]
    result = simulate(policy, requests, COST, 4, time_rounds=False)
    assert [o.state for o in result.outcomes] == ["completed"] * 4


def test_a_class_pool_too_small_for_the_smallest_width_is_refused():
    narrow = TEXT.replace("{1, 2, 4}", "{2, 4}")
    with pytest.raises(PolicyError, match="class 'L'.*1 rank.*smallest width 2"):
        check_policy(compile_policy(narrow.replace("{4, 5, 6, 7}", "{7}"), "p.gfp"), COST, 8)
    staged = narrow.replace("class L", "pool low = {0, 1, 2, 3, 4}\nplace denoise in low\nclass L")
    with pytest.raises(PolicyError, match="class 'L'.*denoise.*1 rank.*big.*low"):
        check_policy(compile_policy(staged, "p.gfp"), COST, 8)
    check_policy(compile_policy(narrow, "p.gfp"), COST, 8)  # four ranks: fine
    base = compile_policy(TEXT, "p.gfp")
    unknown = copy.copy(base)
    unknown.classes = {"L": dataclasses.replace(base.classes["L"], pool="gone")}
    with pytest.raises(PolicyError, match="class 'L'.*unknown pool 'gone'"):
        check_policy(unknown, COST, 8)
