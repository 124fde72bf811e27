"""What the server tells about itself: status and gauges (the metrics summary: `desk.py`)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from gfdit.engine.request import REJECTED
from gfdit.server.prometheus import ServerMetrics

if TYPE_CHECKING:
    from gfdit.server.loop import EngineLoop


def server_status(loop: "EngineLoop") -> dict:
    """The server's state, for `StatusReply.server` and `gfdit status`."""
    engine = loop.engine
    with loop.metrics.lock:
        counts = loop.metrics.tally.counts()
        if loop.metrics.rejected:
            counts[REJECTED] = loop.metrics.rejected
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
        "rule_errors": dict(engine.rule_errors),  # rule location -> count (docs/engine.md, "Rule errors")
        "pool_restarts": loop.executor.restarts,
        "worker_pids": {} if loop.executor.recovering or loop.executor.gone else dict(loop.executor.pool.pids),
        "ranks_per_node": engine.cluster.ranks_per_node,  # rank r is on node r // ranks_per_node
        "nodes": {} if loop.executor.recovering or loop.executor.gone else loop.executor.pool.status().get("nodes", {}),
        "recovering": loop.executor.recovering,
        "pool_gone": loop.pool_gone or "",
        "stopping": loop.stop_requested.is_set(),
        **loop.ops.status(),  # recording, shadow (docs/server.md, The operator's loop)
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


def live_requests(loop: "EngineLoop", limit: int) -> list[dict]:
    """The oldest `limit` live requests, one short line each (for `gfdit status --requests`)."""
    listed = []
    for tracked in list(loop.engine.active.values())[:limit]:
        req = tracked.req
        listed.append({"id": req.id, "state": tracked.state.value, "class": req.request_class,
                       "steps_done": tracked.steps_done, "steps": req.steps, "width": tracked.last_width,
                       "size": f"{req.width}x{req.height}" + (f"x{req.frames}" if req.frames > 1 else ""),
                       "arrival": req.arrival, "ranks": list(tracked.holders)})
    return listed


def update_gauges(metrics: ServerMetrics, engine) -> None:
    """After a round: the gauges, and the engine's rule-error counts (one series per failing
    rule location: bounded by the rules of the policies that ran)."""
    with metrics.lock:
        metrics.queue_len.set(len(engine.waiting))
        metrics.running.set(len(engine.tasks))
        metrics.free_ranks.set(len(engine.cluster.free))
        for rule, count in engine.rule_errors.items():
            metrics.rule_errors.set_total(count, rule=rule)
