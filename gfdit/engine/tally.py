"""The engine metrics, kept incrementally: O(1) per ended request, bounded memory.

`compute_metrics` (metrics.py) recomputes everything from a list of outcomes:
right for a simulation's report, wrong for a server that runs for days. A
`Tally` is fed each outcome once (`add`) and answers `metrics(gpus)` with the
same keys and definitions, every count, sum and mean exact; the latency
percentiles come from a `Sketch` (within 1% relative of the exact figure).
Each outcome is filed under a label the caller chooses (the server: its class
if the policy declares it, else `other`), so the number of blocks is bounded.
"""

from __future__ import annotations

import math

from .request import REJECTED, Outcome, State
from .sketch import Sketch

OTHER = "other"


def class_label(request_class: str, declared) -> str:
    """The label a request class is counted under: itself if `declared` (the policy's
    classes) names it or it is `default`, else `other` (bounded label sets)."""
    return request_class if request_class in declared or request_class == "default" else OTHER


class _Block:
    """Running sums of one group of requests (what `metrics.block` computes at once)."""

    __slots__ = ("counts", "met", "latency", "normalized", "busy", "migrations", "migration_s")

    def __init__(self):
        self.counts = {State.COMPLETED.value: 0, State.FAILED.value: 0, State.CANCELLED.value: 0, REJECTED: 0}
        self.met = 0
        self.latency = Sketch()
        self.normalized = 0.0
        self.busy = 0.0
        self.migrations = 0
        self.migration_s = 0.0

    def add(self, o: Outcome) -> None:
        self.counts[o.state] = self.counts.get(o.state, 0) + 1
        if o.state == State.COMPLETED.value:
            latency = o.finish - o.arrival  # type: ignore[operator]
            self.latency.add(latency)
            self.normalized += latency / o.t_single
            self.met += o.met_slo
        self.busy += o.busy_rank_s
        self.migrations += o.migrations
        self.migration_s += o.migration_s

    def render(self, gpus: int, span: float) -> dict:
        requests = sum(self.counts.values())
        done = self.counts[State.COMPLETED.value]
        judged = requests - self.counts[State.CANCELLED.value]
        sar = self.met / judged if judged else 0.0
        per_min = 60.0 / span if span > 0 else 0.0
        return {
            "requests": requests, "completed": done, "failed": self.counts[State.FAILED.value],
            "cancelled": self.counts[State.CANCELLED.value], "rejected": self.counts[REJECTED],
            "slo_met": self.met, "slo_attainment": sar, "slo_violation_rate": 1.0 - sar if judged else 0.0,
            "mean_latency_s": self.latency.mean,
            "p50_latency_s": self.latency.percentile(50),
            "p95_latency_s": self.latency.percentile(95),
            "p99_latency_s": self.latency.percentile(99),
            "mean_normalized_latency": self.normalized / done if done else math.nan,
            "throughput_rpm": done * per_min, "goodput_rpm": self.met * per_min,
            "gpu_utilization": self.busy / (gpus * span) if span > 0 else 0.0,
            "busy_rank_s": self.busy, "migrations": self.migrations, "migration_s": self.migration_s,
            "span_s": span,
        }


class Tally:
    """Every outcome added once; `metrics` in time proportional to the number of labels."""

    def __init__(self):
        self.overall = _Block()
        self.labels: dict[str, _Block] = {}
        self.first_arrival = math.inf
        self.last_finish = -math.inf

    def add(self, outcome: Outcome, label: str | None = None) -> None:
        self.overall.add(outcome)
        key = outcome.request_class if label is None else label
        block = self.labels.get(key)
        if block is None:
            block = self.labels[key] = _Block()
        block.add(outcome)
        self.first_arrival = min(self.first_arrival, outcome.arrival)
        if outcome.finish is not None:
            self.last_finish = max(self.last_finish, outcome.finish)

    @property
    def span(self) -> float:
        """Last finish - first arrival (0 when nothing finished), as `metrics.span_of`."""
        return max(0.0, self.last_finish - self.first_arrival) if math.isfinite(self.last_finish) else 0.0

    def counts(self) -> dict[str, int]:
        """Requests by final state."""
        return {state: n for state, n in self.overall.counts.items() if n}

    def metrics(self, gpus: int) -> dict:
        """``{"overall": {...}, "classes": {LABEL: {...}}}``, as `compute_metrics`."""
        span = self.span
        return {"overall": self.overall.render(gpus, span),
                "classes": {name: block.render(gpus, span) for name, block in sorted(self.labels.items())}}
