"""The workload generator: the public trace's format, deadlines from the cost model, load scaling, seeds."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from gfdit.engine.costmodel import CostModel
from gfdit.engine.request import RequestError
from gfdit.engine.workload import Workload, shipped_cost_model, shipped_workload
from gfdit.engine.workload_gen import generate, load_profile

PUBLIC = Path(__file__).resolve().parents[3] / "shared" / "data" / "workloads" / "public-short.json"


@pytest.fixture(scope="module")
def qwen() -> CostModel:
    return CostModel.load(shipped_cost_model("qwen-h20"))


def test_deadlines_are_arrival_plus_alpha_t_single(qwen):
    data = generate(load_profile("short"), qwen, 4, 0.9, seed=5)
    alphas = data["metadata"]["alphas"]
    for rec in data["requests"]:
        t_single = Workload.from_json({"requests": [rec]}).requests[0]
        assert rec["profiled_optimal_latency_ms"] == pytest.approx(qwen.t_single(t_single.shape) * 1000, abs=1e-3)
        assert rec["deadline_ms"] == pytest.approx(
            rec["arrival_ms"] + alphas[rec["request_class"]] * rec["profiled_optimal_latency_ms"], abs=4e-3)  # rounding of ms to 3 places, times alpha


def test_same_seed_same_trace_other_seed_other_trace(qwen):
    a = generate(load_profile("short"), qwen, 4, 0.9, seed=1)
    assert a == generate(load_profile("short"), qwen, 4, 0.9, seed=1)
    assert a["requests"] != generate(load_profile("short"), qwen, 4, 0.9, seed=2)["requests"]


def test_offered_load_scales_with_load_and_gpus(qwen):
    # Over a long horizon the realized load converges to the target; doubling GPUs doubles arrivals.
    def realized(gpus, load):
        data = generate(load_profile("short"), qwen, gpus, load, seed=9, duration_scale=30)
        work = sum(r["profiled_optimal_latency_ms"] for r in data["requests"]) / 1000
        active = 540 * 30
        return work / (gpus * active), len(data["requests"])
    low, n_low = realized(4, 0.5)
    high, n_high = realized(8, 1.0)
    assert low == pytest.approx(0.5, rel=0.1)
    assert high == pytest.approx(1.0, rel=0.1)
    assert n_high / n_low == pytest.approx(4, rel=0.15)


def test_arrivals_follow_the_phases(qwen):
    data = generate(load_profile("short"), qwen, 4, 0.9, seed=3, duration_scale=20)
    phases = data["metadata"]["phases"]
    for phase in phases:
        inside = [r for r in data["requests"] if phase["start_s"] * 1000 <= r["arrival_ms"] < phase["end_s"] * 1000]
        expected = phase["arrival_rate_per_min"] * (phase["end_s"] - phase["start_s"]) / 60
        assert len(inside) == pytest.approx(expected, rel=0.15, abs=3)


@pytest.mark.skipif(not PUBLIC.is_file(), reason="../shared/data is not present")
def test_matches_the_public_trace_format_and_rates(qwen):
    public = json.loads(PUBLIC.read_text())
    ours = generate(load_profile("short"), qwen, 4, 0.9, seed=0)
    assert set(ours["requests"][0]) == set(public["requests"][0])
    assert set(public["metadata"]) - {"effective_rate_scale", "rate_scale"} <= set(ours["metadata"])
    for mine, theirs in zip(ours["metadata"]["phases"], public["metadata"]["phases"], strict=True):
        assert mine["name"] == theirs["name"] and mine["mix"] == theirs["mix"]
        assert mine["arrival_rate_per_min"] == pytest.approx(theirs["arrival_rate_per_min"], rel=1e-9)


def test_shipped_workloads_load(qwen):
    for name in ("short-4gpu", "burst-4gpu", "short-8gpu-synthetic"):
        workload = Workload.load(shipped_workload(name))
        assert len(workload.requests) > 50
        arrivals = [r.arrival for r in workload.requests]
        assert arrivals == sorted(arrivals)
        assert statistics.mean(r.steps for r in workload.requests) > 20


def test_bad_workloads_report_every_bad_record(tmp_path):
    bad = {"requests": [{"request_id": "a", "arrival_ms": 0, "height": 512, "width": 512, "num_steps": 0},
                        {"request_id": "b", "arrival_ms": -5, "height": 512, "width": 512, "num_steps": 5},
                        {"request_id": "c", "arrival_ms": 0, "height": 512, "width": 512, "num_steps": 5},
                        {"request_id": "c", "arrival_ms": 1, "height": 512, "width": 512, "num_steps": 5}]}
    with pytest.raises(RequestError) as info:
        Workload.from_json(bad)
    text = str(info.value)
    assert "3 bad records" in text and "steps must be a positive integer" in text
    assert "arrival must be finite" in text and "duplicate request_id 'c'" in text
    with pytest.raises(RequestError, match="'requests' list"):
        Workload.from_json([1, 2])
    with pytest.raises(RequestError, match="unknown workload profile"):
        load_profile("nope")


def test_malformed_profiles_are_clear_errors_not_key_errors(tmp_path, capsys):
    from gfdit.cli import main
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{bad")
    with pytest.raises(RequestError, match="cannot read profile"):
        load_profile(str(bad_json))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"classes": {"S": {"height": 512}},
                                  "phases": [{"name": "p", "start_s": 0, "end_s": 9, "weight": 1},
                                             {"name": "q", "start_s": 0, "end_s": 9, "weight": 1,
                                              "mix": {"S": 0}}]}))
    with pytest.raises(RequestError) as info:
        load_profile(str(broken))
    for part in ("class 'S' needs numbers ['width', 'num_steps', 'alpha']", "phase 'p' lacks ['mix']",
                 "phase 'q' has arrivals (weight > 0) but no class share > 0"):
        assert part in str(info.value)
    assert main(["workload", "--profile", str(broken), "--gpus", "4", "--out", str(tmp_path / "o.json")]) == 2
    assert main(["workload", "--profile", "short", "--gpus", "4",
                 "--out", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
    for name in ("short", "burst"):
        load_profile(name)  # the shipped profiles pass the checks
