"""The registry of supported diffusers families: one module per family.

A family is chosen by the pipeline's class name (``_class_name`` in a saved
pipeline's ``model_index.json``); an unknown pipeline errors with the list of
supported ones.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch

from gfdit.workers.adapter import AdapterError

TINY_FAMILY = "flux"

# family -> (module, adapter class, pipeline class names it serves)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "flux": ("gfdit.workers.models.flux", "FluxAdapter", ("FluxPipeline",)),
    "wan": ("gfdit.workers.models.wan", "WanAdapter", ("WanPipeline",)),
    "qwenimage": ("gfdit.workers.models.qwenimage", "QwenImageAdapter", ("QwenImagePipeline",)),
    "pixart": ("gfdit.workers.models.pixart", "PixArtAdapter", ("PixArtSigmaPipeline", "PixArtAlphaPipeline")),
}


def family_of(pipeline_class: str) -> str:
    for family, (_, _, classes) in FAMILIES.items():
        if pipeline_class in classes:
            return family
    supported = sorted(c for _, _, classes in FAMILIES.values() for c in classes)
    raise AdapterError(f"pipeline {pipeline_class!r} is not supported; supported: {supported}")


def adapter_class(family: str):
    module, name, _ = FAMILIES[family]
    return getattr(importlib.import_module(module), name)


def adapter_for_pipeline(pipe, *, device="cpu", dtype=torch.float32):
    """Wrap an in-memory diffusers pipeline in its family's adapter."""
    return adapter_class(family_of(type(pipe).__name__))(pipe, device=device, dtype=dtype)


def adapter_from_pretrained(model: str, *, device="cpu", dtype=torch.float32):
    """Load a pipeline with ``from_pretrained`` (local directory or hub id)."""
    from diffusers import DiffusionPipeline

    index = Path(model) / "model_index.json"
    if index.is_file():
        family_of(json.loads(index.read_text())["_class_name"])  # refuse before loading weights
    try:
        pipe = DiffusionPipeline.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as error:
        raise AdapterError(f"cannot load pipeline {model!r}: {error}") from error
    return adapter_for_pipeline(pipe, device=device, dtype=dtype)
