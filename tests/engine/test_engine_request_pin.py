"""Pinning one request to ranks (`Request.ranks`): its tasks run only there, intersected with its
class's pool and its stages' pools; a pin that can never run is rejected at intake with the reason."""

from __future__ import annotations

import pytest
from engine_support import PINNED_CLASS

from gfdit.dsl import compile_policy
from gfdit.engine import CostModel, Request, simulate
from gfdit.engine.request import RequestError
from gfdit.engine.workload import shipped_cost_model

COST = CostModel.load(shipped_cost_model("qwen-h20"))
TEXT = PINNED_CLASS


def _run(requests, text=TEXT, gpus=8):
    return simulate(compile_policy(text, "p.gfp"), requests, COST, gpus, record_spans=True, time_rounds=False)


def _ranks_of(result, prefix):
    return {r for s in result.spans if s.request_id.startswith(prefix) for r in s.group}


def test_a_pinned_request_runs_only_on_its_ranks():
    requests = [Request(f"{'P' if i % 2 else 'F'}{i}", 0.3 * i, 1024, 1024, 20,
                        ranks=frozenset({2, 3}) if i % 2 else None) for i in range(10)]
    result = _run(requests)
    assert all(o.state == "completed" for o in result.outcomes)
    assert _ranks_of(result, "P") == {2, 3}
    assert _ranks_of(result, "F") - {2, 3}  # the unpinned ones use the rest
    unpinned = _run([Request(r.id, r.arrival, 1024, 1024, 20) for r in requests])
    assert _ranks_of(unpinned, "P") - {2, 3}  # without the pin the same requests spread


def test_a_pin_is_intersected_with_the_class_pool():
    requests = [Request(f"L{i}", 0.2 * i, 1024, 1024, 20, request_class="L", ranks=frozenset({3, 4, 5}))
                for i in range(4)]
    result = _run(requests)
    assert all(o.state == "completed" for o in result.outcomes)
    assert _ranks_of(result, "L") <= {4, 5}


@pytest.mark.parametrize("req, words", [
    (Request("out", 0.0, 1024, 1024, 20, ranks=frozenset({1, 9})), "pinned ranks [9] are outside the cluster"),
    (Request("narrow", 0.0, 1024, 1024, 20, request_class="L", ranks=frozenset({0, 1, 4})),
     "leave 1 rank(s) within class pool big for its encode task, fewer than the smallest width 2"),
])
def test_an_impossible_pin_is_rejected_with_its_reason(req, words):
    text = TEXT.replace("{1, 2, 4}", "{2, 4}")
    result = _run([req, Request("ok", 0.0, 1024, 1024, 20, ranks=frozenset({0, 1}))], text)
    by_id = {o.id: o for o in result.outcomes}
    assert by_id[req.id].state == "rejected" and words in by_id[req.id].reason
    assert by_id["ok"].state == "completed"


def test_stage_pools_narrow_a_pin_too():
    text = TEXT.replace("class L { pool = big }", "pool small = {0, 1}\nplace encode, decode in small")
    bad = Request("bad", 0.0, 1024, 1024, 20, ranks=frozenset({4, 5}))
    result = _run([bad], text)
    assert result.outcomes[0].state == "rejected"
    assert "within encode pool small for its encode task" in result.outcomes[0].reason


@pytest.mark.parametrize("ranks", [frozenset(), [-1], ["0"], "01", [True]])
def test_a_malformed_pin_is_refused_by_the_request(ranks):
    with pytest.raises(RequestError, match="ranks"):
        Request("x", 0.0, 1024, 1024, 20, ranks=ranks)


def test_the_trace_format_carries_the_pin():
    req = Request("x", 1.5, 1024, 1024, 20, ranks=[3, 1, 3])
    assert req.ranks == frozenset({1, 3}) and req.to_record()["ranks"] == [1, 3]
    assert Request.from_record(req.to_record()).ranks == frozenset({1, 3})
    assert "ranks" not in Request("y", 0.0, 1024, 1024, 20).to_record()
    assert Request.from_record(Request("y", 0.0, 1024, 1024, 20).to_record()).ranks is None
