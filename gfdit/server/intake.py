"""A client's submit, checked and turned into an engine `Request` plus its `GenParams`.

Everything a client can get wrong is caught here with a message that names the
field; nothing malformed reaches the engine or the workers.
"""

from __future__ import annotations

import math
import re

from gfdit.engine.request import Request, RequestError
from gfdit.protocol import GenParams, ModelLimits, Submit
from gfdit.server.config import ServerConfig

REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
DEFAULT_TEXT_TOKENS = 512
MAX_PINNED_RANKS = 4096  # a pin names ranks of the cluster (the engine refuses ranks outside it)


class InvalidSubmit(ValueError):
    """A submit that cannot become a request; the message says which field and why."""


def build_request(msg: Submit, now: float, config: ServerConfig, fresh_id: str,
                  limits: ModelLimits | None = None) -> tuple[Request, GenParams]:
    """The engine request (arrival `now`) and the worker parameters of one submit;
    `limits`: the served model's (from its workers), refused here with the reason."""
    p = msg.params
    params = GenParams(  # None: the model's default; 0 is refused below, never replaced
        prompt=p.prompt, height=_or(p.height, config.default_height), width=_or(p.width, config.default_width),
        steps=_or(p.steps, config.default_steps), seed=p.seed, frames=p.frames,
        negative_prompt=p.negative_prompt, guidance_scale=p.guidance_scale,
    )
    _check_params(params, config)
    if limits is not None:
        _check_model(params, limits)
    request_id = msg.request_id or fresh_id
    if not REQUEST_ID.match(request_id):
        raise InvalidSubmit(f"request_id must be 1-64 characters of [A-Za-z0-9_.:-], got {request_id[:80]!r}")
    if msg.request_class and not REQUEST_ID.match(msg.request_class):  # a metrics label and a log field
        raise InvalidSubmit(f"request_class must be 1-64 characters of [A-Za-z0-9_.:-], got {msg.request_class[:80]!r}")
    deadline = None
    if msg.deadline_s is not None:
        if not math.isfinite(msg.deadline_s) or msg.deadline_s <= 0:
            raise InvalidSubmit(f"deadline must be a positive number of seconds, got {msg.deadline_s}")
        deadline = now + msg.deadline_s
    for name in ("text_seq_len", "latent_seq_len"):
        value = getattr(msg, name)
        if value is not None and not 1 <= value <= 10_000_000:
            raise InvalidSubmit(f"{name} must be in 1..10000000, got {value}")
    if msg.ranks is not None and len(msg.ranks) > MAX_PINNED_RANKS:
        raise InvalidSubmit(f"ranks: at most {MAX_PINNED_RANKS} entries, got {len(msg.ranks)}")
    if msg.priority is not None and abs(msg.priority) > 1_000_000:
        raise InvalidSubmit(f"priority must be within +-1000000, got {msg.priority}")
    try:
        request = Request(
            id=request_id, arrival=now, height=params.height, width=params.width, steps=params.steps,
            frames=params.frames, text_tokens=msg.text_seq_len or DEFAULT_TEXT_TOKENS,
            tokens=msg.latent_seq_len or 0, request_class=msg.request_class or "default",
            priority=msg.priority, deadline=deadline, seed=params.seed, prompt=params.prompt,
            preemptible=msg.preemptible, payload=params, ranks=msg.ranks,
            cfg=params.guidance_scale not in (None, 0.0, 1.0),
        )
    except RequestError as exc:
        raise InvalidSubmit(str(exc)) from None
    return request, params


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _check_params(params: GenParams, config: ServerConfig) -> None:
    for name in ("height", "width", "steps", "frames"):
        value = getattr(params, name)
        if value < 1:
            raise InvalidSubmit(f"{name} must be a positive integer, got {value}")
    if params.height % 8 or params.width % 8:
        raise InvalidSubmit(f"height and width must be multiples of 8, got {params.height}x{params.width}")
    if params.height * params.width > config.max_pixels:
        raise InvalidSubmit(f"{params.height}x{params.width} exceeds the limit of {config.max_pixels} pixels")
    if params.steps > config.max_steps:
        raise InvalidSubmit(f"steps must be at most {config.max_steps}, got {params.steps}")
    if params.frames > config.max_frames:
        raise InvalidSubmit(f"frames must be at most {config.max_frames}, got {params.frames}")
    if len(params.prompt) > config.max_prompt_chars or len(params.negative_prompt) > config.max_prompt_chars:
        raise InvalidSubmit(f"a prompt must be at most {config.max_prompt_chars} characters")
    if params.guidance_scale is not None and not (math.isfinite(params.guidance_scale)
                                                  and 0 <= params.guidance_scale <= 100):
        raise InvalidSubmit(f"guidance_scale must be in 0..100, got {params.guidance_scale}")
    if not -(1 << 63) <= params.seed < (1 << 63):
        raise InvalidSubmit(f"seed must fit in 64 bits, got {params.seed}")


def _check_model(params: GenParams, limits: ModelLimits) -> None:
    """What the model itself cannot take (its adapter's rules), refused before any attempt."""
    model = limits.family or "this model"
    if params.frames != 1 and not limits.video:
        raise InvalidSubmit(f"{model} makes images: frames must be 1, got {params.frames}")
    if limits.frame_step and (params.frames - 1) % limits.frame_step:
        step = limits.frame_step
        below = (params.frames - 1) // step * step + 1
        raise InvalidSubmit(f"{model}: frames must be 1 more than a multiple of {step} "
                            f"(e.g. {below} or {below + step}), got {params.frames}")
    multiple = limits.pixel_multiple
    if multiple > 1 and (params.height % multiple or params.width % multiple):
        raise InvalidSubmit(f"{model}: height and width must be multiples of {multiple}, "
                            f"got {params.height}x{params.width}")
    if limits.max_side and max(params.height, params.width) > limits.max_side:
        raise InvalidSubmit(f"{model}: height and width can be at most {limits.max_side} "
                            f"(its position embedding's range), got {params.height}x{params.width}")
