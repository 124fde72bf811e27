"""ZMQ framing of worker-plane messages, and image payloads. Torch-free.

A message travels as frames ``[kind, body, *payload]`` (see `gfdit.protocol`):
`kind` is the message's tag, `body` its msgpack encoding, `payload` raw frames.
Decoding is typed per kind through one literal table; anything else raises
`ProtocolError`. Nothing is ever unpickled.

Decode outputs travel as raw RGB bytes, one payload frame per image/frame, each
described in `TaskDone.outputs` by ``{"mime": RAW_RGB8, "shape": "H,W,3"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from gfdit.protocol import (
    MAX_FRAMES,
    DropState,
    Heartbeat,
    Message,
    ProtocolError,
    RunTask,
    Shutdown,
    TaskDone,
    WorkerError,
    WorkerHello,
    WorkerReady,
    decode_frames,
    encode_frames,
    kind_table,
)
from gfdit.protocol_nodes import NodeChallenge, NodeHello, NodeLost, NodeProof, NodeStop, NodeWelcome

if TYPE_CHECKING:
    import numpy as np

RAW_RGB8 = "image/x-raw-rgb8"
MAX_IMAGE_FRAMES = MAX_FRAMES - 2  # beyond this many images, they travel stacked in one frame
# one frame the controller accepts (zmq.MAXMSGSIZE: a larger one drops its peer): above every real
# result (a stack of video frames: 121 frames of 1280x720 RGB8 are 335 MB), far below a memory bomb
MAX_MESSAGE_BYTES = 1 << 30
RECEIVE_BATCH = 1000  # messages handled per receive call: a flood cannot keep `poll` from returning

TO_WORKER = kind_table((RunTask, DropState, Shutdown))
FROM_NODE = (NodeHello, NodeProof, NodeLost)  # node agent -> head (gfdit worker --head), on the worker plane
TO_CONTROLLER = kind_table((WorkerHello, WorkerReady, TaskDone, Heartbeat, WorkerError, *FROM_NODE))
TO_NODE = kind_table((NodeChallenge, NodeWelcome, NodeStop))  # head -> node agent


def encode(msg: Message, payload: Sequence[bytes] = ()) -> list[bytes]:
    """Frames ``[kind, body, *payload]`` for `msg`."""
    return encode_frames(msg, list(payload))


def decode(frames: Sequence[bytes], table: dict[bytes, type]) -> tuple[Message, list[bytes]]:
    """Typed decode against one direction's table; anything wrong raises `ProtocolError`."""
    return decode_frames(list(frames), table)


def images_to_payload(images: Sequence[np.ndarray]) -> tuple[list[dict[str, str]], list[bytes]]:
    """`TaskDone.outputs` descriptors and payload frames for uint8 HxWxC images.

    One frame per image; a video longer than `MAX_IMAGE_FRAMES` frames travels as
    one stacked frame of shape "F,H,W,C" (the protocol caps the frame count).
    numpy is imported only when there are images (emulated workers have none).
    """
    if not images:
        return [], []
    import numpy as np

    arrays = [np.ascontiguousarray(image) for image in images]
    for array in arrays:
        if array.dtype != np.uint8 or array.ndim != 3:
            raise ValueError(f"an output image must be uint8 HxWxC, got {array.dtype} {array.shape}")
    if len(arrays) > MAX_IMAGE_FRAMES:
        arrays = [np.ascontiguousarray(np.stack(arrays))]
    outputs = [{"mime": RAW_RGB8, "shape": ",".join(map(str, a.shape))} for a in arrays]
    return outputs, [a.tobytes() for a in arrays]


def images_from_payload(outputs: Sequence[dict[str, str]], frames: Sequence[bytes]) -> list[np.ndarray]:
    """Inverse of `images_to_payload` (a stacked frame is split); raises `ProtocolError` on a mismatch."""
    if len(outputs) != len(frames):
        raise ProtocolError(f"{len(outputs)} output descriptors for {len(frames)} payload frames")
    import numpy as np

    images: list[np.ndarray] = []
    for desc, frame in zip(outputs, frames, strict=True):
        if desc.get("mime") != RAW_RGB8:
            raise ProtocolError(f"unsupported output mime {desc.get('mime')!r}")
        try:
            shape = tuple(int(n) for n in desc["shape"].split(","))
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"bad output shape {desc.get('shape')!r}") from exc
        if len(shape) not in (3, 4) or int(np.prod(shape)) != len(frame):
            raise ProtocolError(f"output of shape {shape} does not match {len(frame)} bytes")
        array = np.frombuffer(frame, dtype=np.uint8).reshape(shape)
        images.extend(list(array) if array.ndim == 4 else [array])
    return images
