"""`gfdit simulate` and `gfdit workload` end to end, and the reference figures on the public trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gfdit.cli import main
from gfdit.engine.builtin_policies import EDFBestFit, StaticSP, edf_best_fit, static_sp
from gfdit.engine.costmodel import CostModel
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model, shipped_workload
from gfdit.policies import POLICY_DIR, builtin_policy, resolve_policy

PUBLIC = Path(__file__).resolve().parents[3] / "shared" / "data" / "workloads" / "public-short.json"
KEYS = ("requests", "completed", "slo_attainment", "mean_latency_s", "p50_latency_s", "p95_latency_s",
        "p99_latency_s", "throughput_rpm", "goodput_rpm", "gpu_utilization", "migrations")


@pytest.fixture(scope="module")
def qwen() -> CostModel:
    return CostModel.load(shipped_cost_model("qwen-h20"))


def test_simulate_writes_metrics_json_trace_and_decision_log(tmp_path, capsys):
    out, trace, log = tmp_path / "m.json", tmp_path / "t.json", tmp_path / "d.jsonl"
    rc = main(["simulate", "--policy", "edf_best_fit", "--workload", "short-4gpu", "--gpus", "4",
               "--json", str(out), "--trace", str(trace), "--decision-log", str(log)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| overall |" in printed and "|       S |" in printed
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"overall", "classes"} and set(metrics["classes"]) == {"S", "M", "L"}
    for block in [metrics["overall"], *metrics["classes"].values()]:
        assert all(key in block for key in KEYS)
        assert 0.0 <= block["slo_attainment"] <= 1.0
    assert metrics["overall"]["requests"] == sum(c["requests"] for c in metrics["classes"].values())
    events = json.loads(trace.read_text())["traceEvents"]
    lanes = {e["tid"] for e in events if e["ph"] == "X"}
    assert lanes == {0, 1, 2, 3}
    names = [e["args"]["name"] for e in events if e.get("name") == "thread_name"]
    assert names == ["rank 0", "rank 1", "rank 2", "rank 3"]
    decisions = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"admit", "dispatch", "complete"} <= {d["event"] for d in decisions}


def test_simulate_reports_bad_input_clearly(tmp_path, capsys):
    assert main(["simulate", "--policy", "no_such_policy"]) == 2
    err = capsys.readouterr().err
    assert "unknown policy 'no_such_policy'" in err and "edf_best_fit" in err and "static_sp" in err
    assert main(["simulate", "--workload", str(tmp_path / "missing.json")]) == 2
    assert "cannot read workload" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"requests": [{"request_id": "a", "arrival_ms": 0}]}))
    assert main(["simulate", "--workload", str(bad)]) == 2
    assert "missing field 'height'" in capsys.readouterr().err
    for option in ("--json", "--trace"):  # an output that cannot be written: one line, exit 2
        assert main(["simulate", "--workload", "short-4gpu", option, str(tmp_path / "no" / "out.json")]) == 2
        assert "No such file or directory" in capsys.readouterr().err


def test_plot_draws_a_timeline(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "timeline.png"
    assert main(["simulate", "--policy", "static_sp", "--workload", "short-4gpu", "--plot", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_builtin_policies_check_and_coerce_params():
    assert isinstance(builtin_policy("static_sp", {"sp": "2"}), StaticSP)
    assert builtin_policy("static_sp", {"sp": "2"}).widths == (2,)
    policy = builtin_policy("edf_best_fit", {"chunk": "all", "widths": "{1,2}"})
    assert isinstance(policy, EDFBestFit) and policy.chunk is None and policy.widths == (1, 2)
    with pytest.raises(PolicyError, match="has no parameters"):
        builtin_policy("static_sp", {"nope": "1"})


def test_resolve_policy_prefers_the_shipped_gfp_and_refuses_a_missing_file(tmp_path):
    assert type(resolve_policy("static_sp")).__module__.startswith("gfdit.dsl")  # gfdit/data/policies/static_sp.gfp
    with pytest.raises(PolicyError, match="policy file not found"):
        resolve_policy("/nowhere/x.gfp")
    with pytest.raises(PolicyError, match="policy file not found"):  # no silent fall-back to the built-in
        resolve_policy(str(tmp_path / "static_sp.gfp"))


def test_shipped_workload_builtin_policies_side_by_side(qwen):
    workload = Workload.load(shipped_workload("short-4gpu"))
    fixed = simulate(static_sp(4), workload, qwen, 4).metrics["overall"]
    elastic = simulate(edf_best_fit(), workload, qwen, 4).metrics["overall"]
    assert fixed["completed"] == elastic["completed"] == len(workload.requests)
    assert elastic["slo_attainment"] > fixed["slo_attainment"]
    assert elastic["mean_latency_s"] < fixed["mean_latency_s"]
    assert fixed["migrations"] == 0  # one task per request: nothing ever moves


@pytest.mark.skipif(not PUBLIC.is_file(), reason="../shared/data is not present")
def test_reference_figures_on_the_public_trace(qwen):
    # The GF-DiT artifact's simulator: fixed pipeline SAR 16% / mean 292 s; edf_best_fit SAR 100% / 39 s.
    workload = Workload.load(PUBLIC)
    fixed = simulate(static_sp(4), workload, qwen, 4).metrics["overall"]
    assert fixed["slo_attainment"] == pytest.approx(0.16)
    assert fixed["mean_latency_s"] == pytest.approx(292, rel=0.01)
    for chunk in (1, 5):
        elastic = simulate(edf_best_fit(chunk=chunk), workload, qwen, 4).metrics["overall"]
        assert elastic["slo_attainment"] == 1.0
        assert elastic["mean_latency_s"] == pytest.approx(39, rel=0.10)  # 40.5 s (chunk 1), 41.7 s (chunk 5)


def test_workload_command_writes_the_trace_format(tmp_path, capsys):
    out = tmp_path / "w.json"
    assert main(["workload", "--profile", "burst", "--gpus", "4", "--load", "0.8", "--seed", "3",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"description", "metadata", "requests"}
    assert Workload.load(out).requests  # reads back
    assert main(["workload", "--profile", "nope", "--gpus", "4", "--out", str(out)]) == 2
    assert "known: burst, flash, short" in capsys.readouterr().err


@pytest.mark.parametrize("name, params, builtin", [
    ("static_sp", {}, lambda: static_sp(4)),
    ("edf_best_fit", {}, lambda: edf_best_fit(chunk=5)),
    ("edf_best_fit", {"chunk": "1"}, lambda: edf_best_fit(chunk=1)),
])
def test_builtins_and_shipped_gfp_policies_decide_alike(qwen, name, params, builtin):
    workload = Workload.load(shipped_workload("burst-4gpu"))
    compiled = simulate(resolve_policy(str(POLICY_DIR / f"{name}.gfp"), params), workload, qwen, 4,
                        record_spans=True)
    python = simulate(builtin(), workload, qwen, 4, record_spans=True)
    assert [(s.task_id, s.group, s.start) for s in compiled.spans] == \
           [(s.task_id, s.group, s.start) for s in python.spans]
