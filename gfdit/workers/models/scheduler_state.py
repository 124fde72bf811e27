"""A diffusers scheduler's and generator's state as tensors + msgspec-encodable facts.

Generic over scheduler classes: the state is every instance attribute that
differs from a freshly configured scheduler (timesteps, sigmas, step index,
multistep buffers such as ``model_outputs``). Tensors go to ``sched.NAME`` (list
items to ``sched.NAME.I``) on the state's device, everything else to
``meta["scheduler"]``; a tensor the scheduler keeps on the CPU (FlowMatch keeps
its sigmas there to avoid device syncs) is marked so and restored there, so a
state holds tensors of one device only and moves to a rank with another one.
Restoring onto a fresh copy of the pristine scheduler continues bit-exactly.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy
import torch

PREFIX = "sched."
GENERATOR = "generator"
_SCALARS = (int, float, bool, str, type(None))


class SchedulerCodec:
    """Captures and restores one scheduler class's per-request state."""

    def __init__(self, scheduler, device: torch.device) -> None:
        self.pristine = scheduler.__class__.from_config(scheduler.config)
        self.device = torch.device(device)

    def fresh(self):
        return copy.deepcopy(self.pristine)

    def capture(self, scheduler, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        for name in [n for n in tensors if n.startswith(PREFIX)]:
            del tensors[name]
        facts: dict[str, Any] = {}
        base = vars(self.pristine)
        for name, value in vars(scheduler).items():
            if name == "_internal_dict" or (name in base and _same(base[name], value)):
                continue
            facts[name] = _encode(value, PREFIX + name, tensors, self.device)
        meta["scheduler"] = facts

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
        scheduler = self.fresh()
        for name, fact in meta["scheduler"].items():
            setattr(scheduler, name, _decode(fact, tensors, self.device))
        return scheduler


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if torch.is_tensor(a):
        return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)
    if isinstance(a, numpy.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(numpy.array_equal(a, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor], device: torch.device) -> Any:
    """A msgspec-encodable fact for ``value``; tensor data goes to ``tensors``."""
    if torch.is_tensor(value):
        tensors[key] = value.detach().to(device, copy=True)
        return {"tensor": key, "cpu": value.device.type == "cpu"}
    if isinstance(value, numpy.ndarray):
        tensors[key] = torch.from_numpy(value.copy()).to(device)
        return {"ndarray": key}
    if isinstance(value, list):
        return {"list": [_encode(item, f"{key}.{i}", tensors, device) for i, item in enumerate(value)]}
    if isinstance(value, (numpy.integer, numpy.floating, numpy.bool_)):
        return {"value": value.item()}
    if isinstance(value, _SCALARS):
        return {"value": value}
    raise TypeError(f"scheduler attribute {key!r} of type {type(value).__name__} cannot be carried")


def _decode(fact: dict[str, Any], tensors: dict[str, torch.Tensor], device: torch.device) -> Any:
    if "tensor" in fact:
        return tensors[fact["tensor"]].to("cpu" if fact["cpu"] else device, copy=True)
    if "ndarray" in fact:
        return tensors[fact["ndarray"]].cpu().numpy().copy()
    if "list" in fact:
        return [_decode(item, tensors, device) for item in fact["list"]]
    return fact["value"]


def capture_generator(generator: torch.Generator, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    tensors[GENERATOR] = generator.get_state().to(device, copy=True)


def restore_generator(device: torch.device, tensors: dict[str, torch.Tensor]) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.set_state(tensors[GENERATOR].cpu())
    return generator
