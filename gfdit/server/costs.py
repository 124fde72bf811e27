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
        self.tasks = 0
        self.stages = 0
        self.rounds: dict[str, deque[float]] = {}

    def task(self, overhead_s: float, stages: int) -> None:
        self.overheads.append(max(0.0, overhead_s))
        self.tasks += 1
        self.stages += stages

    def copy(self) -> "ControlCosts":
        """A copy to summarise outside the metrics lock (the loop keeps adding to this one)."""
        other = ControlCosts()
        other.overheads, other.tasks, other.stages = deque(self.overheads, maxlen=KEEP), self.tasks, self.stages
        other.rounds = {bucket: deque(v, maxlen=KEEP) for bucket, v in self.rounds.items()}
        return other

    def round(self, waiting: int, seconds: float) -> None:
        bucket = next((f"<={b}" for b in QUEUE_BUCKETS if waiting <= b), f">{QUEUE_BUCKETS[-1]}")
        self.rounds.setdefault(bucket, deque(maxlen=KEEP)).append(seconds)

    def summary(self) -> dict:
        """`tasks`, `stages`: totals; the rest over the last `KEEP` values (sorted once each:
        `percentile` re-sorts sorted input in linear time)."""
        values = sorted(self.overheads)
        rounds = {bucket: sorted(v) for bucket, v in sorted(self.rounds.items())}
        return {
            "tasks": self.tasks,
            "stages": self.stages,
            "overhead_mean_s": sum(values) / len(values) if values else None,
            "overhead_p50_s": _pct(values, 50),
            "overhead_p99_s": _pct(values, 99),
            "rounds": {bucket: {"count": len(v), "p50_s": _pct(v, 50), "p99_s": _pct(v, 99)}
                       for bucket, v in rounds.items()},
        }
