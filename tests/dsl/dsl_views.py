"""Plain, hand-built `RoundView`/`RequestView` objects for testing policies without the engine.

The cost model is a simple closed form: a denoise step of a request with T
tokens at width k takes `T / 1000 / k + 0.02 * (k - 1)` seconds; encode and
decode take 0.05 s each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Req:
    id: str = "r0"
    request_class: str = "S"
    priority: int = 0
    arrival: float = 0.0
    deadline: float = math.inf
    age: float = 0.0
    waited: float = 0.0
    paused: float = 0.0
    queued: float = 0.0
    tokens: int = 1024
    steps: int = 20
    steps_done: int = 0
    steps_left: int = 20
    stage: str = "denoise"
    width: int = 0
    t_single: float = 1.0
    preemptible: bool = False
    ranks: tuple = ()


@dataclass
class Round:
    now: float = 0.0
    gpus: int = 4
    free: int = 4
    busy: int = 0
    waiting: list = field(default_factory=list)
    running: list = field(default_factory=list)

    def step(self, req, k):
        if k not in (1, 2, 4, 8):
            raise ValueError(f"no cost-model layout for width {k}")  # like the engine's CostModelError
        return req.tokens / 1000 / k + 0.02 * (k - 1)

    def est(self, req, k):
        return req.steps_left * self.step(req, k) + 0.1

    def finish(self, req, k):
        return self.now + self.est(req, k)

    def slack(self, req, k):
        return req.deadline - self.finish(req, k)

    def gpu_time(self, req, k):
        return req.steps_left * self.step(req, k) * k
