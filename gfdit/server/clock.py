"""The server's engine clock: seconds since start, divided by the time scale.

With `time_scale` 0.1 (emulated runs), one wall second is ten engine seconds:
emulated workers sleep the cost model's time times the scale, and latencies,
deadlines and the decision log stay in the cost model's (engine) seconds, so a
server run and a simulation of the same trace read the same.
"""

from __future__ import annotations

import time


class EngineClock:
    def __init__(self, time_scale: float = 1.0):
        self.time_scale = time_scale
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) / self.time_scale

    def wall(self, engine_seconds: float) -> float:
        """Wall seconds of an engine-clock duration."""
        return engine_seconds * self.time_scale
