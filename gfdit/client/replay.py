"""Replay a workload trace through a client: every request submitted at its arrival time.

    handles = replay(client, workload, time_scale=0.1)

Arrivals are engine seconds from the trace's first request; `time_scale` wall
seconds pass per engine second (the server's `--time-scale`). A request's
deadline is sent relative to its arrival (as the trace states it), and its
sizes, priority and preemptibility as the trace gives them, so the server
prices and judges it as the simulator does.
"""

from __future__ import annotations

import time
from typing import Callable

from gfdit.client.client import Client
from gfdit.client.handle import RequestHandle


def submit_record(client: Client, req) -> RequestHandle:
    """Submit one request of a `gfdit.engine.workload.Workload` (a trace `Request`)."""
    deadline = None if req.deadline is None else req.deadline - req.arrival
    return client.submit(
        req.prompt or req.id, height=req.height, width=req.width, frames=req.frames, steps=req.steps,
        seed=req.seed, request_class=req.request_class, deadline=deadline, priority=req.priority,
        request_id=req.id, text_seq_len=req.text_tokens, latent_seq_len=req.tokens, preemptible=req.preemptible,
        ranks=req.ranks)


def replay(client: Client, workload, time_scale: float = 1.0,
           on_submit: Callable[[RequestHandle, object], None] | None = None) -> list[RequestHandle]:
    """Submit every request of `workload` at its scaled arrival; `on_submit(handle, req)` after each.
    Returns the handles in arrival order (their progress and results follow on each handle)."""
    if not workload.requests:
        return []
    first = workload.requests[0].arrival
    t0 = time.monotonic()
    handles = []
    for req in workload.requests:
        time.sleep(max(0.0, t0 + (req.arrival - first) * time_scale - time.monotonic()))
        handle = submit_record(client, req)
        handles.append(handle)
        if on_submit is not None:
            on_submit(handle, req)
    return handles
