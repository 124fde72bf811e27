"""`gfdit serve` start-up and stop as an operator meets them: busy addresses, ports, Ctrl-C twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gfdit.client import Client

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")


def serve(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "gfdit", "serve", "tiny", "--num-gpus", "1", "--emulate", "--cost-model", QWEN,
         "--no-watch", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_busy_address_or_metrics_port_fails_at_once_with_address_in_use(tmp_path):
    port = free_port()
    first = serve(tmp_path, "--address", f"127.0.0.1:{port}")  # no scheme: taken as tcp://
    try:
        assert f"on tcp://127.0.0.1:{port}" in first.stdout.readline()
        second = serve(tmp_path, "--address", f"tcp://127.0.0.1:{port}")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2 and "address in use" in err and "Traceback" not in err, err
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            third = serve(tmp_path, "--address", f"tcp://127.0.0.1:{free_port()}",
                          "--metrics-port", str(taken.getsockname()[1]))
            _, err = third.communicate(timeout=60)
        assert third.returncode == 2 and "--metrics-port" in err and "address in use" in err, err
        assert "cannot join thread" not in err and "Traceback" not in err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def test_ctrl_c_says_it_waits_for_running_tasks_and_a_second_ctrl_c_stops_at_once(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    server = serve(tmp_path, "--address", address, "--time-scale", "1", "--param", "chunk=all")
    try:
        assert "gfdit serving" in server.stdout.readline()
        with Client(address, timeout=30) as client:
            handle = client.submit("long", height=1024, width=1024, steps=1000)  # one task of minutes
            for event in handle.progress(timeout=60):
                if event.state in ("encoding", "running"):
                    break
            server.send_signal(signal.SIGINT)
            time.sleep(1.0)
            assert server.poll() is None  # waiting for the running task, not gone
            server.send_signal(signal.SIGINT)
            _, err = server.communicate(timeout=30)
            end = list(handle.progress(timeout=30))[-1]
        assert "running tasks may take up to 120 s" in err and "Ctrl-C again stops at once" in err, err
        assert "stopping now" in err and server.returncode == 0
        assert end.state == "cancelled"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
