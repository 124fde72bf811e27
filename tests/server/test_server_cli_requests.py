"""Requests from the command line: effective parameters shown, Ctrl-C cancels, `cancel`, `status --requests`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gfdit.client import Client, RequestCancelled, RequestRejected

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def gfdit(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "gfdit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT, **kw)


def test_ctrl_c_on_generate_cancels_its_request(server_factory):
    server = server_factory(time_scale=1.0)
    generate = gfdit("generate", "long", "--steps", "500", "--height", "1024", "--address", server.address)
    accepted = generate.stderr.readline()
    match = re.match(r"request (\S+) accepted: 64x1024, 500 steps, seed 0", accepted)
    assert match, accepted
    with Client(server.address) as client:
        while client.status(match[1])["request"].get("state") in (None, "queued"):
            time.sleep(0.05)
        generate.send_signal(signal.SIGINT)
        _, err = generate.communicate(timeout=60)
        assert generate.returncode == 130 and "Traceback" not in err, err
        assert f"cancelling {match[1]}: cancel" in err
        with pytest.raises(RequestCancelled):
            client.follow(match[1]).result(timeout=60)


def test_cancel_command_and_status_requests(server_factory):
    server = server_factory(time_scale=1.0)
    with Client(server.address) as client:
        handles = [client.submit(f"p{i}", steps=500, request_id=f"job-{i}") for i in range(3)]
        listed = gfdit("status", "--requests", "--address", server.address)
        out, err = listed.communicate(timeout=60)
        assert listed.returncode == 0, err
        assert all(f"job-{i}" in out for i in range(3)) and "3 live" in out
        cancel = gfdit("cancel", "job-0", "job-2", "no-such-job", "--address", server.address)
        out, err = cancel.communicate(timeout=60)
        assert cancel.returncode == 1 and "job-0: cancel" in out and "job-2: cancel" in out, (out, err)
        assert "no-such-job" in err
        for h in (handles[0], handles[2]):
            with pytest.raises(RequestCancelled):
                h.result(timeout=60)
        assert [r["id"] for r in client.requests()] == ["job-1"]
        handles[1].cancel()


def test_steps_zero_is_refused_and_defaults_are_reported(client):
    with pytest.raises(RequestRejected, match="steps must be a positive integer, got 0"):
        client.submit("zero", steps=0)
    with pytest.raises(RequestRejected, match="height must be a positive integer, got 0"):
        client.submit("zero", height=0)
    handle = client.submit("defaults")  # the tiny model's defaults: 64x64, 8 steps
    assert (handle.params.height, handle.params.width, handle.params.steps) == (64, 64, 8)
    handle.result(timeout=60)
