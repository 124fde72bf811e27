"""Split/gather plans: where a transformer's sequence is sharded and gathered.

A plan is data, one per family (like diffusers' ``_cp_plan``, but for gfdit's
group-free collectives and with padding): which module inputs or outputs to
split along the sequence (and which segment they belong to), which outputs to
all-gather, and, for every attention module, the segments its tokens come from
(``LOCAL`` for cross-attention onto replicated text, which needs no exchange).

`install_plan` registers forward hooks once, at load; they act only inside
`gfdit.workers.ulysses.sharded` with a group of two or more ranks.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from gfdit.workers import ulysses

LOCAL: tuple[str, ...] = ()  # attention with replicated keys: no exchange


@dataclass(frozen=True)
class Split:
    """Shard a module's input (``arg``: parameter name or position) or output
    (``arg``: output index, None for the output itself) along ``dim``."""

    module: str  # dotted path; "" is the transformer; "*" matches one path component
    arg: str | int | None
    dim: int
    segment: str
    output: bool = False


@dataclass(frozen=True)
class Gather:
    """All-gather a module's output along ``dim`` and cut the padding off."""

    module: str
    dim: int
    segment: str


@dataclass(frozen=True)
class SPPlan:
    splits: tuple[Split, ...]
    gathers: tuple[Gather, ...]
    attention: dict[str, tuple[str, ...]] = field(default_factory=dict)


_CURRENT_LAYOUT: list[tuple[str, ...] | None] = [None]


def current_layout() -> tuple[str, ...] | None:
    """The segment layout of the attention module running now (None: not planned)."""
    return _CURRENT_LAYOUT[0]


def install_plan(transformer: nn.Module, plan: SPPlan) -> None:
    """Register the plan's hooks on ``transformer``; every pattern must match."""
    for split in plan.splits:
        for module in _matching(transformer, split.module):
            if split.output:
                module.register_forward_hook(_split_output_hook(split))
            else:
                module.register_forward_pre_hook(_split_input_hook(module, split), with_kwargs=True)
    for gather in plan.gathers:
        for module in _matching(transformer, gather.module):
            module.register_forward_hook(_gather_hook(gather))
    for pattern, layout in plan.attention.items():
        for module in _matching(transformer, pattern):
            module.register_forward_pre_hook(_enter_attention(layout))
            module.register_forward_hook(_leave_attention, always_call=True)


def _matching(root: nn.Module, pattern: str) -> list[nn.Module]:
    regex = re.compile("^" + re.escape(pattern).replace(r"\*", r"[^.]+") + "$")
    found = [m for name, m in root.named_modules() if regex.match(name)]
    if not found:
        raise ValueError(f"sequence-parallel plan: no module matches {pattern!r} in {type(root).__name__}")
    return found


def _split_input_hook(module: nn.Module, split: Split):
    names = list(inspect.signature(module.forward).parameters)
    position = split.arg if isinstance(split.arg, int) else names.index(split.arg)
    name = split.arg if isinstance(split.arg, str) else names[position]

    def hook(mod, args, kwargs):
        run = ulysses.active_run()
        if run is None:
            return None
        if name in kwargs and torch.is_tensor(kwargs[name]):
            kwargs = {**kwargs, name: run.split(kwargs[name], split.dim, split.segment)}
        elif position < len(args) and torch.is_tensor(args[position]):
            args = (*args[:position], run.split(args[position], split.dim, split.segment), *args[position + 1 :])
        return args, kwargs

    return hook


def _split_output_hook(split: Split):
    def hook(mod, args, output):
        run = ulysses.active_run()
        if run is None:
            return None
        if split.arg is None:
            return run.split(output, split.dim, split.segment)
        parts = list(output)
        parts[split.arg] = run.split(parts[split.arg], split.dim, split.segment)
        return type(output)(parts)

    return hook


def _gather_hook(gather: Gather):
    def hook(mod, args, output):
        run = ulysses.active_run()
        if run is None:
            return None
        return run.gather(output, gather.dim, gather.segment)

    return hook


def _enter_attention(layout: tuple[str, ...]):
    def hook(mod, args):
        _CURRENT_LAYOUT[0] = layout

    return hook


def _leave_attention(mod, args, output):
    _CURRENT_LAYOUT[0] = None
