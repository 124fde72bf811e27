"""Shipped policies: the semantics their headers promise, and that each runs on 1 to 4 GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gfdit.dsl.load import load_policy
from gfdit.engine.costmodel import CostModel
from gfdit.engine.simulator import simulate

from engine_support import req, write_cost_model

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0, 4: 400.0}))


def finish_order(name: str, cm: CostModel) -> list[str]:
    """One GPU, chunk 1: a long job starts, a short one arrives while it runs."""
    policy = load_policy(POLICIES / f"{name}.gfp", {"chunk": "1"})
    result = simulate(policy, [req("long", 0.0, 20), req("short", 0.5, 2)], cm, 1)
    assert all(o.state == "completed" for o in result.outcomes)
    return [o.id for o in sorted(result.outcomes, key=lambda o: o.finish)]


def test_sjf_is_non_preemptive_a_started_request_stays_ahead(cm):
    assert finish_order("sjf", cm) == ["long", "short"]


def test_srtf_lets_the_short_job_overtake_at_the_next_boundary(cm):
    assert finish_order("srtf", cm) == ["short", "long"]
