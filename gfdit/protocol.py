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
The head <-> node agent messages of several hosts are in `gfdit.protocol_nodes`.
"""

from __future__ import annotations

from typing import Literal, Union, get_args

import msgspec

# The trajectory stages, in order: what a RunTask computes and what a policy's rules name.
Stage = Literal["encode", "denoise", "decode"]
STAGES: tuple[Stage, ...] = get_args(Stage)

DEFAULT_ADDRESS = "tcp://127.0.0.1:7600"  # where a server listens and a client connects by default
ADDRESS_SCHEMES = ("tcp://", "ipc://", "inproc://")


def normalize_address(address: str) -> str:
    """`HOST:PORT` means ``tcp://HOST:PORT``; other schemes than ZeroMQ's tcp/ipc/inproc are refused."""
    address = address.strip()
    if "://" not in address:
        address = "tcp://" + address
    if not address.startswith(ADDRESS_SCHEMES):
        raise ValueError(f"unsupported address {address!r}: use HOST:PORT, tcp://HOST:PORT or ipc://PATH")
    return address
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
    """What to generate for one request; the worker's model adapter reads it.

    In a `Submit`, height, width and steps may be None: the served model's
    defaults (the server fills them in at intake and returns the effective values
    in `Accepted.params`); 0 or less is refused. Workers always get numbers."""

    prompt: str
    height: int | None
    width: int | None
    steps: int | None
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
    after        -- the task id of the previous stage of the same dispatch (0: none):
                    a rank on which that one failed fails this one at once, without
                    computing or communicating ("skipped"), and so on down the chain.
    """

    task_id: int
    request_id: str
    stage: str  # one of STAGES
    step_begin: int
    step_end: int
    group: tuple[int, ...]
    state_ranks: tuple[int, ...]
    params: GenParams
    seq: int = 0
    emulate_s: float | None = None
    after: int = 0


class DropState(Message, tag="drop_state"):
    """Forget a request's state (completed, cancelled, failed, or migrated away)."""

    request_id: str


class Shutdown(Message, tag="shutdown"):
    """Finish the current task, then exit cleanly."""

    reason: str = ""


class WorkerHello(Message, tag="worker_hello"):
    """The first message on every worker connection: proves it knows the pool's
    secret (see `gfdit.workers.auth`). channel: "main" | "heartbeat" | "fatal"."""

    rank: int
    channel: str
    proof: str


class ModelLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the loaded model can generate, from its adapter (so the server refuses the
    rest at intake without importing torch). 0 means no such rule.

    video          -- frames > 1 allowed (an image model takes 1 frame only).
    pixel_multiple -- height and width must be multiples of this.
    frame_step     -- frames must be 1 more than a multiple of this (e.g. Wan: 4).
    max_side       -- the largest height or width the model's positions cover.
    """

    family: str = ""
    video: bool = False
    pixel_multiple: int = 8
    frame_step: int = 0
    max_side: int = 0


class WorkerReady(Message, tag="worker_ready"):
    """A worker joined the world and loaded its model (`limits`: None when emulated)."""

    rank: int
    pid: int
    device: str
    limits: ModelLimits | None = None


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


# ---------------------------------------------------------------------------
# Client plane: owned by the server module; defined below.
# ---------------------------------------------------------------------------


class ClientMessage(Message, kw_only=True):
    """Base of every client -> server message.

    call_id -- chosen by the client; the reply carries it back (0: no reply wanted).
    token   -- the shared secret when the server requires one (non-loopback binds).
    """

    call_id: int = 0
    token: str = ""


class Submit(ClientMessage, tag="submit"):
    """Submit one generation request; the submitter is subscribed to its progress.

    request_class -- a class the policy names (e.g. "interactive"), "" for default.
    deadline_s    -- seconds after arrival; wins over the class SLO.
    priority      -- wins over the class priority.
    request_id    -- optional client-chosen id (unique); "" lets the server choose.
    text_seq_len / latent_seq_len -- optional sizes for the cost model (trace replay);
                    derived from the shape when absent.
    preemptible   -- wins over the class's setting (trace replay).
    ranks         -- pin the request to these ranks: its tasks run only there (intersected with
                    its class's pool and its stages' pools); None: anywhere. A pin outside the
                    cluster or narrower than the policy's smallest width is rejected.
    """

    params: GenParams
    request_class: str = ""
    deadline_s: float | None = None
    priority: int | None = None
    request_id: str = ""
    text_seq_len: int | None = None
    latent_seq_len: int | None = None
    preemptible: bool | None = None
    subscribe: bool = True
    ranks: list[int] | None = None


class Cancel(ClientMessage, tag="cancel"):
    """Cancel a request: a queued one is removed, a running one stops at its task's end."""

    request_id: str


