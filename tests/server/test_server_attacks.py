"""Attacks on a running server by a local process that holds no secret and no token.

Real server (emulated workers), real sockets, a separate attacker process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.client import Client

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ATTACKER = ROOT / "tests" / "workers_runtime" / "worker_plane_attacker.py"


def test_a_process_on_the_worker_socket_cannot_fail_fake_or_restart_anything(server_factory):
    server = server_factory(token="a-token-of-16-chars-or-more")
    pool = server.loop.executor.pool
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    attacker = subprocess.Popen([sys.executable, str(ATTACKER), pool.address, str(pool.num_workers), "4"],
                                env=env, stdout=subprocess.PIPE, text=True)
    try:
        with Client(server.address, token="a-token-of-16-chars-or-more", timeout=60) as client:
            handles = [client.submit(f"p{i}", height=1024, width=1024, steps=6, seed=i) for i in range(6)]
            results = [h.result(timeout=120) for h in handles]
    finally:
        sent = int(attacker.communicate(timeout=60)[0])
    assert sent > 0
    assert [r.request_id for r in results] == [h.request_id for h in handles]
    assert all(r.outputs == [] for r in results)  # emulated workers return no image: no 8x8 fake got in
    assert server.loop.executor.restarts == 0 and pool.dead_ranks == set()
    assert pool.status()["refused_messages"] > 0
