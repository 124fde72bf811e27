"""What the control plane itself costs: per-task overhead and scheduling-round time.

Per-task overhead is a dispatch's wall time at the server (sent -> last stage
reported) minus the workers' own time for it (the slowest member's `total`, per
stage): ZeroMQ hops, encoding, the engine loop's polling and bookkeeping.
Round time is `Engine.schedule` wall time, kept by the queue length it saw, for
rounds with work to do (a waiting request and a free rank; the others return at once).
Both are `Sketch`es: O(1) per value, bounded memory, percentiles within 1%.
"""

from __future__ import annotations

from gfdit.engine.sketch import Sketch

QUEUE_BUCKETS = (10, 100, 1000)


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN (no data) -> None


class ControlCosts:
    def __init__(self):
        self.overheads = Sketch()
        self.stages = 0
        self.rounds: dict[str, Sketch] = {}

    def task(self, overhead_s: float, stages: int) -> None:
        self.overheads.add(max(0.0, overhead_s))
        self.stages += stages

    def round(self, waiting: int, seconds: float) -> None:
        bucket = next((f"<={b}" for b in QUEUE_BUCKETS if waiting <= b), f">{QUEUE_BUCKETS[-1]}")
        sketch = self.rounds.get(bucket)
        if sketch is None:
            sketch = self.rounds[bucket] = Sketch()
        sketch.add(seconds)

    def summary(self) -> dict:
        o = self.overheads
        return {
            "tasks": o.count,
            "stages": self.stages,
            "overhead_mean_s": _finite(o.mean),
            "overhead_p50_s": _finite(o.percentile(50)),
            "overhead_p99_s": _finite(o.percentile(99)),
            "rounds": {bucket: {"count": v.count, "p50_s": _finite(v.percentile(50)),
                                "p99_s": _finite(v.percentile(99))}
                       for bucket, v in sorted(self.rounds.items())},
        }