class StatusQuery(ClientMessage, tag="status"):
    """The server's state, and one request's when `request_id` is set; with `requests`,
    every live request too (`StatusReply.requests`, at most `MAX_LISTED_REQUESTS`)."""

    request_id: str = ""
    requests: bool = False


class Subscribe(ClientMessage, tag="subscribe"):
    """Receive a request's progress events (and its result) on this connection."""

    request_id: str


class ReloadPolicy(ClientMessage, tag="reload_policy"):
    """Propose a new policy, as text or as a path on the server's machine.

    if_revision -- refuse unless this is the running revision (compare-and-swap).
    """

    text: str | None = None
    path: str | None = None
    if_revision: str | None = None


class MetricsQuery(ClientMessage, tag="metrics"):
    """Metrics summary (overall and per class) and the Prometheus text."""


class Ping(ClientMessage, tag="ping"):
    """Liveness check; answered by `Pong`."""


class StopServer(ClientMessage, tag="stop_server"):
    """Ask the server to stop: running tasks end, queued requests are cancelled."""

    reason: str = ""


class Operate(ClientMessage, tag="operate"):
    """An operator's call (docs/server.md, The operator's loop), answered by `StatusReply.server`:
    op "record" (start writing arrivals to `path`, on the server's machine; `path` None stops;
    `prompts`), "cost_model" (the server's cost model), "shadow" (a candidate policy: `text`, or a
    .gfp `path` the server reads, answered by a `ReloadReply`; neither clears it), "promote" (swap
    the candidate in, answered by a `ReloadReply`; `if_revision` as in `ReloadPolicy`)."""

    op: str
    path: str | None = None
    text: str | None = None
    prompts: bool = False
    if_revision: str | None = None


class ServerMessage(Message, kw_only=True):
    """Base of every server -> client message; call_id echoes the request's.

    instance -- this server start's identity (random id, pid, start time): a client
              that hears a new one knows the server restarted and that requests
              it was waiting for are lost (`ServerRestarted`).
    """

    call_id: int = 0
    instance: str = ""


class Accepted(ServerMessage, tag="accepted"):
    """A submit was admitted; progress and the result follow under `request_id`."""

    request_id: str
    revision: str = ""
    params: GenParams | None = None  # what will run: the model's defaults filled in


class Rejected(ServerMessage, tag="rejected"):
    """A submit was refused by admission (`reason` is the policy's) or as invalid.

    code -- "admission" (the policy's admit rule or the engine) | "invalid" (a field) |
            "duplicate" (the request id is taken) | "busy" (the server's queue is full) |
            "unavailable" (no workers: the pool could not be restarted).
    """

    reason: str
    code: str = "admission"


ERROR_CODES = ("protocol", "unauthorized", "unknown_request", "invalid", "shutting_down", "internal")


class ErrorReply(ServerMessage, tag="error"):
    """A message the server could not accept: malformed, unknown, unauthorized.

    code -- "protocol" | "unauthorized" | "unknown_request" | "invalid" | "shutting_down" |
            "internal" (the server failed on this call and goes on).
    """

    code: str
    message: str


class Ack(ServerMessage, tag="ack"):
    """A plain acknowledgement (cancel, subscribe, stop)."""

    message: str = ""
    state: str = ""


class Pong(ServerMessage, tag="pong"):
    """Answer to `Ping`; `time` is the server's engine clock."""

    time: float


