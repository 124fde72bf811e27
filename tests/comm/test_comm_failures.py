"""A member killed mid-collective makes the others fail with a clear error within
the time-out instead of hanging; nothing is left in /dev/shm; no new_group on
the group-free paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import comm_cases as cc
from gfdit.comm.launch import LocalPool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 15.0


@pytest.mark.parametrize("backend", ["p2p", "shm"])
def test_comm_killed_member_fails_the_others_within_the_timeout(backend):
    with LocalPool(4, backends=(backend,), timeout_s=TIMEOUT_S) as pool:
        pids = set(pool.pids)
        outcomes = pool.run_outcomes(cc.run_until_killed, 3, (1 << 20,),
                                     timeout_s=TIMEOUT_S + 60)
    assert not outcomes[3].ok and "died" in outcomes[3].error
    for o in outcomes[:3]:
        assert o.ok, o
        err, seconds, after = o.value
        assert re.match(r"(PeerFailure|CommTimeout): all_gather on group\(0, 1, 2, 3\)", err), err
        assert seconds < TIMEOUT_S + 10, (err, seconds)
        assert after.startswith("CommError") and "earlier failure" in after, after
    assert not cc.arenas_of(pids), "shared memory left behind"


def test_comm_collective_after_a_member_exited_is_a_comm_error():
    with LocalPool(4, backends=("p2p",), timeout_s=TIMEOUT_S) as pool:
        outcomes = pool.run_outcomes(cc.run_after_peer_exited, 3, timeout_s=TIMEOUT_S + 30)
    for o in outcomes[:3]:
        assert o.ok, (o.error, o.traceback)
        assert re.match(r"(PeerFailure|CommTimeout): all_gather on group\(0, 1, 2, 3\)", o.value), o.value


def test_comm_new_group_appears_only_in_the_newgroup_backend():
    callers = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "gfdit").rglob("*.py")
        if re.search(r"\bnew_group\s*\(|\bnew_subgroups\s*\(", p.read_text())
    )
    assert callers == ["gfdit/comm/newgroup.py"], callers


def test_comm_runtime_tripwire_catches_new_group():
    import torch.distributed as dist

    with cc.forbid_new_group():
        with pytest.raises(AssertionError, match="outside the newgroup backend"):
            dist.new_group([0])
    assert dist.new_group.__name__ == "new_group"
