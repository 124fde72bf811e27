"""The compiled form of one expression: a closure `f(view, req, frame)` and, if known, its constant value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Code = Callable[[object, object, list], object]


@dataclass
class Compiled:
    fn: Code
    const: object = None
    is_const: bool = False


def const(value: object) -> Compiled:
    return Compiled(lambda v, q, e: value, value, True)