class Progress(ServerMessage, tag="progress"):
    """One step in a request's life, in order (`seq` counts per request).

    state -- "queued" | "encoding" | "migrated" | "running" | "decoding" |
             "retrying" | "held" (running: `step` of `steps` done at `width`).
    """

    request_id: str
    seq: int
    state: str
    time: float
    stage: str = ""
    step: int = 0
    steps: int = 0
    width: int = 0
    ranks: tuple[int, ...] = ()
    from_ranks: tuple[int, ...] = ()
    message: str = ""


class Result(ServerMessage, tag="result"):
    """A request's end: state "completed" | "failed" | "cancelled".

    On completion the outputs travel as payload frames, one per entry of
    `outputs` (each: "mime" and, for raw arrays, "shape" and "dtype").
    latency_s and deadline_s are seconds on the engine clock (from arrival).
    """

    request_id: str
    seq: int
    state: str
    reason: str = ""
    latency_s: float = 0.0
    deadline_s: float | None = None
    slo_met: bool | None = None
    outputs: list[dict[str, str]] = []


class StatusReply(ServerMessage, tag="status_reply"):
    """Server state (policy, revision, executor, ranks, queue) and a request's state."""

    server: dict[str, object]
    request: dict[str, object] | None = None
    requests: list[dict[str, object]] = []


class ReloadReply(ServerMessage, tag="reload_reply"):
    """Outcome of a policy reload: on failure the old policy keeps running.

    diagnostics -- every problem found, each rendered with file:line:col and a caret.
    """

    ok: bool
    revision: str
    previous_revision: str = ""
    message: str = ""
    diagnostics: list[str] = []


class MetricsReply(ServerMessage, tag="metrics_reply"):
    """Summary metrics ({"overall": {...}, "classes": {...}}) and Prometheus text."""

    summary: dict[str, object]
    prometheus: str = ""


ClientRequest = Union[Submit, Cancel, StatusQuery, Subscribe, ReloadPolicy, MetricsQuery, Ping, StopServer,
                      Operate]
ServerReply = Union[
    Accepted, Rejected, ErrorReply, Ack, Pong, Progress, Result, StatusReply, ReloadReply, MetricsReply
]
MAX_FRAMES = 64
MAX_LISTED_REQUESTS = 1000  # live requests listed by a status query (the oldest first)


def kind_table(types: tuple[type, ...]) -> dict[bytes, type]:
    """The kind frame -> Struct type table for one direction of a plane."""
    return {t.__struct_config__.tag.encode(): t for t in types}


CLIENT_KINDS = kind_table(ClientRequest.__args__)
SERVER_KINDS = kind_table(ServerReply.__args__)
_ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[type, msgspec.msgpack.Decoder] = {}


def encode_frames(msg: Message, payload: tuple[bytes, ...] | list[bytes] = ()) -> list[bytes]:
    """[kind, body, *payload] for one message."""
    return [msg.__struct_config__.tag.encode(), _ENCODER.encode(msg), *payload]


def decode_frames(frames: list[bytes], kinds: dict[bytes, type]) -> tuple[Message, list[bytes]]:
    """Typed decode of [kind, body, *payload]; anything wrong raises ProtocolError."""
    if len(frames) < 2:
        raise ProtocolError(f"expected [kind, body, *payload], got {len(frames)} frame(s)")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError(f"too many frames: {len(frames)} > {MAX_FRAMES}")
    kind, body, payload = bytes(frames[0][:64]), frames[1], list(frames[2:])
    msg_type = kinds.get(kind)
    if msg_type is None:
        known = ", ".join(sorted(k.decode() for k in kinds))
        raise ProtocolError(f"unknown message kind {kind[:32]!r}; known: {known}")
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    if sum(len(p) for p in payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
    decoder = _DECODERS.get(msg_type)
    if decoder is None:
        decoder = _DECODERS[msg_type] = msgspec.msgpack.Decoder(msg_type)
    try:
        return decoder.decode(body), payload
    except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: e.g. invalid UTF-8 in a string
        raise ProtocolError(f"bad {kind.decode()} body: {exc}") from None
