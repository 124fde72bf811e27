"""Several hosts with a node token of their own: the node agents hold it, not the client token.

Real processes on loopback: `gfdit serve --nnodes 2 --node-token-file` and two `gfdit worker`
agents for node 1, one with the node token (joins), one with only the client token (its proof
fails: dropped, it exits 1). Plus how `gfdit serve` resolves the node token, and its warning
when there is none."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.cli import serve
from gfdit.comm.launch import free_port

from test_server_two_hosts import _wait_line

ROOT = Path(__file__).resolve().parents[2]


def _secret_file(path: Path) -> str:
    token = secrets.token_hex(16)
    path.write_text(token)
    path.chmod(0o600)
    return token


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(["tiny", "--nnodes", "2", "--nproc-per-node", "1",
                              "--worker-address", "tcp://127.0.0.1:7700", *argv])


def test_serve_takes_the_node_token_from_its_file_or_environment_else_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GFDIT_TOKEN", "the-client-token")
    monkeypatch.delenv("GFDIT_NODE_TOKEN", raising=False)
    config = serve.build(_serve_args())
    assert config.cluster_token() == "the-client-token"  # the old behaviour, warned
    assert "no node token" in capsys.readouterr().err
    monkeypatch.setenv("GFDIT_NODE_TOKEN", "the-node-token")
    config = serve.build(_serve_args())
    assert (config.token, config.cluster_token()) == ("the-client-token", "the-node-token")
    node = _secret_file(tmp_path / "node")
    assert serve.build(_serve_args("--node-token-file", str(tmp_path / "node"))).cluster_token() == node
    assert "no node token" not in capsys.readouterr().err
    (tmp_path / "server.toml").write_text('node_token = "in-a-file"\n')
    with pytest.raises(ValueError, match="never holds the node token"):
        serve.build(_serve_args("--config", str(tmp_path / "server.toml")))


def test_a_node_agent_joins_with_the_node_token_and_not_with_the_client_token(tmp_path):
    from gfdit.client import Client

    client_token, node_token = _secret_file(tmp_path / "client"), _secret_file(tmp_path / "node")
    address, worker_address = f"ipc://{tmp_path}/client.sock", f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("GFDIT_TOKEN", None)
    env.pop("GFDIT_NODE_TOKEN", None)
    agent = [sys.executable, "-m", "gfdit", "worker", "--head", worker_address, "--node-rank", "1"]
    out = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    head = subprocess.Popen(
        [sys.executable, "-m", "gfdit", "serve", "tiny", "--nnodes", "2", "--nproc-per-node", "1",
         "--worker-address", worker_address, "--address", address, "--emulate", "--cost-model", "qwen-h20",
         "--token-file", str(tmp_path / "client"), "--node-token-file", str(tmp_path / "node"),
         "--heartbeat-timeout", "15", "--no-watch"], env=env, **out)
    wrong = subprocess.Popen([*agent, "--join-timeout", "10"], env=dict(env, GFDIT_TOKEN=client_token), **out)
    right = subprocess.Popen([*agent, "--join-timeout", "60"], env=dict(env, GFDIT_NODE_TOKEN=node_token), **out)
    head_lines, right_lines = [], []
    try:
        _wait_line(head, "gfdit serving", 90, head_lines)
        _wait_line(right, "joined", 10, right_lines)
        assert not any("no node token" in line for line in head_lines), head_lines
        with Client(address, token=client_token, timeout=30) as client:
            client.submit("across two hosts", steps=4).result(timeout=30)
            assert sorted(client.status()["nodes"]) == [0, 1]
        assert wrong.wait(timeout=60) == 1  # its proof (with the client token) was dropped
        assert "no answer from" in wrong.stdout.read()
    finally:
        for process in (wrong, right, head):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
