"""What gfdit ships resolves through importlib.resources: by name, the same from an installed
copy as from the checkout; built-ins under `py:`; a missing path is an error, never a fall-back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.engine.builtin_policies import StaticSP
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.request import RequestError
from gfdit.engine.workload import workload_path
from gfdit.policies import known_policies, resolve_policy
from gfdit.resources import ResourceError, cost_model_dir, data_dir, policy_file, shipped_names

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_data_is_inside_the_package():
    package = ROOT / "gfdit"
    for kind in ("policies", "costmodels", "workloads", "profiles"):
        assert data_dir(kind).is_relative_to(package) and shipped_names(kind, "" if kind == "costmodels" else
                                                                         (".gfp" if kind == "policies" else ".json"))
    assert not (ROOT / "policies").exists(), "shipped policies live in gfdit/data/policies"
    assert {"slo_grow", "edf_best_fit", "static_sp"} <= set(shipped_names("policies", ".gfp"))
    assert policy_file("slo_grow") == data_dir("policies") / "slo_grow.gfp"
    assert policy_file("nope") is None


def test_policy_names_paths_and_the_builtin_namespace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing found relative to the checkout
    assert type(resolve_policy("static_sp")).__module__.startswith("gfdit.dsl")  # the shipped .gfp
    assert isinstance(resolve_policy("py:static_sp", {"sp": "2"}), StaticSP)
    assert "py:edf_best_fit" in known_policies() and "slo_grow" in known_policies()
    with pytest.raises(PolicyError, match="policy file not found: policies/edf_best_fit.gfp"):
        resolve_policy("policies/edf_best_fit.gfp")  # a path that does not exist: no built-in instead
    with pytest.raises(PolicyError, match=r"unknown policy 'edf_best'; known: .*slo_grow.*py:static_sp"):
        resolve_policy("edf_best")
    with pytest.raises(PolicyError, match="unknown built-in policy py:slo_grow"):
        resolve_policy("py:slo_grow")


def test_cost_models_and_traces_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cost_model_dir("qwen-h20") == data_dir("costmodels") / "qwen-h20"
    assert cost_model_dir("synthetic").is_dir()
    assert cost_model_dir(str(tmp_path)) == tmp_path  # a directory is itself
    with pytest.raises(ResourceError, match="shipped: qwen-h20, synthetic"):
        cost_model_dir("h100")
    assert workload_path("short-4gpu") == workload_path("short-4gpu.json") == data_dir("workloads") / "short-4gpu.json"
    with pytest.raises(RequestError, match="no workload file public-short.json and no shipped trace"):
        workload_path("public-short.json")
    (tmp_path / "short-4gpu.json").write_text("{}")
    assert workload_path("short-4gpu.json") == Path("short-4gpu.json")  # a file that exists wins


@pytest.mark.slow
def test_an_installed_copy_resolves_shipped_names_outside_the_checkout(tmp_path):
    """pip installs the package (no checkout on the path, another working directory): shipped
    policies, cost models and traces are found by name, and the demo's policy file exists."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    run = tmp_path / "run"
    run.mkdir()

    def gfdit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gfdit", *args], capture_output=True, text=True,
                              env=env, cwd=run, timeout=120)

    version = gfdit("--version")
    assert version.returncode == 0 and str(target / "gfdit") in version.stdout, version
    done = gfdit("simulate", "--policy", "slo_grow", "--workload", "short-4gpu", "--gpus", "4",
                 "--cost-model", "synthetic")
    assert done.returncode == 0, done.stderr
    assert "policy slo_grow" in done.stdout
    explained = gfdit("policy", "explain", "--policy", "slo_grow", "--workload", "short-4gpu.json",
                      "--cost-model", "qwen-h20", "--gpus", "4", "--limit", "3")
    assert explained.returncode == 0 and "rule" in explained.stdout, explained.stderr
    probe = ("from gfdit.resources import policy_file; from gfdit.cli.demo import policy_source;"
             "print(policy_file('slo_grow')); print(policy_source('edf_best_fit'))")
    paths = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=run,
                           timeout=60)
    assert paths.returncode == 0, paths.stderr
    assert all(line.startswith(str(target)) for line in paths.stdout.splitlines()), paths.stdout
