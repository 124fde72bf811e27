"""A server killed and restarted on the same address: every waiter learns it (`ServerRestarted`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gfdit.client import Client, ServerRestarted

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")


def serve(policy: Path, address: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "gfdit", "serve", "tiny", "--num-gpus", "2", "--policy", str(policy),
         "--address", address, "--emulate", "--cost-model", QWEN, "--time-scale", "1", "--no-watch"],
        stdout=subprocess.PIPE, stderr=log.open("a"), text=True, env=env, cwd=ROOT)
    banner = process.stdout.readline()
    assert "gfdit serving tiny on" in banner, log.read_text()
    return process


def test_kill_9_and_restart_on_the_same_address_fails_every_waiter_with_server_restarted(tmp_path, policy_texts):
    from test_server_cli import free_port

    policy = tmp_path / "p.gfp"
    policy.write_text(policy_texts[0])
    address = f"tcp://127.0.0.1:{free_port()}"
    first = serve(policy, address, tmp_path / "serve.log")
    second = None
    try:
        with Client(address, timeout=30) as client:
            before = client.status()["instance"]
            handles = [client.submit(f"long {i}", height=1024, width=1024, steps=300) for i in range(3)]
            outcomes: dict[str, tuple[BaseException | None, float]] = {}

            def wait(handle):
                try:
                    handle.result()
                    outcomes[handle.request_id] = (None, time.monotonic())
                except BaseException as exc:  # noqa: BLE001 -- recorded for the assertions
                    outcomes[handle.request_id] = (exc, time.monotonic())

            waiters = [threading.Thread(target=wait, args=(h,)) for h in handles]
            for w in waiters:
                w.start()
            time.sleep(1.0)
            os.kill(first.pid, signal.SIGKILL)
            killed = time.monotonic()
            first.wait()
            second = serve(policy, address, tmp_path / "serve.log")  # started at once, same address
            for w in waiters:
                w.join(timeout=40)
            assert len(outcomes) == 3, outcomes
            for request_id, (exc, at) in outcomes.items():
                assert isinstance(exc, ServerRestarted), (request_id, exc)
                assert request_id in str(exc) and "restarted" in str(exc)
                assert at - killed < 20
            assert client.status()["instance"] != before  # the same client goes on with the new server
            assert client.submit("after", steps=2).result(timeout=60).request_id
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
