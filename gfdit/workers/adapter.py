"""The model adapter contract: a diffusers pipeline cut into trajectory tasks.

A request runs as ``encode`` -> ``denoise[a, b)`` ... -> ``decode``. Between two
tasks everything the request needs lives in a `RequestState` (tensors + small
msgspec-encodable facts), so the next task may run in another process, on other
ranks, at another width. `load_adapter` picks the family adapter for a model
name: ``"tiny"`` (built in, random weights), a local diffusers directory, or a
hub id (both through ``from_pretrained``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy
import torch

from gfdit.protocol import GenParams

if TYPE_CHECKING:
    from gfdit.comm.group import Group
    from gfdit.comm.world import Comm

TINY = "tiny"


class AdapterError(ValueError):
    """A model that cannot be loaded, or a task a request's state cannot run."""


@dataclass
class RequestState:
    """Everything a request carries between tasks.

    tensors -- latents, prompt embeddings, timesteps and scheduler buffers
               (``sched.*``), the generator's RNG state (``generator``, uint8);
               all on the adapter's device, replicated on every member of a group.
    meta    -- small facts that msgspec encodes (ints, floats, strings, None,
               lists and dicts of them): ``step`` (next denoise step),
               ``steps``, ``params``, the scheduler's scalar attributes.

    The pair is exactly reconstructible on another rank: a scheduler resumed from
    it continues bit-exactly.
    """

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes of tensor data this state holds (what a migration moves)."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


@dataclass(frozen=True)
class SPContext:
    """What sequence-parallel denoising runs on: the world's collectives and the
    group of ranks computing this task (this process is one of its members)."""

    comm: "Comm"
    group: "Group"


@runtime_checkable
class ModelAdapter(Protocol):
    """One diffusers family, split into trajectory tasks. Batch size is 1."""

    family: str

    def encode(self, params: GenParams) -> RequestState:
        """Prompt -> embeddings with the pipeline's own text encoders. Runs at width 1.
        The DiT's set-up (latents, timesteps, the seeded generator) is not here: it
        runs with the first denoise step, on that task's ranks."""
        ...

    def denoise(self, state: RequestState, begin: int, end: int, sp: SPContext | None) -> None:
        """Run steps [begin, end) in place; ``sp=None`` means width 1. Every member
        of ``sp.group`` calls it with the same state and ends with the same state."""
        ...

    def decode(self, state: RequestState) -> list[numpy.ndarray]:
        """VAE decode: uint8 HxWx3 frames (one for an image)."""
        ...

    def state_nbytes(self, params: GenParams) -> int:
        """Size of a request's state for these params (for the migration cost model)."""
        ...


def load_adapter(model: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> ModelAdapter:
    """The adapter for ``model``: ``"tiny"``, a local diffusers directory (one
    written by ``save_pretrained``), or a hub id. Raises `AdapterError` for a
    directory that is not a pipeline or a family gfdit does not support."""
    from gfdit.workers import models

    if model == TINY:
        from gfdit.workers.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(models.TINY_FAMILY)
        return models.adapter_for_pipeline(pipe, device=device, dtype=dtype)
    path = Path(model)
    if path.exists() and not (path / "model_index.json").is_file():
        raise AdapterError(f"{model!r} is a path but holds no model_index.json (not a diffusers pipeline)")
    return models.adapter_from_pretrained(model, device=device, dtype=dtype)
