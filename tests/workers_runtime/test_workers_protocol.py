"""The worker protocol over real processes and sockets (emulated workers: no torch).

Ordering, errors reported and survived, malformed messages, state drop, death
detection (exit and silence), restart, and a close that leaves no process.
"""

import os
import signal
import time

import msgspec
import pytest

from gfdit.protocol import GenParams, RunTask
from gfdit.workers import transport
from gfdit.workers.pool import PoolError, TaskFinished, WorkerDead, WorkerFault, WorkerPool, _Pending

pytestmark = pytest.mark.slow
PARAMS = GenParams(prompt="p", height=64, width=64, steps=4, seed=1)


def task(task_id, request_id, stage, group, state_ranks=(), seconds=0.0, begin=0, end=0):
    return RunTask(task_id=task_id, request_id=request_id, stage=stage, step_begin=begin, step_end=end,
                   group=tuple(group), state_ranks=tuple(state_ranks), params=PARAMS, emulate_s=seconds)


def gather(pool, task_ids, timeout=30.0):
    """TaskFinished events in arrival order, until all of `task_ids` finished."""
    finished, others, deadline = [], [], time.monotonic() + timeout
    while {e.task_id for e in finished} != set(task_ids):
        assert time.monotonic() < deadline, f"tasks {task_ids} not finished; got {finished} {others}"
        for event in pool.poll(0.1):
            (finished if isinstance(event, TaskFinished) else others).append(event)
    return finished, others


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for good; only a running process counts
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def pool():
    p = WorkerPool(3, emulate=object(), heartbeat_s=0.2, heartbeat_timeout_s=5.0)
    yield p
    p.close()


def test_tasks_run_strictly_in_the_order_received(pool):
    # a long task, then short ones on the same rank: they must finish after it, in order
    pool.submit(task(1, "a", "encode", [0], seconds=0.4))
    for i in range(2, 6):
        pool.submit(task(i, "a", "denoise", [0], [0], seconds=0.0, begin=i - 2, end=i - 1))
    finished, _ = gather(pool, range(1, 6))
    assert [e.task_id for e in finished] == [1, 2, 3, 4, 5]
    assert all(e.ok for e in finished)


def test_failed_task_is_reported_and_the_worker_goes_on(pool):
    bad = pool.run(task(1, "missing", "denoise", [1], [1], begin=0, end=1), check=False)
    assert not bad.ok and "holds no state" in bad.error and "rank 1" in bad.error
    with pytest.raises(PoolError, match="holds no state"):
        pool.run(task(2, "missing", "decode", [1], [1]))
    assert pool.run(task(3, "b", "encode", [1])).ok


def test_malformed_message_is_logged_answered_and_survived(pool):
    w2 = pool._peers.main[2]  # the identity rank 2's task socket proved at its hello
    pool._router.send_multipart([w2, b"run_task", b"\x00not msgpack"])
    pool._router.send_multipart([w2, b"pickle", b"\x80\x04"])
    deadline, faults = time.monotonic() + 10, []
    while len(faults) < 2 and time.monotonic() < deadline:
        faults += [e for e in pool.poll(0.1) if isinstance(e, WorkerFault)]
    assert [f.rank for f in faults] == [2, 2]
    assert "bad run_task body" in faults[0].message and "unknown message kind" in faults[1].message
    log = pool._children[2].log.read_text()
    assert "ignored a malformed message" in log and "unknown message kind" in log
    assert pool.run(task(1, "a", "encode", [2])).ok


def test_drop_state_forgets_the_request(pool):
    pool.run(task(1, "a", "encode", [0]))
    pool.drop("a")
    result = pool.run(task(2, "a", "denoise", [0], [0], begin=0, end=1), check=False)
    assert not result.ok and "holds no state" in result.error


