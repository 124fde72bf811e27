"""A request pinned to ranks through the client, end to end on an emulated server: its tasks run
only on its ranks; pins the cluster or the policy cannot satisfy are rejected with the reason, and
`gfdit generate --ranks` parses the list."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.cli.generate import rank_list
from gfdit.client import Client, RequestRejected

ROOT = Path(__file__).resolve().parents[2]
BIG = dict(height=1024, width=1024)
WIDE = """policy wide
param chunk = 2
param widths = {1, 2, 4}
order by req.arrival
width * = 4
place sticky, lowest
"""


def test_a_pinned_request_runs_only_on_its_ranks(server_factory):
    server = server_factory(WIDE, gpus=4)
    with Client(server.address, timeout=30) as client:
        pinned = client.submit("p", steps=6, ranks=[2, 3], **BIG)
        free = client.submit("f", steps=6, **BIG)
        seen = {r for e in pinned.progress(timeout=60) if e.state == "running" for r in e.ranks}
        assert seen == {2, 3}  # width 4 wanted, shrunk into its pin
        assert pinned.result(timeout=60).latency_s > 0
        assert {r for e in free.progress(timeout=60) if e.state == "running" for r in e.ranks} - {2, 3}
        with pytest.raises(RequestRejected, match=r"pinned ranks \[7\] are outside the cluster \(ranks 0..3\)"):
            client.submit("x", steps=2, ranks=[1, 7], **BIG)
        with pytest.raises(RequestRejected, match="ranks must be a non-empty list") as empty:
            client.submit("x", steps=2, ranks=[], **BIG)
        assert empty.value.code == "invalid"
        assert client.status()["gpus"] == 4  # the server goes on


def test_a_pin_narrower_than_the_smallest_width_is_rejected(server_factory):
    server = server_factory(WIDE.replace("{1, 2, 4}", "{2, 4}"), gpus=4)
    with Client(server.address, timeout=30) as client:
        with pytest.raises(RequestRejected, match="leave 1 rank.* fewer than the smallest width 2"):
            client.submit("x", steps=2, ranks=[3], **BIG)
        assert client.submit("y", steps=2, ranks=[0, 3], **BIG).result(timeout=60).latency_s > 0


def test_generate_ranks_option_parses_a_list():
    assert rank_list("0,1,4") == [0, 1, 4]
    for bad in ("a,b", "1,-2", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            rank_list(bad)


def test_generate_ranks_through_the_cli(server_factory):
    server = server_factory(WIDE, gpus=4)

    def generate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gfdit", "generate", "x", "--steps", "4", "--height", "1024",
                               "--width", "1024", "--address", server.address, *args], capture_output=True,
                              text=True, timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))

    pinned = generate("--ranks", "1,3")
    assert pinned.returncode == 0, pinned.stderr
    placed = re.findall(r"on ranks (\[[0-9, ]*\])", pinned.stderr)
    assert placed and {r for ranks in placed for r in json.loads(ranks)} == {1, 3}
    outside = generate("--ranks", "9")
    assert outside.returncode == 1 and "pinned ranks [9] are outside the cluster" in outside.stderr
