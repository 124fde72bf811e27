"""What the control plane itself costs: per-task overhead and scheduling-round time.

Per-task overhead is a dispatch's wall time at the server (sent -> last stage
reported) minus the workers' own time for it (the slowest member's `total`, per
stage): ZeroMQ hops, encoding, the engine loop's polling and bookkeeping.
Round time is `Engine.schedule` wall time, kept by the queue length it saw, for
rounds with work to do (a waiting request and a free rank; the others return at once).
Both keep the most recent `KEEP` values (exact percentiles over a recent window,
bounded memory; the metrics desk summarises them off the engine loop).
"""

from __future__ import annotations

from collections import deque

from gfdit.engine.metrics import percentile

QUEUE_BUCKETS = (10, 100, 1000)
KEEP = 10_000


def _pct(values: list[float], q: float) -> float | None:
    """`percentile`, with None (JSON null) for no values."""
    return percentile(values, q) if values else None


class ControlCosts:
    def __init__(self):
        self.overheads: deque[float] = deque(maxlen=KEEP)
        self.stages = 0
        self.rounds: dict[str, deque[float]] = {}

    def task(self, overhead_s: float, stages: int) -> None:
        self.overheads.append(max(0.0, overhead_s))
        self.stages += stages

    def round(self, waiting: int, seconds: float) -> None:
        bucket = next((f"<={b}" for b in QUEUE_BUCKETS if waiting <= b), f">{QUEUE_BUCKETS[-1]}")
        self.rounds.setdefault(bucket, deque(maxlen=KEEP)).append(seconds)

    def summary(self) -> dict:
        values = list(self.overheads)
        return {
            "tasks": len(values),
            "stages": self.stages,
            "overhead_mean_s": sum(values) / len(values) if values else None,
            "overhead_p50_s": _pct(values, 50),
            "overhead_p99_s": _pct(values, 99),
            "rounds": {bucket: {"count": len(v), "p50_s": _pct(list(v), 50), "p99_s": _pct(list(v), 99)}
                       for bucket, v in sorted(self.rounds.items())},
        }
