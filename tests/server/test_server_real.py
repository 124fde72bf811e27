"""The serving system on real workers: the tiny diffusers model on 4 CPU processes (gloo).

One server for the module (starting real workers costs tens of seconds on 2
cores): concurrent requests with images and ordered progress, including a
width change with migration, then a worker SIGKILLed mid-request.
"""

from __future__ import annotations

import io
import os
import signal

import numpy as np
import pytest

from gfdit.client import Client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    from gfdit.server import Server, ServerConfig

    policy = tmp_path_factory.mktemp("real") / "wide.gfp"
    policy.write_text(
        "policy wide_denoise\nparam chunk = 2\nparam widths = {1, 2, 4}\norder by req.arrival\n"
        "width encode, decode = 1\nwidth denoise = 2\nplace sticky, lowest\n")
    config = ServerConfig(model="tiny", num_gpus=4, policy=str(policy), address="tcp://127.0.0.1:0",
                          calibrate_steps=4)
    server = Server(config).start_background()
    yield server
    server.stop()


def test_concurrent_requests_on_real_workers_return_images_with_ordered_progress(real_server):
    from PIL import Image

    with Client(real_server.address, timeout=60) as client:
        handles = [client.submit(f"a fox number {i}", height=64, width=64, steps=6, seed=i) for i in range(3)]
        streams = [list(h.progress(timeout=300)) for h in handles]
        results = [h.result() for h in handles]
    for events in streams:
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        names = [e.state for e in events]
        assert names[0] == "queued" and names[-1] == "completed"
        assert names.index("encoding") < names.index("migrated") < names.index("running") < names.index("decoding")
        migrated = next(e for e in events if e.state == "migrated")
        assert len(migrated.from_ranks) == 1 and len(migrated.ranks) == 2  # width 1 -> 2 moved the state
        steps = [e.step for e in events if e.state == "running"]
        assert steps == sorted(steps) and steps[-1] == 6
    for result in results:
        assert len(result.outputs) == 1 and result.outputs[0].mime == "image/png"
        image = np.asarray(Image.open(io.BytesIO(result.outputs[0].to_png())))
        assert image.shape == (64, 64, 3)
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # a generated picture, not a blank frame


def test_cancel_on_real_workers_frees_the_ranks_within_one_chunk(real_server):
    from gfdit.client import RequestCancelled

    with Client(real_server.address, timeout=60) as client:
        handle = client.submit("long", height=64, width=64, steps=200, seed=3)
        events = handle.progress(timeout=300)
        next(e for e in events if e.state == "running" and e.step >= 4)
        assert handle.cancel() in ("cancelling", "cancelled")
        after = list(events)
        assert after[-1].state == "cancelled" and sum(e.state == "running" for e in after) <= 1
        with pytest.raises(RequestCancelled):
            handle.result()
        assert client.status()["free_ranks"] == [0, 1, 2, 3]


def test_a_real_worker_killed_mid_request_is_recovered(real_server):
    with Client(real_server.address, timeout=60, gone_after_s=120) as client:
        handles = [client.submit("survive", height=64, width=64, steps=40, seed=i) for i in range(2)]
        victim = None
        for event in handles[0].progress(timeout=300):
            if event.state == "running" and event.step >= 2:
                victim = event.ranks[-1]
                break
        os.kill(client.status()["worker_pids"][victim], signal.SIGKILL)
        ends = [list(h.progress(timeout=400))[-1] for h in handles]
        assert all(e.state == "completed" or (e.state == "failed" and e.reason) for e in ends)
        assert any(e.state == "retrying" for e in handles[0].events)
        status = client.status()
        assert status["pool_restarts"] == 1 and status["lost_ranks"] == []
        after = client.submit("after the restart", height=64, width=64, steps=2, seed=9).result(timeout=300)
        assert after.outputs and after.outputs[0].mime == "image/png"


def test_a_frame_count_the_model_cannot_take_is_refused_at_intake(real_server):
    from gfdit.client import RequestRejected

    limits = real_server.loop.executor.limits  # learnt from the workers at start-up
    assert limits is not None and limits.video is False
    with Client(real_server.address, timeout=60) as client:
        before = client.status()["outcomes"]
        with pytest.raises(RequestRejected, match="makes images: frames must be 1, got 2"):
            client.submit("a video", frames=2)
        assert client.status()["running"] == 0 and client.status()["outcomes"].get("failed") == before.get("failed")
