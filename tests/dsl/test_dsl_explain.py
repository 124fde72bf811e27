"""`gfdit policy explain` on a two-request trace whose every decision is known in advance:
`a` (1024², 4096 tokens) goes first by `order by -req.tokens` and takes width 2 of 3 GPUs;
`b` (768²) also wants width 2 and finds 1 free rank (`on short skip`), so it is not placed
until `a` ends. The values inside the choice (each `finish(k)`) are computed here from the
cost model, independently of the engine."""

import json

import pytest

from gfdit.cli import main
from gfdit.dsl import compile_policy
from gfdit.engine import Cluster, CostModel, DecisionLog, Engine, Request
from gfdit.engine.workload import shipped_cost_model

COST = CostModel.load(shipped_cost_model("qwen-h20"))
POLICY = """policy tiny
param chunk = all
param widths = {1, 2}
order by -req.tokens
width * = argmin k in widths by finish(k)
"""
STEPS = 10


def request(rid: str, side: int) -> Request:
    return Request(rid, 0.0, side, side, STEPS)


def finish(req: Request, k: int, now: float = 0.0) -> float:
    encode, step, decode = COST.parts(req.shape, k)
    return now + encode + COST.prepare_s(req.shape, k) + STEPS * step + decode


@pytest.fixture
def explained(tmp_path, capsys):
    policy, trace = tmp_path / "tiny.gfp", tmp_path / "trace.json"
    policy.write_text(POLICY)
    records = [{"request_id": rid, "arrival_ms": 0, "height": side, "width": side, "num_steps": STEPS}
               for rid, side in (("a", 1024), ("b", 768))]
    trace.write_text(json.dumps({"requests": records}))
    code = main(["policy", "explain", "--policy", str(policy), "--workload", str(trace),
                 "--gpus", "3", "--limit", "0"])
    assert code == 0
    return capsys.readouterr().out, str(policy)


def test_explain_shows_the_candidate_that_was_not_placed_and_why(explained):
    out, path = explained
    blocks = out.split("\nt=")
    (skip,) = [b for b in blocks if " skip " in b]
    assert skip.split("\n")[0].strip().endswith("skip     b not placed: wanted width 2, 1 free (on short skip)")
    assert f"rule {path}:5: width * = argmin k in widths by finish(k)" in skip
    assert f"key  ({-request('b', 768).tokens})" in skip
    dispatch_a = next(b for b in blocks if "dispatch a " in b)
    assert "width 2 (wanted 2) on ranks" in dispatch_a and f"key  ({-request('a', 1024).tokens})" in dispatch_a


def test_explain_shows_each_value_inside_the_choice(explained):
    out, _ = explained
    a, b = request("a", 1024), request("b", 768)
    for req, block in ((a, next(x for x in out.split("\nt=") if "dispatch a " in x)),
                       (b, next(x for x in out.split("\nt=") if " skip " in x))):
        assert f"finish(k)={{1: {finish(req, 1):.3f}, 2: {finish(req, 2):.3f}}}" in block


def test_a_waiting_candidate_is_logged_once_not_every_round():
    log = DecisionLog()
    engine = Engine(compile_policy(POLICY, "tiny.gfp"), COST, Cluster(3), log)
    engine.submit(request("a", 1024), 0.0)
    engine.submit(request("b", 768), 0.0)
    for now in (0.0, 0.1, 0.2):
        engine.schedule(now)
    skips = [r for r in log.records if r["event"] == "skip"]
    assert len(skips) == 1 and skips[0]["request"] == "b"
    record = json.loads(log.dumps().splitlines()[-1])  # the JSONL keeps the old fields, adds new ones
    assert {"t", "event", "policy", "revision", "request", "rule", "values", "order_key"} <= set(record)
    assert record["values"]["wanted"] == 2 and record["values"]["free"] == 1
