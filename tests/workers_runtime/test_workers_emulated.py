"""Emulated mode: task durations from the engine's cost model, no torch in workers."""

import msgspec
import pytest

from gfdit.engine.costmodel import CostModel, Curve, Migration
from gfdit.protocol import GenParams, RunTask
from gfdit.workers.emulated import task_seconds
from gfdit.workers.pool import TaskFinished, WorkerPool

PARAMS = GenParams(prompt="p", height=1024, width=1024, steps=20, seed=0)  # 4096 latent tokens


def cost_model():
    def layout(step_ms):
        return {"text_encode": Curve("text_seq_len", 0, 0, 50), "dit_prepare": Curve("latent_seq_len", 0, 0, 10),
                "timestep_prepare": Curve("num_steps", 0, 0, 2), "dit_step_chunk": Curve("latent_seq_len", 0, step_ms, 0),
                "dit_step_chunk_nocfg": Curve("latent_seq_len", 0, step_ms, 0),
                "vae_decode": Curve("voxels", 0, 0, 100), "finalize": Curve("ones", 0, 0, 1)}
    migration = Migration(bandwidth_Bps=1e9, fixed_s=0.001, bytes_per_token=1000, bytes_per_text_token=0,
                          fixed_bytes=0)
    return CostModel({1: layout(0.1), 2: layout(0.06)}, model="test", migration=migration)


def task(stage, group, state_ranks=(), begin=0, end=0, emulate_s=None, task_id=1):
    return RunTask(task_id=task_id, request_id="r", stage=stage, step_begin=begin, step_end=end,
                   group=group, state_ranks=state_ranks, params=PARAMS, emulate_s=emulate_s)


def test_task_seconds_follow_the_cost_model_and_include_migration():
    cm = cost_model()
    assert task_seconds(cm, task("encode", (0,))) == pytest.approx(0.050)  # the text encoders
    # the first denoise task also sets the DiT up (dit_prepare 10 ms + timestep_prepare 2 ms)
    assert task_seconds(cm, task("denoise", (0,), (0,), 0, 5)) == pytest.approx(0.012 + 5 * 0.4096)
    # growing {0} -> {0, 1}: one transfer of 4096 * 1000 bytes at 1 GB/s + 1 ms, then 5 steps at width 2
    grow = task_seconds(cm, task("denoise", (0, 1), (0,), 5, 10))
    assert grow == pytest.approx(5 * 0.24576 + 0.001 + 4.096e-3)
    assert task_seconds(cm, task("decode", (1,), (0, 1), 20, 20)) == pytest.approx(0.101)
    with pytest.raises(ValueError, match="unknown stage"):
        task_seconds(cm, task("upscale", (0,)))


@pytest.mark.slow
def test_emulated_pool_fills_durations_and_imports_no_torch():
    with WorkerPool(2, emulate=cost_model()) as pool:
        pool.run(task("encode", (0,), task_id=1))
        done = pool.run(task("denoise", (1, 0), (0,), 0, 1, task_id=2))
        assert done.timings[1]["compute"] > 0
        for pid in pool.pids.values():
            with open(f"/proc/{pid}/maps") as maps:
                assert "libtorch" not in maps.read()


@pytest.mark.slow
def test_the_stages_queued_after_a_failed_stage_are_skipped_not_run():
    """A dispatch's stages go out back to back (`chunk = all`): when one fails on a rank, the ones
    queued after it there (`after`) fail at once, computing nothing; unrelated work goes on."""
    with WorkerPool(2, emulate=cost_model()) as pool:
        pool.submit(task("encode", (0, 1), emulate_s=-1.0, task_id=11))  # a bad duration: it fails
        pool.submit(msgspec.structs.replace(task("denoise", (0, 1), (0, 1), 0, 3, task_id=12), after=11))
        pool.submit(msgspec.structs.replace(task("decode", (0, 1), (0, 1), 3, 3, task_id=13), after=12))
        pool.submit(task("encode", (0, 1), task_id=14))  # another request's: nothing to do with it
        done = {}
        while len(done) < 4:
            done.update((event.task_id, event) for event in pool.poll(5.0) if isinstance(event, TaskFinished))
    assert not done[11].ok and "needs emulate_s >= 0" in done[11].error
    for skipped in (12, 13):
        assert not done[skipped].ok and done[skipped].error.count("skipped: the previous stage") == 2  # both ranks
        assert all("compute" not in t for t in done[skipped].timings.values())
    assert done[14].ok
