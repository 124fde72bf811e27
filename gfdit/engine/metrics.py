"""Metrics from finished requests, as docs/engine.md and the evaluation design define them.

One function for the simulator and the server alike: `compute_metrics(outcomes,
gpus)` returns ``{"overall": {...}, "classes": {NAME: {...}}}``. Per block:

- requests: every request seen (rejected ones too); completed, failed,
  cancelled, rejected: counts by outcome.
- slo_attainment: requests that completed by their deadline / requests not
  cancelled by their client (0..1); slo_violation_rate = 1 - that.
- mean / p50 / p95 / p99 latency_s: finish - arrival over completed requests
  (percentiles interpolate linearly between order statistics);
  mean_normalized_latency: latency / t_single, averaged.
- throughput_rpm, goodput_rpm: completed (SLO-met) requests per minute over the
  span = last finish - first arrival of the whole run (classes share the run's
  span, so class figures add up to the overall one).
- gpu_utilization: busy rank-seconds / (gpus * span) (classes: their share).
- migrations, migration_s: count and total seconds of state moves.
Scheduler cost per round (p50 / p99 seconds) is added to "overall" from
`round_costs`, when the caller measured it, and split by the queue length the
round saw (`round_queues`: waiting requests at the round's start) into
buckets 0-9, 10-99, 100+.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from .request import REJECTED, Outcome, State


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between order statistics; NaN if empty."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def span_of(outcomes: Sequence[Outcome]) -> float:
    """Last finish - first arrival (0 when nothing finished)."""
    finishes = [o.finish for o in outcomes if o.finish is not None]
    if not outcomes or not finishes:
        return 0.0
    return max(0.0, max(finishes) - min(o.arrival for o in outcomes))


def block(outcomes: Sequence[Outcome], gpus: int, span: float) -> dict:
    """The metrics of one group of requests over a given span."""
    counts = {s: 0 for s in (State.COMPLETED.value, State.FAILED.value, State.CANCELLED.value, REJECTED)}
    for o in outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    done = [o for o in outcomes if o.state == State.COMPLETED.value]
    latencies = [o.finish - o.arrival for o in done]  # type: ignore[operator]
    met = sum(1 for o in done if o.met_slo)
    judged = len(outcomes) - counts[State.CANCELLED.value]
    sar = met / judged if judged else 0.0
    per_min = 60.0 / span if span > 0 else 0.0
    busy = sum(o.busy_rank_s for o in outcomes)
    return {
        "requests": len(outcomes),
        "completed": len(done),
        "failed": counts[State.FAILED.value],
        "cancelled": counts[State.CANCELLED.value],
        "rejected": counts[REJECTED],
        "slo_met": met,
        "slo_attainment": sar,
        "slo_violation_rate": 1.0 - sar if judged else 0.0,
        "mean_latency_s": sum(latencies) / len(latencies) if latencies else math.nan,
        "p50_latency_s": percentile(latencies, 50),
        "p95_latency_s": percentile(latencies, 95),
        "p99_latency_s": percentile(latencies, 99),
        "mean_normalized_latency": (sum(l / o.t_single for l, o in zip(latencies, done, strict=True)) / len(done)
                                    if done else math.nan),
        "throughput_rpm": len(done) * per_min,
        "goodput_rpm": met * per_min,
        "gpu_utilization": busy / (gpus * span) if span > 0 else 0.0,
        "busy_rank_s": busy,
        "migrations": sum(o.migrations for o in outcomes),
        "migration_s": sum(o.migration_s for o in outcomes),
        "span_s": span,
    }


QUEUE_BUCKETS = ((0, 9), (10, 99), (100, None))


def round_cost_by_queue(costs: Sequence[float], queues: Sequence[int]) -> dict:
    """p50 / p99 round seconds per queue-length bucket."""
    out = {}
    for low, high in QUEUE_BUCKETS:
        picked = [c for c, q in zip(costs, queues, strict=True) if q >= low and (high is None or q <= high)]
        if picked:
            out[f"{low}-{high}" if high is not None else f"{low}+"] = {
                "rounds": len(picked), "p50_s": percentile(picked, 50), "p99_s": percentile(picked, 99)}
    return out


def compute_metrics(outcomes: Iterable[Outcome], gpus: int, round_costs: Sequence[float] | None = None,
                    round_queues: Sequence[int] | None = None) -> dict:
    """``{"overall": {...}, "classes": {NAME: {...}}}`` over the given outcomes."""
    items = list(outcomes)
    span = span_of(items)
    classes: dict[str, list[Outcome]] = {}
    for o in items:
        classes.setdefault(o.request_class, []).append(o)
    overall = block(items, gpus, span)
    if round_costs is not None:
        overall["rounds"] = len(round_costs)
        overall["round_p50_s"] = percentile(round_costs, 50)
        overall["round_p99_s"] = percentile(round_costs, 99)
        if round_queues is not None:
            overall["round_cost_by_queue"] = round_cost_by_queue(round_costs, round_queues)
    return {"overall": overall,
            "classes": {name: block(group, gpus, span) for name, group in sorted(classes.items())}}
