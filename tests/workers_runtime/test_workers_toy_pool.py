"""Real worker processes in one gloo world, with a small adapter that uses real
collectives: migration patterns that could deadlock, errors inside a real task,
two disjoint groups at once, and outputs returned as payload frames."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from gfdit.protocol import GenParams, RunTask
from gfdit.workers.pool import PoolError, TaskFinished, WorkerDead, WorkerPool

pytestmark = pytest.mark.slow
HERE = str(Path(__file__).resolve().parent)
PARAMS = GenParams(prompt="p", height=80, width=64, steps=6, seed=11)


def task(task_id, request_id, stage, group, state_ranks=(), begin=0, end=0, params=PARAMS):
    return RunTask(task_id=task_id, request_id=request_id, stage=stage, step_begin=begin, step_end=end,
                   group=tuple(group), state_ranks=tuple(state_ranks), params=params)


def toy_pool(workers, model="toy", adapter="toy_adapter:ToyAdapter", timeout_s=60):
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, old) if p)
    try:
        return WorkerPool(workers, model, adapter=adapter, backend="p2p",
                          collective_timeout_s=timeout_s)
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.__setitem__("PYTHONPATH", old)


@pytest.fixture(scope="module")
def pool():
    p = toy_pool(4)
    yield p
    p.close()


def finish_all(pool, task_ids, timeout=60.0):
    order, results, deadline = [], {}, time.monotonic() + timeout
    while set(results) != set(task_ids):
        assert time.monotonic() < deadline, f"deadlock? finished {sorted(results)} of {task_ids}"
        for event in pool.poll(0.1):
            if isinstance(event, TaskFinished):
                order.append(event.task_id)
                results[event.task_id] = event
    assert all(r.ok for r in results.values()), [r.error for r in results.values() if not r.ok]
    return order, results


def trajectory(pool, request_id, plan, first_id):
    """Run encode, the denoise chunks on the given groups, decode; return the image."""
    ids = iter(range(first_id, first_id + 100))
    pool.run(task(next(ids), request_id, "encode", plan[0][0]))
    holders = plan[0][0]
    for group, begin, end in plan:
        pool.run(task(next(ids), request_id, "denoise", group, holders, begin, end))
        holders = group
    result = pool.run(task(next(ids), request_id, "decode", holders[:1], holders, 6, 6))
    pool.drop(request_id)
    return result.images[0]


def test_elastic_trajectory_matches_width_one(pool):
    reference = trajectory(pool, "ref", [((0,), 0, 6)], 100)
    elastic = trajectory(pool, "el", [((0,), 0, 2), ((1, 0, 3, 2), 2, 4), ((3, 1), 4, 5), ((2,), 5, 6)], 200)
    assert reference.shape == (10, 8, 3)
    assert np.array_equal(reference, elastic)


def test_sender_outside_the_group_starts_its_next_task_at_once(pool):
    # Z keeps ranks 1 and 2 busy for 1.5 s; X then moves 0 -> {1, 2} while rank 0
    # runs Y (milliseconds). A blocking send on rank 0 would hold Y until Z ends
    # and ranks 1, 2 receive X; a posted send does not.
    slow = GenParams(prompt="slow", height=64, width=64, steps=1, seed=1)  # 1.5 s per denoise task
    quick = GenParams(prompt="quick", height=64, width=64, steps=1, seed=1)
    slow_pool = toy_pool(3, model="slow:1.5")
    try:
        for tid, rid, group, params in ((1, "z", (1, 2), slow), (2, "x", (0,), quick), (3, "y", (0,), quick)):
            slow_pool.run(task(tid, rid, "encode", group, params=params))
        slow_pool.submit(task(4, "z", "denoise", (1, 2), (1, 2), 0, 1, params=slow))
        slow_pool.submit(task(5, "x", "denoise", (1, 2), (0,), 0, 1, params=quick))
        slow_pool.submit(task(6, "y", "denoise", (0,), (0,), 0, 1, params=quick))
        order, results = finish_all(slow_pool, [4, 5, 6])
    finally:
        slow_pool.close()
    assert order.index(6) < order.index(4) < order.index(5)
    assert results[5].timings[0]["sent_bytes"] > 0 and "compute" not in results[5].timings[0]


def test_swap_in_one_round_does_not_deadlock(pool):
    pool.run(task(300, "sx", "encode", (0,)))
    pool.run(task(301, "sy", "encode", (1,), params=GenParams(prompt="q", height=64, width=72, steps=6, seed=5)))
    pool.submit(task(302, "sx", "denoise", (1,), (0,), 0, 3))  # X: 0 -> 1
    pool.submit(task(303, "sy", "denoise", (0,), (1,), 0, 3,
                     params=GenParams(prompt="q", height=64, width=72, steps=6, seed=5)))  # Y: 1 -> 0
    _, results = finish_all(pool, [302, 303])
    assert results[302].timings[1]["recv_bytes"] > 0 and results[303].timings[0]["recv_bytes"] > 0
    for rid in ("sx", "sy"):
        pool.drop(rid)


def test_two_disjoint_groups_at_once_match_width_one(pool):
    pool.run(task(400, "g1", "encode", (0, 1)))
    pool.run(task(401, "g2", "encode", (2, 3)))
    pool.submit(task(402, "g1", "denoise", (1, 0), (0, 1), 0, 6))
    pool.submit(task(403, "g2", "denoise", (3, 2), (2, 3), 0, 6))
    finish_all(pool, [402, 403])
    one = pool.run(task(404, "g1", "decode", (1,), (1, 0), 6, 6)).images[0]
    two = pool.run(task(405, "g2", "decode", (3,), (3, 2), 6, 6)).images[0]
    reference = trajectory(pool, "g-ref", [((2,), 0, 6)], 500)
    assert np.array_equal(one, reference) and np.array_equal(two, reference)
    for rid in ("g1", "g2"):
        pool.drop(rid)


def test_error_inside_a_task_is_reported_and_the_worker_goes_on(pool):
    bad = pool.run(task(600, "e", "denoise", (2,), (2,), 3, 4), check=False)
    assert not bad.ok and "holds no state" in bad.error
    pool.run(task(601, "e", "encode", (2,)))
    wrong_step = pool.run(task(602, "e", "denoise", (2,), (2,), 3, 4), check=False)
    assert not wrong_step.ok and "ValueError: state is at step 0" in wrong_step.error
    assert pool.run(task(603, "e", "denoise", (2,), (2,), 0, 1)).ok
    missing_sender = pool.run(task(604, "nobody", "denoise", (3,), (1,), 0, 1), check=False)
    assert not missing_sender.ok
    assert "rank 1 holds no state" in missing_sender.error and "rank 3" in missing_sender.error
    assert pool.run(task(605, "e", "denoise", (3,), (2,), 1, 2)).ok  # rank 3 still serves
    pool.drop("e")


def test_a_worker_that_cannot_load_its_model_fails_the_start_clearly():
    with pytest.raises(PoolError, match=r"^worker \d could not start: ") as caught:
        toy_pool(2, adapter="toy_adapter:NoSuchAdapter")
    assert "NoSuchAdapter" in str(caught.value)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)  # its reason, not its log


def test_an_unsupported_pipeline_is_one_line(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(PoolError) as caught:
        WorkerPool(1, str(tmp_path), backend="p2p", start_timeout_s=120)
    message = str(caught.value)
    assert message.startswith("worker 0 could not start: AdapterError: ") and "StableDiffusionPipeline" in message
    assert "\n" not in message, message


def test_device_cuda_without_a_cuda_torch_is_one_line():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PoolError, match=r"^worker 0 could not start: RuntimeError: device cuda:0: this torch "
                                        r"\(.*\) sees no CUDA GPU; install torch's CUDA build"):
        WorkerPool(1, "tiny", backend="p2p", device="cuda:0", start_timeout_s=120)


def test_a_broken_collective_kills_the_world_and_restart_recovers_it():
    # rank 1 lacks the state, so rank 0 waits for it in a collective until the
    # time-out; gloo then closes the pair: that rank reports itself broken and the
    # pool declares it dead (the world needs a restart), naming the task
    pool = toy_pool(2, timeout_s=3)
    try:
        pool.run(task(1, "a", "encode", (0, 1)))
        pool.drop("a", ranks=[1])
        failed = pool.run(task(2, "a", "denoise", (0, 1), (0, 1), 0, 2), check=False)
        assert not failed.ok and "StateMissing" in failed.error and "CommTimeout" in failed.error
        deadline, dead = time.monotonic() + 30, []
        while not dead and time.monotonic() < deadline:
            dead = [e for e in pool.poll(0.2) if isinstance(e, WorkerDead)]
        assert dead[0].rank == 0 and "the world must be restarted" in dead[0].reason
        with pytest.raises(PoolError, match="restart"):
            pool.submit(task(3, "b", "encode", (0, 1)))
        pool.restart()
        pool.run(task(4, "b", "encode", (0, 1)))
        assert pool.run(task(5, "b", "denoise", (1, 0), (0, 1), 0, 2)).ok
    finally:
        pool.close()
