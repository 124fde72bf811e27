"""A local process without the pool's secret cannot change anything on the worker plane.

Real processes: emulated workers, and an attacker process that connects to the
pool's control socket and floods it with well-formed worker messages (failures,
fake results, a fake fatal error, heartbeats, readiness) as every rank.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gfdit.protocol import GenParams, RunTask
from gfdit.workers.pool import TaskFinished, WorkerPool

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ATTACKER = Path(__file__).with_name("worker_plane_attacker.py")  # also used by tests/server
PARAMS = GenParams(prompt="p", height=64, width=64, steps=4, seed=1)


def attack(address: str, ranks: int, seconds: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GFDIT_WORKER_SECRET", None)
    return subprocess.Popen([sys.executable, str(ATTACKER), address, str(ranks), str(seconds)],
                            env=env, stdout=subprocess.PIPE, text=True)


def task(task_id, stage, group, state_ranks=(), seconds=0.0):
    return RunTask(task_id=task_id, request_id="r", stage=stage, step_begin=0, step_end=0 if stage != "denoise" else 1,
                   group=tuple(group), state_ranks=tuple(state_ranks), params=PARAMS, emulate_s=seconds)


@pytest.mark.parametrize("address", [None, "tcp://127.0.0.1:*"], ids=["ipc", "tcp"])
def test_an_attacker_on_the_control_socket_changes_nothing(address):
    with WorkerPool(2, emulate=object(), address=address, heartbeat_s=0.2) as pool:
        assert "--controller" not in " ".join(pool.status()) and pool.address.startswith(
            "ipc://" if address is None else "tcp://")
        if address is None:
            assert os.stat(Path(pool.address[len("ipc://"):]).parent).st_mode & 0o077 == 0
        attacker = attack(pool.address, 2, 3.0)
        events = []
        for task_id in range(1, 21):  # tasks run while the attacker floods the socket
            pool.submit(task(task_id, "encode", [task_id % 2], seconds=0.1))
            events += pool.poll(0.05)
        while attacker.poll() is None:
            events += pool.poll(0.05)
        attacker_sent = int(attacker.communicate(timeout=60)[0])
        deadline = time.monotonic() + 30
        while len([e for e in events if isinstance(e, TaskFinished)]) < 20 and time.monotonic() < deadline:
            events += pool.poll(0.1)
        finished = [e for e in events if isinstance(e, TaskFinished)]
        assert sorted(e.task_id for e in finished) == list(range(1, 21))
        assert all(e.ok and e.images == [] and e.error is None for e in finished), finished
        assert [e for e in events if not isinstance(e, TaskFinished)] == []  # no death, no fault
        assert pool.dead_ranks == set() and attacker_sent > 0
        assert pool.run(task(99, "encode", [0, 1])).ok
        deadline = time.monotonic() + 60
        while pool.status()["refused_messages"] < attacker_sent and time.monotonic() < deadline:
            assert pool.poll(0.05) == []
        refused = pool.status()["refused_messages"]
        assert refused == attacker_sent, (refused, attacker_sent)  # every one dropped, and counted


def test_the_worker_secret_is_not_on_any_command_line():
    with WorkerPool(2, emulate=object()) as pool:
        secret = pool._peers.secret
        for pid in pool.pids.values():
            assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
