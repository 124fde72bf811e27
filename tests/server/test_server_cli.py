"""The commands as a user runs them: `gfdit serve`, `status`, `generate`, `policy reload`, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gfdit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gfdit", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_status_generate_reload_and_stop(tmp_path, policy_texts):
    narrow, wide = policy_texts
    policy = tmp_path / "p.gfp"
    policy.write_text(narrow)
    address = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    serve = subprocess.Popen(
        [sys.executable, "-m", "gfdit", "serve", "tiny", "--num-gpus", "2", "--policy", str(policy),
         "--address", address, "--emulate", "--cost-model", QWEN, "--time-scale", "0.02"],
        stdout=subprocess.PIPE, stderr=(tmp_path / "serve.log").open("w"), text=True, env=env, cwd=ROOT)
    try:
        banner = serve.stdout.readline()
        assert "gfdit serving tiny on" in banner, (tmp_path / "serve.log").read_text()
        status = gfdit("status", "--address", address, "--json")
        assert status.returncode == 0, status.stderr
        pids = json.loads(status.stdout)["worker_pids"]
        assert len(pids) == 2
        made = gfdit("generate", "a fox", "--height", "1024", "--width", "1024", "--steps", "4",
                     "--out", str(tmp_path / "fox.png"), "--address", address)
        assert made.returncode == 0 and "done in" in made.stdout, made.stderr
        assert "step 4/4" in made.stderr
        bad = tmp_path / "bad.gfp"
        bad.write_text(wide + "width denoise when req.dedline < 1 = 3\n")
        refused = gfdit("policy", "reload", str(bad), "--address", address)
        assert refused.returncode == 1 and "did you mean 'deadline'" in refused.stderr
        good = tmp_path / "good.gfp"
        good.write_text(wide)
        swapped = gfdit("policy", "reload", str(good), "--address", address)
        assert swapped.returncode == 0 and "swapped in" in swapped.stdout, swapped.stderr
        shown = gfdit("status", "--address", address)
        assert "wide" in shown.stdout and "1 ok, 1 refused" in shown.stdout
        first = shown.stdout.splitlines()[0]  # which server answered: another user's may hold the port
        assert first.startswith("answered by: the tiny server of user ") and f"pid {serve.pid}," in first
        assert re.search(r"started 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(up [\d.]+ min\)", first), first
    finally:
        serve.send_signal(signal.SIGINT)
        code = serve.wait(timeout=60)
    assert code == 0
    deadline = time.monotonic() + 10
    while any(pid_alive(int(p)) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(int(p)) for p in pids.values())  # no worker left behind
    gone = gfdit("status", "--address", address, "--timeout", "2")
    assert gone.returncode == 1 and "no answer" in gone.stderr


def test_serve_refuses_a_public_address_without_a_token(tmp_path):
    run = gfdit("serve", "tiny", "--address", "tcp://0.0.0.0:7600", "--emulate", "--cost-model", QWEN)
    assert run.returncode == 2 and "allow-remote" in run.stderr


def test_serve_with_a_broken_policy_prints_its_diagnostics_and_exits_2(tmp_path):
    policy = tmp_path / "broken.gfp"
    policy.write_text("policy broken\norder by req.dedline\nwidth * = 1\n")
    run = gfdit("serve", "tiny", "--num-gpus", "1", "--policy", str(policy), "--emulate", "--cost-model", QWEN,
                "--address", f"tcp://127.0.0.1:{free_port()}")
    assert run.returncode == 2, run.stderr
    assert "does not compile (1 error(s))" in run.stderr and "cannot start" not in run.stderr
    assert f"{policy}:2:14: error[E104]" in run.stderr and "did you mean 'deadline'" in run.stderr
    assert "^" in run.stderr  # the caret under the column


def test_a_client_waiting_on_a_killed_server_gets_server_gone(tmp_path, policy_texts):
    from gfdit.client import Client, ServerGone

    policy = tmp_path / "p.gfp"
    policy.write_text(policy_texts[0])
    address = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    serve = subprocess.Popen(
        [sys.executable, "-m", "gfdit", "serve", "tiny", "--num-gpus", "1", "--policy", str(policy),
         "--address", address, "--emulate", "--cost-model", QWEN, "--time-scale", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        assert "gfdit serving" in serve.stdout.readline()
        with Client(address, gone_after_s=3.0) as client:
            handle = client.submit("long", height=1024, width=1024, steps=50)  # ~30 s of emulated work
            next(e for e in handle.progress(timeout=30) if e.state == "running")
            serve.kill()
            serve.wait(timeout=30)
            started = time.monotonic()
            with pytest.raises(ServerGone):
                handle.result()
            assert time.monotonic() - started < 10
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def test_serve_refuses_a_policy_whose_rule_would_fail_on_the_cost_model(tmp_path):
    policy = tmp_path / "wide.gfp"  # compiles, but no layout of width 3 prices the hold's cost call
    policy.write_text("policy wide\nparam widths = {1, 2, 4}\nhold * when slack(max(req.width, 1) * 3) < 0s\n"
                      "order by req.arrival\nwidth * = 1\n")
    run = gfdit("serve", "tiny", "--num-gpus", "4", "--policy", str(policy), "--emulate", "--cost-model", QWEN,
                "--address", f"tcp://127.0.0.1:{free_port()}")
    assert run.returncode == 2, run.stderr
    assert f"{policy}:3:" in run.stderr and "error[E308]" in run.stderr and "no layout of width 3" in run.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGPIPE"), reason="no SIGPIPE on this platform")
def test_the_cli_in_process_gives_its_caller_sigpipe_back(capsys):
    """`gfdit ... | head` ends quietly because the CLI takes SIGPIPE's default action while it runs;
    a caller in the same process (these tests) must get its own handler back, or a later write to a
    dead child's pipe kills it."""
    from gfdit.cli import main

    before = signal.getsignal(signal.SIGPIPE)
    assert main(["--version"]) == 0 and "gfdit" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGPIPE) == before != signal.SIG_DFL
