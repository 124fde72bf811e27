"""`gfdit policy check | explain | reload` as a user runs them."""

import json
import sys
import types
from pathlib import Path

from gfdit.cli import main
from gfdit.resources import data_dir

ROOT = Path(__file__).resolve().parents[2]
COST = ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20"


def test_check_passes_every_shipped_policy(capsys):
    files = [str(p) for p in sorted(data_dir("policies").glob("*.gfp"))]
    assert main(["policy", "check", *files]) == 0
    assert capsys.readouterr().out.count(": ok, revision ") == len(files)


def test_check_fails_with_rendered_diagnostics(tmp_path, capsys):
    bad = tmp_path / "bad.gfp"
    bad.write_text("policy b\norder by req.dedline\nwidth * = 1\n")
    good = data_dir("policies") / "fcfs.gfp"
    assert main(["policy", "check", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:2:14: error[E104]" in captured.err and "did you mean 'deadline'" in captured.err
    assert main(["policy", "check", "--json", str(bad)]) == 1
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert (record["code"], record["line"], record["col"]) == ("E104", 2, 14)


def write_workload(path: Path) -> None:
    requests = [{"request_id": f"r{i}", "arrival_ms": i * 500.0, "height": 512, "width": 512,
                 "num_frames": 1, "num_steps": 10, "text_seq_len": 64, "request_class": "S"}
                for i in range(4)]
    path.write_text(json.dumps({"description": "tiny", "metadata": {}, "requests": requests}))


def test_explain_shows_rule_lines_and_values(tmp_path, capsys):
    trace = tmp_path / "w.json"
    write_workload(trace)
    policy = data_dir("policies") / "edf_best_fit.gfp"
    code = main(["policy", "explain", "--policy", str(policy), "--workload", str(trace),
                 "--cost-model", str(COST), "--gpus", "2", "--request", "r1"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"rule {policy}:" in out and "width denoise = min k in widths" in out
    assert "saw  width=" in out and "r0" not in out
    assert main(["policy", "explain", "--policy", str(policy), "--workload", str(trace),
                 "--cost-model", str(COST), "--gpus", "2", "--request", "nope"]) == 2


def test_explain_reports_a_broken_policy(tmp_path, capsys):
    trace, bad = tmp_path / "w.json", tmp_path / "bad.gfp"
    write_workload(trace)
    bad.write_text("policy b\nwidth * = 1\n")
    assert main(["policy", "explain", "--policy", str(bad), "--workload", str(trace),
                 "--cost-model", str(COST), "--gpus", "2"]) == 1
    assert "E303" in capsys.readouterr().err


def test_reload_delegates_to_the_client(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("gfdit.client")
    fake.reload_policy_cli = lambda args: seen.append((args.file, args.address)) or 0
    monkeypatch.setitem(sys.modules, "gfdit.client", fake)
    assert main(["policy", "reload", "p.gfp", "--address", "tcp://127.0.0.1:1"]) == 0
    assert seen == [("p.gfp", "tcp://127.0.0.1:1")]
    monkeypatch.setitem(sys.modules, "gfdit.client", types.ModuleType("gfdit.client"))
    assert main(["policy", "reload", "p.gfp"]) == 2
    assert "server client not available" in capsys.readouterr().err


def test_simulate_runs_a_gfp_file_and_reports_a_broken_one(tmp_path, capsys):
    trace, bad = tmp_path / "w.json", tmp_path / "bad.gfp"
    write_workload(trace)
    fcfs = data_dir("policies") / "fcfs.gfp"
    assert main(["simulate", "--policy", str(fcfs), "--workload", str(trace),
                 "--cost-model", str(COST), "--gpus", "2"]) == 0
    assert "policy fcfs (" in capsys.readouterr().out
    bad.write_text("policy b\norder by req.arrival\nwidth * = 3\n")
    assert main(["simulate", "--policy", str(bad), "--workload", str(trace),
                 "--cost-model", str(COST), "--gpus", "2"]) != 0
    assert f"{bad}:3:11: error[E302]" in capsys.readouterr().err
