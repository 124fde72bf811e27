"""The HTTP gateway as a user starts it: `gfdit serve --http-port` and `gfdit gateway --server`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"OpenAI-compatible HTTP on (http://\S+)/v1")


def start(tmp_path: Path, name: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GFDIT_TOKEN", None)
    return subprocess.Popen([sys.executable, "-m", "gfdit", *args], stdout=subprocess.PIPE,
                            stderr=(tmp_path / f"{name}.log").open("w"), text=True, env=env, cwd=ROOT)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_serve_http_port_and_a_separate_gateway(tmp_path):
    serve = start(tmp_path, "serve", "serve", "tiny", "--num-gpus", "1", "--emulate", "--cost-model", "qwen-h20",
                  "--time-scale", "0.02", "--address", "tcp://127.0.0.1:0", "--http-port", "0")
    try:
        banner = serve.stdout.readline()
        found = URL.search(banner)
        assert found, banner + (tmp_path / "serve.log").read_text()
        models = httpx.get(found.group(1) + "/v1/models", timeout=30).json()
        assert models["data"][0]["id"] == "tiny"
        address = re.search(r"on (tcp://\S+?),", banner).group(1)
        gateway = start(tmp_path, "gateway", "gateway", "--server", address, "--http-port", "0")
        try:
            line = gateway.stdout.readline()
            assert URL.search(line), line + (tmp_path / "gateway.log").read_text()
            base = URL.search(line).group(1)
            assert httpx.get(base + "/health", timeout=30).status_code == 200
            made = httpx.post(base + "/v1/images/generations", json={"prompt": "x", "size": "256x256", "steps": 2},
                              timeout=60)
            assert made.status_code == 200 and made.json()["model"] == "tiny"
        finally:
            assert stop(gateway) == 0
    finally:
        assert stop(serve) == 0


def test_gateway_refuses_a_remote_host_without_a_token(tmp_path):
    gateway = start(tmp_path, "gateway", "gateway", "--http-host", "0.0.0.0", "--http-port", "0", "--allow-remote")
    assert gateway.wait(timeout=60) == 2
    assert "token" in (tmp_path / "gateway.log").read_text()
