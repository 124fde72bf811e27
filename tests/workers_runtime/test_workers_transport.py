"""Worker-plane framing: typed per kind, images as raw payload frames, errors clear."""

import numpy as np
import pytest

from gfdit.protocol import GenParams, ProtocolError, RunTask, TaskDone
from gfdit.workers import transport

PARAMS = GenParams(prompt="p", height=64, width=64, steps=4, seed=1)


def test_task_round_trips_and_is_typed_by_kind():
    task = RunTask(task_id=3, request_id="r", stage="denoise", step_begin=0, step_end=2,
                   group=(1, 0), state_ranks=(0,), params=PARAMS)
    msg, payload = transport.decode(transport.encode(task), transport.TO_WORKER)
    assert msg == task and payload == []
    with pytest.raises(ProtocolError, match="unknown message kind"):
        transport.decode(transport.encode(task), transport.TO_CONTROLLER)


@pytest.mark.parametrize("frames, match", [
    ([b"run_task"], "expected"),
    ([b"run_task", b"\xc1garbage"], "bad run_task body"),
    ([b"evil", b""], "unknown message kind"),
])
def test_malformed_frames_raise_protocol_error(frames, match):
    with pytest.raises(ProtocolError, match=match):
        transport.decode(frames, transport.TO_WORKER)


def test_images_round_trip_exactly():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    outputs, frames = transport.images_to_payload(images)
    done = TaskDone(task_id=1, request_id="r", rank=0, ok=True, outputs=outputs)
    msg, payload = transport.decode(transport.encode(done, frames), transport.TO_CONTROLLER)
    back = transport.images_from_payload(msg.outputs, payload)
    assert len(back) == 3 and all(np.array_equal(a, b) for a, b in zip(images, back, strict=True))


def test_long_video_travels_stacked_within_the_frame_limit():
    video = [np.full((2, 3, 3), i, dtype=np.uint8) for i in range(100)]
    outputs, frames = transport.images_to_payload(video)
    assert len(frames) == 1 and outputs[0]["shape"] == "100,2,3,3"
    back = transport.images_from_payload(outputs, frames)
    assert [int(f[0, 0, 0]) for f in back] == list(range(100))


def test_bad_outputs_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        transport.images_to_payload([np.zeros((2, 2, 3), dtype=np.float32)])
    with pytest.raises(ProtocolError, match="does not match"):
        transport.images_from_payload([{"mime": transport.RAW_RGB8, "shape": "2,2,3"}], [b"123"])
    with pytest.raises(ProtocolError, match="descriptors"):
        transport.images_from_payload([], [b"x"])
