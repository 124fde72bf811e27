"""Helpers for the engine tests: a tiny cost model with round numbers, and a configurable policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from gfdit import costmodel_file
from gfdit.engine.policy import ClassSpec, Why
from gfdit.engine.request import Request

PINNED_CLASS = """policy pin
param chunk = 5
param widths = {1, 2, 4}
pool big = {4, 5, 6, 7}
class L { pool = big }
order by req.arrival
width * = 2
grow denoise
"""  # class L pinned to ranks 4-7 of 8 (tests of class pools and request pins)


def write_cost_model(directory: Path, step_ms: Mapping[int, float], encode_ms: float = 1000.0,
                     decode_ms: float = 1000.0, migration: dict | None = None, prepare_ms: float = 0.0) -> Path:
    """A cost model: encode / decode constant, one denoise step `step_ms[width]` (constant in x) with or
    without CFG."""
    def stages(step: float) -> dict:
        constant = {"text_encode": ("text_seq_len", encode_ms), "dit_prepare": ("latent_seq_len", prepare_ms),
                    "timestep_prepare": ("num_steps", 0.0), "dit_step_chunk": ("latent_seq_len", step),
                    "dit_step_chunk_nocfg": ("latent_seq_len", step), "vae_decode": ("voxels", decode_ms),
                    "finalize": ("ones", 0.0)}
        return {name: costmodel_file.stage_entry(x, 0.0, 0.0, c) for name, (x, c) in constant.items()}

    layouts = {w: costmodel_file.layout_doc("tiny", w, stages(s)) for w, s in step_ms.items()}
    return costmodel_file.write_cost_model(directory, layouts, migration)


def req(rid: str, arrival: float, steps: int, deadline: float | None = None, cls: str = "default",
        priority: int | None = None, tokens: int = 1024) -> Request:
    return Request(id=rid, arrival=arrival, height=512, width=512, steps=steps, tokens=tokens,
                   deadline=deadline, request_class=cls, priority=priority)


@dataclass(frozen=True)
class TestPolicy:
    """A policy whose hooks are plain functions (defaults: admit all, no hold, FIFO, width by stage)."""

    __test__ = False
    name: str = "test"
    revision: str = "r0"
    chunk: int | None = 1
    widths: tuple[int, ...] = (1, 2)
    on_short: str = "skip"
    placement: tuple[str, ...] = ("sticky", "compact")
    pools: Mapping[str, frozenset[int]] = field(default_factory=dict)
    stage_pools: Mapping[str, str] = field(default_factory=dict)
    classes: Mapping[str, ClassSpec] = field(default_factory=dict)
    tick: float | None = None
    stage_width: Mapping[str, int] = field(default_factory=lambda: {"encode": 1, "denoise": 1, "decode": 1})
    hold_fn: Callable | None = None
    order_fn: Callable | None = None
    grow_fn: Callable | None = None
    admit_fn: Callable | None = None
    width_fn: Callable | None = None

    def admit(self, view, r):
        return self.admit_fn(view, r) if self.admit_fn else (None, None)

    def hold(self, view, r):
        return self.hold_fn(view, r) if self.hold_fn else None

    def order_key(self, view, r):
        return self.order_fn(view, r) if self.order_fn else ()

    def width(self, view, r):
        if self.width_fn:
            return self.width_fn(view, r)
        return self.stage_width[r.stage], Why("test.width", {"stage": r.stage})

    def grow(self, view, r):
        return self.grow_fn(view, r) if self.grow_fn else None
