"""Every wire message of gfdit, as typed msgspec Structs. Nothing is ever unpickled.

A message travels as ZMQ frames: ``[kind, body, *payload]`` where `kind` is the
message's tag (ASCII bytes), `body` its msgpack encoding, and `payload` zero or
more raw frames for large data (images, arrays) that never go inside `body`.
Decoding is typed per kind: an unknown kind, a body that does not match its
Struct, or a body or frame over the size limit raises `ProtocolError`, which the
receiver answers with an error reply (clients) or logs (workers) and goes on.

Two planes share this module:
  * client <-> server (ROUTER frontend): the "Client plane" section;
  * server (controller) <-> workers: the "Worker plane" section.
"""

from __future__ import annotations

from typing import Union

import msgspec

MAX_BODY_BYTES = 1 << 20  # a control message body is small; payload frames carry bulk data
MAX_PAYLOAD_BYTES = 256 << 20


class ProtocolError(ValueError):
    """A message that cannot be decoded: unknown kind, bad body, or too large."""


class Message(msgspec.Struct, tag_field="kind", forbid_unknown_fields=True):
    """Base of every wire message; the tag names the kind."""


# ---------------------------------------------------------------------------
# Worker plane: the controller sends tasks, workers answer with results.
# ---------------------------------------------------------------------------


class GenParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What to generate for one request; the worker's model adapter reads it."""

    prompt: str
    height: int
    width: int
    steps: int
    seed: int
    frames: int = 1
    negative_prompt: str = ""
    guidance_scale: float | None = None


class RunTask(Message, tag="run_task"):
    """Run one trajectory task on a group. Sent to every member of `group`, and to
    each rank outside it that must send state (see `migration sources`).

    group        -- ranks that compute, in order (index 0 returns the output).
    state_ranks  -- ranks holding the request's state now; () before encode.
                    Members of `group` not in `state_ranks` receive the state
                    first (migration); ranks in `state_ranks` not in `group` send
                    it if the plan names them, then drop it.
    seq          -- the controller's sequence number for this task; every member
                    receives a group's tasks in the same order.
    emulate_s    -- emulated mode: take this long instead of computing.
    """

    task_id: int
    request_id: str
    stage: str  # "encode" | "denoise" | "decode"
    step_begin: int
    step_end: int
    group: tuple[int, ...]
    state_ranks: tuple[int, ...]
    params: GenParams
    seq: int = 0
    emulate_s: float | None = None


class DropState(Message, tag="drop_state"):
    """Forget a request's state (completed, cancelled, failed, or migrated away)."""

    request_id: str


class Shutdown(Message, tag="shutdown"):
    """Finish the current task, then exit cleanly."""

    reason: str = ""


class WorkerReady(Message, tag="worker_ready"):
    """A worker joined the world and loaded its model."""

    rank: int
    pid: int
    device: str


class TaskDone(Message, tag="task_done"):
    """A member finished (or failed) its part of a task.

    timings are seconds by phase (e.g. "migrate", "compute", "total"). The group's
    index-0 member of a decode task attaches the output as payload frames,
    described by `outputs` (one entry per frame: mime type and shape).
    """

    task_id: int
    request_id: str
    rank: int
    ok: bool
    timings: dict[str, float] = {}
    error: str | None = None
    outputs: list[dict[str, str]] = []


class Heartbeat(Message, tag="heartbeat"):
    """Sent periodically by every worker; silence past the time-out means dead."""

    rank: int
    time: float
    task_id: int | None = None


class WorkerError(Message, tag="worker_error"):
    """A worker-level failure outside any task (e.g. a message it could not decode)."""

    rank: int
    message: str
    fatal: bool = False


WorkerMessage = Union[RunTask, DropState, Shutdown, WorkerReady, TaskDone, Heartbeat, WorkerError]


# ---------------------------------------------------------------------------
# Client plane: owned by the server module; defined below.
# ---------------------------------------------------------------------------
