"""`gfdit policy tune` and gfdit.tuning: grids, random samples, parallel runs, Pareto front, output files."""

import json

import pytest

from gfdit.cli import main
from gfdit.dsl import load_policy
from gfdit.engine import CostModel, Workload, simulate
from gfdit.engine.workload import shipped_cost_model, shipped_workload
from gfdit.policies import resolve_policy
from gfdit.tuning import Setting, best, expand, mark_pareto, tune, with_params

COST_DIR = shipped_cost_model("qwen-h20")
TRACE = shipped_workload("short-4gpu")


def test_a_grid_is_every_combination_and_a_random_search_a_seeded_sample():
    grid = {"chunk": ["1", "2", "5"], "penalty": ["2", "4", "8"]}
    combos = expand(grid)
    assert len(combos) == 9 and {"chunk": "5", "penalty": "2"} in combos
    drawn = expand(grid, sample=4, seed=7)
    assert len(drawn) == 4 and len({tuple(c.items()) for c in drawn}) == 4
    assert drawn == expand(grid, sample=4, seed=7) and all(c in combos for c in drawn)


def test_each_setting_is_what_simulate_gives_and_processes_change_nothing():
    grid = {"chunk": ["2", "5"], "penalty": ["2", "8"]}
    serial = tune("default", grid, [TRACE], COST_DIR, 4, jobs=1)
    parallel = tune("default", grid, [TRACE], COST_DIR, 4, jobs=2)
    assert [s.metrics for s in serial] == [s.metrics for s in parallel]
    cost = CostModel.load(COST_DIR)
    for s in serial:
        direct = simulate(resolve_policy("default", s.params), Workload.load(TRACE), cost, 4,
                          time_rounds=False).metrics["overall"]
        assert s.metrics["mean_latency_s"] == direct["mean_latency_s"]
        assert s.metrics["p99_latency_s"] == direct["p99_latency_s"]
        assert s.metrics["slo_attainment"] == pytest.approx(direct["slo_attainment"])


def test_attainment_counts_rejected_requests_as_simulate_does():
    """With a queue cap that turns arrivals away, attainment is over every request, not the completed."""
    serial = tune("default", {"queue_cap": ["2"]}, [TRACE], COST_DIR, 4, jobs=1)
    direct = simulate(resolve_policy("default", {"queue_cap": "2"}), Workload.load(TRACE),
                      CostModel.load(COST_DIR), 4, time_rounds=False).metrics["overall"]
    assert direct["rejected"] > 0
    assert serial[0].metrics["slo_attainment"] == pytest.approx(direct["slo_attainment"])


def test_the_pareto_front_and_the_objective():
    def setting(name, slo, mean, p99):
        return Setting({"x": name}, {"slo_attainment": slo, "mean_latency_s": mean, "p99_latency_s": p99,
                                     "p95_latency_s": p99, "goodput_rpm": slo})
    a, b, c, d = setting("a", 0.9, 30, 90), setting("b", 0.8, 20, 60), setting("c", 0.8, 35, 50), \
        setting("d", 0.9, 30, 95)
    mark_pareto([a, b, c, d])
    assert (a.pareto, b.pareto, c.pareto, d.pareto) == (True, True, False, True)  # c: b is better on both
    assert best([a, b, c, d], "slo").params == {"x": "a"}  # ties on SLO and mean: first
    assert best([a, b, c, d], "mean") is b and best([a, b, c, d], "p99") is c


def test_with_params_rewrites_param_lines_and_refuses_unknown_names():
    text = "policy p\nparam chunk = 5   # steps\nparam widths = {1, 2}\norder by req.arrival\nwidth * = 1\n"
    out = with_params(text, {"chunk": "2", "widths": "{1}"})
    assert "param chunk = 2   # steps" in out and "param widths = {1}\n" in out
    with pytest.raises(ValueError, match="no param 'penalty'"):
        with_params(text, {"penalty": "3"})


def test_the_command_prints_marks_and_writes_the_choice(tmp_path, capsys):
    params, gfp, out = tmp_path / "p.txt", tmp_path / "t.gfp", tmp_path / "all.json"
    code = main(["policy", "tune", "default", "--workload", str(TRACE), "--gpus", "4", "--grid", "chunk=2,5",
                 "--grid", "penalty=2,8", "--objective", "mean", "--jobs", "2", "--write-params", str(params),
                 "--write-gfp", str(gfp), "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "chosen by mean" in text and "*" in text and ">" in text
    rows = json.loads(out.read_text())
    chosen = [r for r in rows if r["chosen"]][0]
    assert chosen["mean_latency_s"] == min(r["mean_latency_s"] for r in rows)
    assert params.read_text() == "".join(f"--param {k}={v}\n" for k, v in chosen["params"].items())
    tuned = load_policy(gfp)
    assert tuned.chunk == int(chosen["params"]["chunk"])


def test_a_bad_param_is_a_clear_error(capsys):
    code = main(["policy", "tune", "default", "--workload", str(TRACE), "--gpus", "4", "--grid", "nope=1,2"])
    assert code == 2 and "nope" in capsys.readouterr().err


def test_shipped_names_work_as_in_simulate(capsys):
    """A shipped trace named with .json and a shipped cost model named `synthetic`, as simulate takes them."""
    code = main(["policy", "tune", "fcfs", "--workload", "short-8gpu-synthetic.json", "--gpus", "8",
                 "--cost-model", "synthetic", "--grid", "chunk=2,5", "--jobs", "1"])
    assert code == 0, capsys.readouterr().err
