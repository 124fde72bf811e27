"""Two hosts on one machine: a head (`gfdit serve --nnodes 2`) and a node agent
(`gfdit worker --head`) in two network namespaces joined by a veth pair, so the
two process trees share nothing but TCP (without root: both on loopback). Real
tiny requests span both hosts (width 2 on 1+1 ranks); the second host's worker is
SIGKILLed mid-request; every request still completes, on the head alone."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gfdit.comm.launch import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SPAN2 = """\
policy span2
param chunk = all
param widths = {1, 2}
order by req.arrival
width * = 2             # across both hosts of a 1+1 world
on short shrink         # one rank once the other host is gone
place lowest
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def two_hosts():
    """(head command prefix, node command prefix, head IP): two fresh network
    namespaces with a veth pair (10.213.7.1 <-> 10.213.7.2), else plain loopback."""
    tag = secrets.token_hex(3)
    names = (f"gfdit-h-{tag}", f"gfdit-n-{tag}")
    try:
        if os.geteuid() != 0 or not shutil.which("ip"):
            raise OSError("network namespaces need root and iproute2")
        for name in names:
            _ip("netns", "add", name)
        _ip("link", "add", f"gfh{tag}", "netns", names[0], "type", "veth", "peer", "name", f"gfn{tag}",
            "netns", names[1])
        for name, dev, addr in ((names[0], f"gfh{tag}", "10.213.7.1/30"), (names[1], f"gfn{tag}", "10.213.7.2/30")):
            _ip("-n", name, "addr", "add", addr, "dev", dev)
            _ip("-n", name, "link", "set", dev, "up")
            _ip("-n", name, "link", "set", "lo", "up")
    except (OSError, subprocess.SubprocessError):
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        yield [], [], "127.0.0.1"
        return
    try:
        yield ["ip", "netns", "exec", names[0]], ["ip", "netns", "exec", names[1]], "10.213.7.1"
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_line(process: subprocess.Popen, text: str, timeout_s: float, lines: list[str]) -> None:
    """Read `process`'s stdout on a thread until a line contains `text`."""
    seen = threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if text in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    if not seen.wait(timeout_s):
        raise AssertionError(f"no {text!r} within {timeout_s} s:\n" + "".join(lines[-40:]))


def test_requests_span_two_hosts_and_survive_the_second_hosts_death(two_hosts, tmp_path):
    from gfdit.client import Client

    head_prefix, node_prefix, head_ip = two_hosts
    token = secrets.token_hex(16)
    (tmp_path / "token").write_text(token)
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "span2.gfp").write_text(SPAN2)
    address = f"ipc://{tmp_path}/client"
    worker_address = f"tcp://{head_ip}:{free_port() if not head_prefix else 29511}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("GFDIT_TOKEN", None)
    head = subprocess.Popen(
        [*head_prefix, sys.executable, "-m", "gfdit", "serve", "tiny", "--nnodes", "2", "--nproc-per-node", "1",
         "--worker-address", worker_address, "--address", address, "--policy", str(tmp_path / "span2.gfp"),
         "--cost-model", "qwen-h20", "--token-file", str(tmp_path / "token"), "--heartbeat-timeout", "15",
         "--no-watch", "--decision-log", str(tmp_path / "decisions.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = subprocess.Popen([*node_prefix, sys.executable, "-m", "gfdit", "worker", "--head", worker_address,
                             "--node-rank", "1", "--join-timeout", "60"],
                            env=dict(env, GFDIT_TOKEN=token), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    head_lines, node_lines = [], []
    try:
        _wait_line(head, "gfdit serving", 60, head_lines)
        _wait_line(node, "joined", 5, node_lines)
        with Client(address, token=token, timeout=30) as client:
            first = client.submit("across two hosts", steps=4)
            first.result(timeout=30)
            assert {e.width for e in first.events if e.state == "running"} == {2}  # ranks 0 and 1: both hosts
            before = client.status()
            assert before["ranks_per_node"] == 1 and sorted(before["nodes"]) == [0, 1]
            handles = [client.submit(f"request {i}", steps=40, seed=i) for i in range(3)]
            deadline = time.monotonic() + 30
            while not any(e.state == "running" for e in handles[0].events) and time.monotonic() < deadline:
                next(handles[0].progress(timeout=30))
            assert handles[0].events[-1].width == 2
            (worker,) = _children(node.pid)  # the second host's one worker: our own child's child
            os.kill(worker, 9)
            results = [h.result(timeout=45) for h in handles]  # nothing lost: each completes
            assert all(r.outputs for r in results)
            states = [e.state for h in handles for e in h.events]
            assert "retrying" in states
            assert node.wait(timeout=30) == 1  # its node is out: the agent was told to stop
            status = client.status()
            assert status["pool_restarts"] == 1 and status["lost_ranks"] == [1]
            after = client.submit("on the head alone", steps=4)
            after.result(timeout=30)
            assert {e.width for e in after.events if e.state == "running"} == {1}
    finally:
        for process in (node, head):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