def test_ranks_leaving_a_request_are_told_to_drop_it(pool):
    pool.run(task(1, "a", "encode", [0, 1]))
    pool.run(task(2, "a", "denoise", [1], [0, 1], begin=0, end=1))  # shrink: 0 leaves, sends nothing
    moved_back = pool.run(task(3, "a", "denoise", [0], [0], begin=1, end=2), check=False)
    assert not moved_back.ok and "rank 0 holds no state" in moved_back.error


def test_bad_tasks_are_refused_before_anything_is_sent(pool):
    with pytest.raises(ValueError, match="outside the pool"):
        pool.submit(task(1, "a", "encode", [0, 7]))
    with pytest.raises(ValueError, match="repeats"):
        pool.submit(task(1, "a", "encode", [1, 1]))
    with pytest.raises(ValueError, match="needs state_ranks"):
        pool.submit(task(1, "a", "denoise", [1], [], begin=0, end=1))
    assert pool.running() == ()


def test_dead_worker_is_reported_with_its_tasks_and_the_pool_restarts(pool):
    pool.submit(task(1, "a", "encode", [1], seconds=30.0))
    time.sleep(0.2)
    os.kill(pool.pids[1], signal.SIGKILL)
    finished, others = gather(pool, [1])
    dead = [e for e in others if isinstance(e, WorkerDead)]
    assert [(d.rank, d.task_ids) for d in dead] == [(1, (1,))]
    assert not finished[0].ok and "rank 1 died" in finished[0].error
    with pytest.raises(PoolError, match="restart"):
        pool.submit(task(2, "b", "encode", [0]))
    old = pool.pids
    pool.restart()
    assert not any(alive(pid) for pid in old.values())
    assert pool.run(task(3, "b", "encode", [1])).ok


def test_silent_worker_is_declared_dead_after_missed_heartbeats():
    with WorkerPool(2, emulate=object(), heartbeat_s=0.1, heartbeat_timeout_s=1.0) as pool:
        os.kill(pool.pids[0], signal.SIGSTOP)
        deadline, dead = time.monotonic() + 15, []
        while not dead and time.monotonic() < deadline:
            dead = [e for e in pool.poll(0.2) if isinstance(e, WorkerDead)]
        assert dead and dead[0].rank == 0 and "no heartbeat" in dead[0].reason


def test_close_leaves_no_process_behind():
    pool = WorkerPool(4, emulate=object())
    pids = list(pool.pids.values())
    assert all(alive(pid) for pid in pids)
    pool.close()
    assert not any(alive(pid) for pid in pids)


def test_a_task_out_of_sequence_is_refused(pool):
    assert pool.run(task(1, "a", "encode", [0])).ok
    late = msgspec.structs.replace(task(2, "b", "encode", [0]), seq=1)  # the pool already used seq 1
    pool._router.send_multipart([pool._peers.main[0], *transport.encode(late)])
    pool._pending[2] = _Pending(late, (0,))
    finished, _ = gather(pool, [2])
    assert not finished[0].ok and "must send every rank its tasks in one increasing order" in finished[0].error
    assert pool.status()["running"] == [] and pool.status()["dead"] == []


def test_tasks_submitted_back_to_back_across_overlapping_groups_all_run_in_order(pool):
    # three requests hop over overlapping groups, every task submitted at once: each
    # rank runs what it gets in the pool's one order (a worker refuses a seq that goes
    # backwards), and a request's senders always hold its state when they reach its task
    groups = [(0, 1), (1, 2), (2, 0), (0,), (1, 2, 0), (2,)]
    holders = {i: groups[i] for i in range(3)}
    ids = []
    for i in range(3):
        pool.submit(task(100 + i, f"r{i}", "encode", groups[i], seconds=0.001))
        ids.append(100 + i)
    for step in range(6):
        for i in range(3):
            group = groups[(i + step + 1) % len(groups)]
            tid = 200 + step * 3 + i
            pool.submit(task(tid, f"r{i}", "denoise", group, holders[i], 0.001, step, step + 1))
            holders[i], ids = group, ids + [tid]
    finished, others = gather(pool, ids)
    assert all(e.ok for e in finished), [e.error for e in finished if not e.ok]
    assert not others
