"""Per-class quotas (`class L { share = 0.5 }`): running widths plus this round's grants and growth of
a class never exceed floor(share x gpus); the class is shrunk into its quota or waits, others go on."""

from __future__ import annotations

from gfdit.dsl import compile_policy
from gfdit.dsl.check import check
from gfdit.engine import CostModel, Request, simulate
from gfdit.engine.workload import shipped_cost_model

COST = CostModel.load(shipped_cost_model("qwen-h20"))
POLICY = """policy q
param chunk = 5
param widths = {1, 2, 4}
class L { slo = 6x, share = SHARE }
class S { slo = 1.5x }
order by req.arrival
width * = WIDTH
grow denoise
on short ON_SHORT
"""


def policy(share: str = "0.5", width: str = "2", on_short: str = "skip"):
    text = POLICY.replace("SHARE", share).replace("WIDTH", width).replace("ON_SHORT", on_short)
    if share == "none":
        text = text.replace(", share = none", "")
    return compile_policy(text, "q.gfp")


def requests():
    big = [Request(f"L{i}", 0.1 * i, 1024, 1024, 20, request_class="L") for i in range(8)]
    small = [Request(f"S{i}", 2.0 + 0.5 * i, 512, 512, 20, request_class="S") for i in range(6)]
    return big + small


def most_held(spans, cls: str) -> int:
    """The most ranks requests of class `cls` held at any one time."""
    edges = sorted({s.start for s in spans} | {s.end for s in spans})
    return max(sum(len(s.group) for s in spans if s.request_id.startswith(cls) and s.start <= t < s.end)
               for t in edges)


def test_a_class_never_holds_more_than_its_share_and_the_others_run():
    for on_short in ("skip", "shrink"):
        result = simulate(policy(on_short=on_short), requests(), COST, 8, record_spans=True, time_rounds=False)
        assert all(o.state == "completed" for o in result.outcomes)
        assert most_held(result.spans, "L") == 4  # floor(0.5 x 8), growth included
        free = simulate(policy("none", on_short=on_short), requests(), COST, 8, record_spans=True,
                        time_rounds=False)
        assert most_held(free.spans, "L") == 8  # without the quota L takes everything


def test_shrink_fits_a_request_into_what_its_class_has_left():
    result = simulate(policy("0.25", width="4", on_short="shrink"), requests()[:2], COST, 8,
                      record_spans=True, time_rounds=False)
    assert {len(s.group) for s in result.spans} == {2}  # wants 4, its class may hold 2


def test_share_is_checked():
    bad = check(POLICY.replace("SHARE", "1.5").replace("WIDTH", "2").replace("ON_SHORT", "skip"), "q.gfp")
    assert [d.code for d in bad.diagnostics] == ["E111"] and "at most 1" in bad.diagnostics[0].hint
    assert policy("0.5").classes["L"].share == 0.5 and policy("0.5").classes["S"].share is None


def test_a_width_above_the_class_limit_is_capped_to_it_not_waited_for_forever():
    """share 0.25 of 8 GPUs = 2 ranks, width 4: the request runs at 2 (skip and reserve alike)."""
    for on_short in ("skip", "reserve"):
        result = simulate(policy("0.25", width="4", on_short=on_short), requests(), COST, 8,
                          record_spans=True, time_rounds=False)
        assert all(o.state == "completed" for o in result.outcomes), on_short
        assert most_held(result.spans, "L") == 2
