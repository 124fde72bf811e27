"""The process executor on a real (emulated) worker pool: stage splitting, timing, refusals."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gfdit.engine.costmodel import CostModel
from gfdit.engine.request import Request
from gfdit.engine.task import Dispatch
from gfdit.engine.executor import StageEnd, TaskEnd
from gfdit.protocol import GenParams
from gfdit.server.executor import ProcessExecutor

pytestmark = pytest.mark.slow
QWEN = Path(__file__).resolve().parents[2] / "gfdit" / "data" / "costmodels" / "qwen-h20"
SCALE = 0.01


@pytest.fixture(scope="module")
def executor():
    from gfdit.workers.pool import WorkerPool

    cost_model = CostModel.load(QWEN)
    pool = WorkerPool(4, "tiny", emulate=cost_model)
    ex = ProcessExecutor(pool, cost_model, emulated=True, time_scale=SCALE)
    yield ex
    ex.close()


def wait_end(ex: ProcessExecutor, task_id: str, timeout: float = 30.0) -> list:
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += ex.poll(0.0, 0.01)
        if any(isinstance(e, TaskEnd) and e.task_id == task_id for e in events):
            return events
    raise TimeoutError(task_id)


PARAMS = GenParams(prompt="p", height=1024, width=1024, steps=6, seed=0)
REQ = Request(id="r1", arrival=0.0, height=1024, width=1024, steps=6, payload=PARAMS)


def test_a_whole_trajectory_task_runs_as_ordered_stages(executor):
    d = Dispatch("r1/1", "r1", "encode", ("encode", "denoise", "decode"), (0, 6), (0, 1), (), 0, 0.0, 1.0)
    executor.start(d._replace(request=REQ), 0.0)
    events = wait_end(executor, "r1/1")
    stages = [e.stage for e in events if isinstance(e, StageEnd)]
    assert stages == ["encode", "denoise"]
    end = events[-1]
    assert end.ok and end.error is None and executor.running == 0
    encode, step, decode = executor.cost_model.parts(REQ.shape, 2)
    expected = (encode + 6 * step + decode) * SCALE
    assert end.worker_s >= 0.9 * expected  # the workers slept the model's time
    # the controller's wall time encloses the workers' (two processes' clocks: allow 5 ms of skew)
    assert end.wall_s >= end.worker_s - 0.005
    executor.drop("r1")


def test_emulated_time_is_the_engines_estimate_plus_migration_on_the_first_stage(executor):
    d = Dispatch("r2/2", "r2", "denoise", ("denoise",), (2, 4), (0, 1, 2, 3), (0, 1), 1000, 0.5, 0.0)
    encode, step, decode = executor.cost_model.parts(REQ.shape, 4)
    assert executor._emulate_s(d, REQ, "denoise", first=True) == pytest.approx((2 * step + 0.5) * SCALE)
    assert executor._emulate_s(d, REQ, "denoise", first=False) == pytest.approx(2 * step * SCALE)


def test_a_task_the_pool_refuses_ends_failed_instead_of_raising(executor):
    d = Dispatch("r3/1", "r3", "denoise", ("denoise",), (0, 2), (0, 9), (0,), 0, 0.0, 0.1)  # rank 9: no such worker
    executor.start(d._replace(request=REQ), 0.0)
    events = executor.poll(0.0)
    assert len(events) == 1 and not events[0].ok and "outside the pool" in events[0].error
    assert executor.running == 0


def test_each_stage_of_a_dispatch_names_the_one_before_it():
    """Workers skip the stages queued after one that failed (tests/workers_runtime): the executor
    chains them."""
    class Recorder:  # stands in for the pool: what the executor submits
        def __init__(self):
            self.sent = []

        def submit(self, task):
            self.sent.append(task)

    recorder = Recorder()
    ex = ProcessExecutor(recorder, CostModel.load(QWEN), emulated=True, time_scale=SCALE)
    d = Dispatch("r4/1", "r4", "encode", ("encode", "denoise", "decode"), (0, 6), (0, 1), (), 0, 0.0, 1.0)
    ex.start(d._replace(request=REQ), 0.0)
    encode, denoise, decode = recorder.sent
    assert (encode.after, denoise.after, decode.after) == (0, encode.task_id, denoise.task_id)
