"""ServerConfig: a TOML file, flags over it, one clear error per bad field, the docs table from the model."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.cli import serve as serve_cli
from gfdit.cli.serve_config import TABLE_BEGIN, TABLE_END, reference_table
from gfdit.server.config import ConfigError, ServerConfig
from gfdit.server.config_file import build_config

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    return parser.parse_args(argv)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_file_values_then_flags_on_top(tmp_path, monkeypatch):
    monkeypatch.delenv("GFDIT_TOKEN", raising=False)
    path = write(tmp_path, 'model = "tiny"\nnum_gpus = 8\npolicy = "slo_grow"\nexecutor = "emulated"\n'
                           'cost_model = "qwen-h20"\nmax_queue = 50\n[policy_params]\nchunk = "2"\nmargin = "1s"\n')
    config = serve_cli.build(parse("--config", str(path), "--num-gpus", "2", "--param", "chunk=4",
                                   "--time-scale", "0.5"))
    assert (config.model, config.num_gpus, config.policy, config.max_queue) == ("tiny", 2, "slo_grow", 50)
    assert config.policy_params == {"chunk": "4", "margin": "1s"}  # merged per key, the flag wins
    assert config.time_scale == 0.5 and config.executor == "emulated"
    assert Path(config.cost_model, "layouts.json").is_file() or Path(config.cost_model).is_dir()
    assert Path(config.cost_model).name == "qwen-h20"  # the shipped cost model by name


def test_without_a_file_the_flags_and_the_model_defaults(monkeypatch):
    monkeypatch.delenv("GFDIT_TOKEN", raising=False)
    config = serve_cli.build(parse("tiny", "--emulate", "--cost-model", "synthetic", "--no-watch"))
    assert config.executor == "emulated" and config.watch_policy is False
    assert config.num_gpus == ServerConfig.model_fields["num_gpus"].default
    assert serve_cli.build(parse()).model == "tiny"


def test_token_file_from_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("GFDIT_TOKEN", raising=False)
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    path = write(tmp_path, f'token_file = "{secret}"\n')
    assert serve_cli.build(parse("--config", str(path))).token == "s3cret"


@pytest.mark.parametrize("text, expected", [
    ("num_gpus = 0\n", "num_gpus: Input should be greater than or equal to 1 (got 0)"),
    ('num_gpu = 4\n', "num_gpu: no such setting (did you mean 'num_gpus'?)"),
    ("[policy_params]\nchunk = 2\n", "policy_params.chunk: Input should be a valid string"),
    ('device = "gpu"\n', "device: device must be cpu, cuda or cuda:N, got 'gpu'"),
    ('dtype = "bfloat16"\n', "dtype: Input should be 'auto', 'bf16', 'fp16' or 'fp32'"),
    ('token = "x"\n', "token: a config file never holds the token"),
    ("num_gpus = \n", "not valid TOML"),
    ('executor = "emulated"\n', "the emulated executor needs a cost model"),
    ('cost_model = "nowhere"\n', "cost_model: no cost-model directory 'nowhere'"),
])
def test_a_bad_file_is_one_error_with_the_field_path(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        build_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_missing_file_and_every_problem_at_once(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        build_config(tmp_path / "none.toml")
    with pytest.raises(ConfigError) as caught:
        build_config(write(tmp_path, 'num_gpus = "four"\ntime_scale = -1\n'))
    assert "num_gpus:" in str(caught.value) and "time_scale:" in str(caught.value)


def test_dtype_follows_the_device():
    assert ServerConfig(device="cpu").worker_dtype() == "float32"
    assert ServerConfig(device="cuda").worker_dtype() == "bfloat16"
    assert ServerConfig(device="cuda:1", dtype="fp16").worker_dtype() == "float16"
    with pytest.raises(ConfigError, match="every worker on one GPU"):
        ServerConfig(device="cuda:0", num_gpus=2).check()


def test_the_docs_table_is_the_model():
    text = (ROOT / "docs" / "deploy.md").read_text()
    table = text[text.index(TABLE_BEGIN) + len(TABLE_BEGIN): text.index(TABLE_END)].strip()
    assert table == reference_table(), "regenerate: python -m gfdit.cli.serve_config --write docs/deploy.md"
    for name, info in ServerConfig.model_fields.items():
        assert info.description, f"ServerConfig.{name} has no description"
        assert f"| `{name}` |" in table


def test_serve_with_a_bad_config_file_says_one_line(tmp_path):
    path = write(tmp_path, "num_gpus = -3\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "gfdit", "serve", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"gfdit serve: {path}: num_gpus: Input should be greater than or equal to 1 (got -3)"


@pytest.mark.slow
def test_a_server_from_a_config_file_and_a_shipped_policy_reloaded_by_name(tmp_path):
    from gfdit.client import Client
    from gfdit.server import Server

    path = write(tmp_path, 'executor = "emulated"\ncost_model = "qwen-h20"\nnum_gpus = 2\npolicy = "fcfs"\n'
                           'address = "tcp://127.0.0.1:0"\ntime_scale = 0.02\n')
    with Server(build_config(path)) as server, Client(server.address, timeout=30) as client:
        assert client.status()["policy"] == "fcfs"
        reply = client.reload_policy("slo_grow")  # a shipped policy by name, wherever the client runs
        assert reply.ok, reply.diagnostics
        assert client.status()["revision"] == reply.revision
        assert client.submit("a fox", height=512, width=512, steps=4).result(timeout=60).latency_s > 0


@pytest.mark.slow
def test_the_decision_log_can_be_followed_while_the_server_runs(server_factory, tmp_path):
    from gfdit.client import Client

    log = tmp_path / "decisions.jsonl"
    server = server_factory(decision_log=str(log))
    with Client(server.address, timeout=30) as client:
        handle = client.submit("a fox", height=512, width=512, steps=4)
        handle.result(timeout=60)
        lines = log.read_text().splitlines()  # the server still runs: every line already written
        assert any(handle.request_id in line and '"dispatch"' in line for line in lines), lines
