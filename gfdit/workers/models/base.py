"""The trajectory-task skeleton every diffusers family adapter shares.

A family subclass says how to encode the prompt (`_encode`), how to set the DiT
up (`_prepare`: latents, timesteps; it runs with the first denoise step, on the
denoise task's ranks, not with encode), how to predict the noise for one step (`_predict`, inside which the transformer runs sharded), how
to decode (`_decode_float`), the sequence-parallel plan of its transformer, and
how big its state is. This class owns the rest: parameter checks, the scheduler
and generator carried in `RequestState`, strict step order, uint8 frames.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import msgspec
import numpy
import torch

from gfdit.protocol import GenParams, ModelLimits
from gfdit.workers.adapter import AdapterError, RequestState, SPContext
from gfdit.workers.models.scheduler_state import SchedulerCodec, capture_generator, restore_generator
from gfdit.workers.sp_plan import SPPlan, install_plan

LATENTS = "latents"
STATE_OVERHEAD_BYTES = 4096  # scheduler scalars, sigmas, timesteps, generator state


class DiffusersAdapter:
    """A `ModelAdapter` over one loaded diffusers pipeline (batch size 1)."""

    family: ClassVar[str]
    plan: ClassVar[SPPlan]
    video: ClassVar[bool] = False

    def __init__(self, pipe, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.pipe = pipe.to(self.device)
        if pipe.dtype != dtype:
            self.pipe.to(dtype=dtype)
        self.pipe.set_progress_bar_config(disable=True)
        self.codec = SchedulerCodec(pipe.scheduler, self.device)
        self._step_takes_generator = "generator" in inspect.signature(pipe.scheduler.step).parameters
        install_plan(pipe.transformer, self.plan)
        self._install_attention()

    # -- the contract -------------------------------------------------------

    @torch.no_grad()
    def encode(self, params: GenParams) -> RequestState:
        self.check(params)
        tensors = {k: v.to(self.device) for k, v in self._encode(params).items()}
        state = RequestState(tensors, {"family": self.family, "step": 0, "steps": params.steps,
                                       "prepared": False})
        state.meta["params"] = msgspec.to_builtins(params)
        return state

    @torch.no_grad()
    def prepare(self, state: RequestState) -> None:
        """The DiT's set-up (latents, timesteps, the seeded generator), once, before the first step:
        it belongs to the denoise stage (under disaggregation it runs on the denoise pool)."""
        params = self.params_of(state)
        generator = torch.Generator(device=self.device).manual_seed(params.seed)
        scheduler = self.codec.fresh()
        added = self._prepare(params, state.tensors, generator, scheduler)
        state.tensors.update({k: v.to(self.device) for k, v in added.items()})
        state.meta["steps"] = len(scheduler.timesteps)
        state.meta["prepared"] = True
        self.codec.capture(scheduler, state.tensors, state.meta)
        capture_generator(generator, state.tensors, self.device)

    @torch.no_grad()
    def denoise(self, state: RequestState, begin: int, end: int, sp: SPContext | None) -> None:
        step, steps = state.meta["step"], state.meta["steps"]
        if begin != step or not begin < end <= steps:
            raise AdapterError(f"denoise [{begin}, {end}) but the request is at step {step} of {steps}")
        if not state.meta.get("prepared", True):
            self.prepare(state)
        params = self.params_of(state)
        scheduler = self.codec.restore(state.tensors, state.meta)
        generator = restore_generator(self.device, state.tensors)
        extra = {"generator": generator} if self._step_takes_generator else {}
        latents = state.tensors[LATENTS]
        for i in range(begin, end):
            t = scheduler.timesteps[i]
            noise = self._predict(state.tensors, params, t, sp)
            latents = scheduler.step(noise, t, latents, return_dict=False, **extra)[0]
            state.tensors[LATENTS] = latents
        state.meta["step"] = end
        self.codec.capture(scheduler, state.tensors, state.meta)
        capture_generator(generator, state.tensors, self.device)

    @torch.no_grad()
    def decode(self, state: RequestState) -> list[numpy.ndarray]:
        return [(frame * 255).round().clip(0, 255).astype(numpy.uint8) for frame in self.decode_float(state)]

    @torch.no_grad()
    def decode_float(self, state: RequestState) -> numpy.ndarray:
        """Frames as float32 (F, H, W, 3) in [0, 1]: the decode before rounding."""
        if state.meta["step"] != state.meta["steps"]:
            raise AdapterError(f"decode at step {state.meta['step']} of {state.meta['steps']}")
        frames = self._decode_float(state.tensors, self.params_of(state))
        return numpy.asarray(frames, dtype=numpy.float32).reshape(-1, *frames.shape[-3:])

    def state_nbytes(self, params: GenParams) -> int:
        element = torch.empty((), dtype=self.dtype).element_size()
        history = 1 + int(getattr(self.pipe.scheduler.config, "solver_order", 0) or 0)
        numel = history * self._latent_numel(params) + self._text_numel(params)
        return numel * element + STATE_OVERHEAD_BYTES

    # -- shared helpers -----------------------------------------------------

    @staticmethod
    def params_of(state: RequestState) -> GenParams:
        return msgspec.convert(state.meta["params"], GenParams)

    def check(self, params: GenParams) -> None:
        """Refuse parameters this model cannot generate, with the reason."""
        multiple = self.pixel_multiple()
        if params.height <= 0 or params.width <= 0 or params.height % multiple or params.width % multiple:
            raise AdapterError(f"{self.family}: height and width must be positive multiples of {multiple}")
        if params.steps < 1:
            raise AdapterError("steps must be at least 1")
        if params.frames < 1 or (not self.video and params.frames != 1):
            raise AdapterError(f"{self.family} makes images: frames must be 1")

    def limits(self) -> ModelLimits:
        """What `check` enforces, as data the server checks at intake (no torch there)."""
        return ModelLimits(family=self.family, video=self.video, pixel_multiple=self.pixel_multiple(),
                           frame_step=self.frame_step(), max_side=self.max_side())

    def frame_step(self) -> int:
        """Frames must be 1 more than a multiple of this (0: no rule)."""
        return 0

    def max_side(self) -> int:
        """The largest height/width the model's position embedding covers (0: no fixed limit)."""
        return 0

    # -- what a family provides ---------------------------------------------

    def _install_attention(self) -> None:
        raise NotImplementedError

    def pixel_multiple(self) -> int:
        raise NotImplementedError

    def _encode(self, params: GenParams) -> dict[str, torch.Tensor]:
        """The prompt's embeddings (the text encoders)."""
        raise NotImplementedError

    def _prepare(self, params: GenParams, tensors: dict[str, torch.Tensor], generator: torch.Generator,
                 scheduler) -> dict[str, torch.Tensor]:
        """Latents (from `generator`), `scheduler`'s timesteps; returns the tensors to add."""
        raise NotImplementedError

    def _predict(self, tensors: dict[str, torch.Tensor], params: GenParams, t: torch.Tensor, sp: SPContext | None) -> torch.Tensor:
        raise NotImplementedError

    def _decode_float(self, tensors: dict[str, torch.Tensor], params: GenParams) -> Any:
        raise NotImplementedError

    def _latent_numel(self, params: GenParams) -> int:
        raise NotImplementedError

    def _text_numel(self, params: GenParams) -> int:
        raise NotImplementedError
