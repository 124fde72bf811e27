"""The operator's loop as a user runs it: `gfdit serve --record`, `gfdit record`, `gfdit status
--cost-model`, `gfdit simulate` of the recording, `gfdit policy shadow`, `gfdit policy promote`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from test_server_cli import QWEN, ROOT, free_port, gfdit

pytestmark = pytest.mark.slow


def test_record_cost_model_simulate_shadow_promote(tmp_path, policy_texts):
    narrow, wide = policy_texts
    policy, candidate = tmp_path / "p.gfp", tmp_path / "wide.gfp"
    policy.write_text(narrow)
    candidate.write_text(wide)
    record = tmp_path / "day.json"
    address = f"tcp://127.0.0.1:{free_port()}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "gfdit", "serve", "tiny", "--num-gpus", "2", "--policy", str(policy),
         "--address", address, "--emulate", "--cost-model", QWEN, "--time-scale", "0.02", "--record", str(record)],
        stdout=subprocess.PIPE, stderr=(tmp_path / "serve.log").open("w"), text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    at = ("--address", address)
    try:
        assert "gfdit serving tiny on" in serve.stdout.readline(), (tmp_path / "serve.log").read_text()
        shadow = gfdit("policy", "shadow", str(candidate), *at)
        assert shadow.returncode == 0 and "shadowing wide" in shadow.stdout, shadow.stderr
        for i in range(2):
            made = gfdit("generate", f"a fox {i}", "--steps", "4", "--out", str(tmp_path / f"f{i}.png"), *at)
            assert made.returncode == 0, made.stderr
        status = gfdit("status", "--json", "--cost-model", str(tmp_path / "cm"), *at)
        assert status.returncode == 0, status.stderr
        server = json.loads(status.stdout)
        assert server["recording"]["records"] == 2 and server["shadow"]["policy"] == "wide"
        sim = gfdit("simulate", "--policy", str(policy), "--workload", str(record), "--cost-model",
                    str(tmp_path / "cm"), "--gpus", "2")
        assert sim.returncode == 0 and "2 requests" in sim.stdout, sim.stderr
        brief = gfdit("status", *at).stdout
        assert "shadow: wide " in brief and "recording: " + str(record) + ": 2 records, 1 part(s)" in brief, brief
        assert re.search(r"differs in \d+ of \d+ rounds", brief)
        stopped = gfdit("record", "stop", *at)
        assert stopped.returncode == 0 and '"records": 2' in stopped.stdout, stopped.stderr
        stale = gfdit("policy", "promote", "--if-revision", "000000000000", *at)
        assert stale.returncode == 1 and "running revision is" in stale.stderr
        promoted = gfdit("policy", "promote", "--if-revision", server["revision"], *at)
        assert promoted.returncode == 0 and "swapped in" in promoted.stdout, promoted.stderr
        shown = gfdit("status", *at).stdout
        assert "policy: wide" in shown and "shadow: None" in shown and "recording: None" in shown
    finally:
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 0
