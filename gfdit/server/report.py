"""What the server tells about itself: status, metrics summary, gauges, outcome counts."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from gfdit.engine.metrics import compute_metrics
from gfdit.engine.request import REJECTED
from gfdit.server.prometheus import ServerMetrics

if TYPE_CHECKING:
    from gfdit.server.loop import EngineLoop


def server_status(loop: "EngineLoop") -> dict:
    """The server's state, for `StatusReply.server` and `gfdit status`."""
    engine = loop.engine
    counts: dict[str, int] = {}
    for outcome in engine.outcomes:
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    policy = engine.policy
    return {
        **{k: v for k, v in loop.info.items() if k != "started_monotonic"},
        "policy": policy.name,
        "revision": loop.swap.revision,
        "gpus": engine.cluster.gpus,
        "free_ranks": sorted(engine.cluster.free),
        "lost_ranks": sorted(engine.cluster.lost),
        "queued": len(engine.waiting),
        "running": len(engine.tasks),
        "active": len(engine.active),
        "outcomes": counts,
        "time": loop.clock.now(),
        "time_scale": loop.clock.time_scale,
        "uptime_s": time.monotonic() - loop.info.get("started_monotonic", time.monotonic()),
        "reloads": dict(loop.swap.reloads),
        "hook_errors": dict(engine.hook_errors),
        "pool_restarts": loop.executor.restarts,
        "worker_pids": {} if loop.executor.recovering or loop.executor.gone else dict(loop.executor.pool.pids),
        "recovering": loop.executor.recovering,
        "pool_gone": loop.pool_gone or "",
        "stopping": loop.stop_requested.is_set(),
    }


def request_status(loop: "EngineLoop", request_id: str) -> dict | None:
    """One request: the engine's view while active, plus its latest event or result."""
    latest = loop.book.latest(request_id)
    tracked = loop.engine.active.get(request_id)
    if tracked is None and latest is None:
        return None
    out: dict = {"id": request_id, "latest": latest}
    if tracked is not None:
        out.update(state=tracked.state.value, stage=tracked.stage, steps_done=tracked.steps_done,
                   steps=tracked.steps, width=tracked.last_width, ranks=list(tracked.holders),
                   deadline=None if math.isinf(tracked.deadline) else tracked.deadline,
                   arrival=tracked.arrival, attempts=tracked.attempts)
    return out


def summary(loop: "EngineLoop") -> dict:
    """`{"overall": {...}, "classes": {...}}` over every request that ended (engine metrics)."""
    outcomes = [o for o in loop.engine.outcomes if o.state != REJECTED]
    metrics = compute_metrics(outcomes, loop.engine.cluster.gpus)
    metrics["overall"]["rejected"] = sum(1 for o in loop.engine.outcomes if o.state == REJECTED)
    metrics["control_plane"] = loop.costs.summary()
    return _finite(metrics)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def update_gauges(metrics: ServerMetrics, engine) -> None:
    with metrics.lock:
        metrics.queue_len.set(len(engine.waiting))
        metrics.running.set(len(engine.tasks))
        metrics.free_ranks.set(len(engine.cluster.free))


def count_outcome(metrics: ServerMetrics, request_class: str, state: str, latency: float,
                  slo_met: bool | None) -> None:
    with metrics.lock:
        metrics.requests.inc(state=state, request_class=request_class)
        if state == "completed":
            metrics.latency.observe(latency, request_class=request_class)
            metrics.slo.inc(request_class=request_class, outcome="met" if slo_met else "missed")
