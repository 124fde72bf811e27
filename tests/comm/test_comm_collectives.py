"""Every collective x every backend on 4 real gloo processes, against references
computed in one process. One pool serves the whole module (spawning is the cost)."""

from __future__ import annotations

import pytest
import torch

import comm_cases as cc
from gfdit.comm.launch import LocalPool

pytestmark = pytest.mark.slow

BACKENDS = ("p2p", "shm", "newgroup")


@pytest.fixture(scope="module")
def pool():
    with LocalPool(4, backends=BACKENDS, timeout_s=60) as p:
        if "newgroup" in BACKENDS:
            p.run(cc.prepare_groups, cc.all_rank_sets(4), backend="newgroup")
        yield p


def _check(results_per_rank):
    flat = [r for rank_results in results_per_rank for r in rank_results]
    assert flat, "no case ran"
    bad = [r for r in flat if not r[1]]
    assert not bad, bad[:10]
    return flat


@pytest.mark.parametrize("backend", BACKENDS)
def test_comm_every_collective_every_dtype_and_group(pool, backend):
    cases = []
    for seed, dtype in enumerate(cc.DTYPES):
        for gi, ranks in enumerate(cc.GROUPS):
            s = seed * 100 + gi
            cases += [
                ("all_gather", s, ranks, (2, 3, 4), dtype, (1,)),
                ("all_gather", s + 1, ranks, (3,), dtype, (-1,)),
                ("all_to_all", s, ranks, (1, 12, 4 * len(ranks), 2), dtype, (2, 1)),
                ("all_to_all", s + 2, ranks, (len(ranks) * 2, 3), dtype, (0, 1)),
                ("broadcast", s, ranks, (5, 2), dtype),
                ("sendrecv", s, ranks, (7,), dtype),
            ]
    flat = _check(pool.run(cc.run_cases, cases, backend=backend))
    assert len(flat) == sum(len(c[2]) for c in cases)


@pytest.mark.parametrize("backend", BACKENDS)
def test_comm_sizes_from_bytes_to_tens_of_mb(pool, backend):
    cases = []
    for i, numel in enumerate((1, 3, 1000, 65_536, 1_000_003 * 4, 12 * 2**20 // 4)):
        ranks = ((2, 0, 3, 1), (0, 2, 3), (3, 1))[i % 3]
        k = len(ranks)
        dtype = torch.uint8 if numel < 10 else torch.float32
        cases.append(("all_gather", 7000 + i, ranks, (numel,), dtype, (0,)))
        cases.append(("broadcast", 7100 + i, ranks, (numel,), dtype))
        cases.append(("sendrecv", 7200 + i, ranks, (numel,), dtype))
        cases.append(("all_to_all", 7300 + i, ranks, (k, numel), dtype, (0, 1)))
    _check(pool.run(cc.run_cases, cases, backend=backend))


def test_comm_shm_large_messages_through_the_arena_lanes(pool):
    """Cross-process reads off: multi-round, double-buffered lanes carry every byte."""
    cases = []
    for i, numel in enumerate((100_000, 1_000_003, 3 * 2**20)):
        ranks = ((2, 0, 3, 1), (0, 2, 3), (3, 1))[i % 3]
        cases.append(("all_gather", 7400 + i, ranks, (numel,), torch.float32, (0,)))
        cases.append(("all_to_all", 7500 + i, ranks, (len(ranks), numel), torch.float32, (0, 1)))
        cases.append(("broadcast", 7600 + i, ranks, (numel,), torch.float32))
        cases.append(("sendrecv", 7700 + i, ranks, (numel,), torch.float32))
    _check(pool.run(cc.run_cases_through_lanes, cases, backend="shm"))


def test_comm_shm_arenas_leave_no_name_once_mapped(pool):
    assert len(pool.pids) == 4
    assert not cc.arenas_of(set(pool.pids))


@pytest.mark.parametrize("backend", BACKENDS)
def test_comm_two_disjoint_groups_at_once(pool, backend):
    for a, b in (((3, 1), (0, 2)), ((0,), (2, 3, 1))):
        flat = _check(pool.run(cc.run_concurrent, 11, a, b, (12, 6), torch.float32,
                               backend=backend))
        assert len(flat) == 12 * 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_comm_thousands_alternating_overlapping_groups(pool, backend):
    groups = [(0, 1, 2, 3), (1, 2), (3, 1, 0), (2,), (2, 3), (0, 3), (3, 2, 1, 0)]
    n = 2000 if backend != "newgroup" else 700
    results = pool.run(cc.run_alternating, n, groups, backend=backend)
    assert all(r[1] for r in results), results


@pytest.mark.parametrize("backend", BACKENDS)
def test_comm_results_into_caller_buffers(pool, backend):
    results = [r for r in pool.run(cc.run_into_out, 40, backend=backend) if r]
    assert len(results) == 3 and all(r[1] for r in results), results


@pytest.mark.parametrize("backend", BACKENDS)
def test_comm_migration_of_named_tensors(pool, backend):
    results = [r for r in pool.run(cc.run_migration, 5, backend=backend) if r]
    assert len(results) == 3 and all(r[1] for r in results), results


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "newgroup"])
def test_comm_size_mismatch_raises_on_every_member_and_group_survives(pool, backend):
    results = pool.run(cc.run_mismatch, backend=backend)
    for rank, (err, after) in enumerate(results):
        assert err and err.startswith("SizeMismatch"), (rank, err)
        assert "all_gather on group(0, 1, 2, 3)" in err and "bytes" in err, err
        assert after == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("backend,numel,lanes_only", [
    ("p2p", 4, False), ("p2p", 1 << 20, False), ("shm", 4, False), ("shm", 1 << 20, False),
    ("shm", 1 << 20, True)])
def test_comm_mismatch_of_one_pair_leaves_the_other_members_served(pool, backend, numel, lanes_only):
    """Only ranks 0 and 2 disagree: they raise; 1 and 3 get the broadcast at once
    (p2p used to leave them waiting on a payload, which the next collective's
    envelope then filled: gloo aborted the process)."""
    outcomes = pool.run_outcomes(cc.run_partial_mismatch, numel, lanes_only, backend=backend,
                                 timeout_s=40)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    results = [o.value for o in outcomes]
    for rank in (0, 2):
        err, got, _ = results[rank]
        assert err and err.startswith("SizeMismatch: broadcast on group(0, 1, 2, 3)"), (rank, err)
    for rank in (1, 3):
        assert results[rank][:2] == (None, True), (rank, results[rank])
    for _, _, after in results:
        assert after == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_a_failed_call_raises_the_one_pool_error_and_the_pool_stays_usable(pool):
    from gfdit.comm.launch import RanksFailed
    from gfdit.workers.pool import PoolError  # the same class the worker pool raises

    with pytest.raises(PoolError, match="1 of 4 ranks failed") as caught:
        pool.run(cc.fail_on_rank, 2)
    assert isinstance(caught.value, RanksFailed)
    assert [o.ok for o in caught.value.outcomes] == [True, True, False, True]
    assert pool.run(cc.fail_on_rank, None) == [0, 1, 2, 3]
