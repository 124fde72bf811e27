"""The simulator: the engine driven over a workload on a virtual clock.

The loop is the engine loop of the live server with the clock and the compute
swapped out: take inputs (task ends, arrivals, ticks) -> one scheduling round
-> start the dispatched tasks -> record. Time only moves forward, to the next
event.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

from .cluster import Cluster
from .costmodel import CostModel
from .decisions import DecisionLog
from .engine import Engine
from .events import Finished
from .executor import SimExecutor, Span, feed
from .metrics import compute_metrics
from .policy import Policy
from .request import Outcome, Request
from .workload import Workload

STALL_LIMIT_S = 24 * 3600.0  # virtual seconds with nothing running before waiting requests fail


@dataclass
class Result:
    """What a simulation produced."""

    metrics: dict
    outcomes: list[Outcome]
    spans: list[Span] | None
    gpus: int
    rounds: int
    hook_errors: dict[str, int]
    round_costs: list[float] = field(repr=False, default_factory=list)
    end_time: float = 0.0
    wall_s: float = 0.0
    rule_errors: dict[str, int] = field(default_factory=dict)  # by rule location (Engine.rule_errors)
    rule_error_messages: dict[str, str] = field(default_factory=dict)  # first message per rule
    unfinished: list[str] = field(default_factory=list)  # ids of accepted requests that never ended


def simulate(policy: Policy, workload: Workload | Sequence[Request], cost_model: CostModel, gpus: int,
             *, ranks_per_node: int | None = None, decision_log: DecisionLog | None = None,
             record_spans: bool = False, fail_rate: float = 0.0, seed: int = 0,
             time_rounds: bool = True) -> Result:
    """Run `policy` over `workload` on `gpus` simulated ranks; returns metrics and outcomes."""
    requests = workload.requests if isinstance(workload, Workload) else sorted(
        workload, key=lambda r: (r.arrival, r.id))
    engine = Engine(policy, cost_model, Cluster(gpus, ranks_per_node), decision_log, keep_ended=None,
                    progress_events=False)  # the report reads only the requests' endings
    executor = SimExecutor(record=record_spans, fail_rate=fail_rate, seed=seed)
    outcomes: list[Outcome] = []  # from the engine's Finished events: every request, for the report
    costs: list[float] = []
    queues: list[int] = []
    wall0 = time.perf_counter()
    now, i, n = 0.0, 0, len(requests)
    idle_since: float | None = None
    next_end, schedule, start, task_done = executor.next_end, engine.schedule, executor.start, engine.task_done
    inf = math.inf
    arrival = requests[0].arrival if n else inf  # the next one
    while True:
        upcoming = arrival
        end = next_end()
        if end is not None and end < upcoming:
            upcoming = end
        if engine.active:
            tick = engine.next_tick(now)
            if tick is not None and tick < upcoming:
                upcoming = tick
        if upcoming == inf:
            break
        if upcoming > now:
            now = upcoming
        if end is not None and end <= now:  # take inputs
            if fail_rate:
                for event in executor.poll(now):
                    feed(engine, event, now)
            else:  # every task ends well: what `feed` does with a `TaskEnd`, without building one
                for task_id, at in executor.ended(now):
                    task_done(task_id, at)
        if arrival <= now:
            while i < n and requests[i].arrival <= now:
                engine.submit(requests[i], now)
                i += 1
            arrival = requests[i].arrival if i < n else inf
        if time_rounds:
            queues.append(len(engine.waiting))
            t0 = time.perf_counter()
        dispatches = schedule(now)  # one round
        if time_rounds:
            costs.append(time.perf_counter() - t0)
        for dispatch in dispatches:  # dispatch
            start(dispatch, now)
        idle_since = None if dispatches or executor.running else _check_stall(engine, i == n, now, idle_since)
        if engine.has_events:
            outcomes.extend([e.outcome for e in engine.take_events() if type(e) is Finished])  # record
    metrics = compute_metrics(outcomes, gpus, costs if time_rounds else None, queues if time_rounds else None)
    return Result(metrics, outcomes, executor.spans, gpus, engine.rounds, dict(engine.hook_errors),
                  costs, now, time.perf_counter() - wall0, dict(engine.rule_errors),
                  dict(engine.rule_error_messages), list(engine.active))


def _check_stall(engine: Engine, arrivals_done: bool, now: float, idle_since: float | None) -> float | None:
    """With nothing running: fail waiting requests when nothing arrives either and no round can help."""
    if not arrivals_done or engine.idle:
        return None
    since = now if idle_since is None else idle_since
    if engine.next_tick(now) is None or now - since >= STALL_LIMIT_S:
        engine.fail_waiting(now, "stalled: no task could be dispatched and nothing else can happen")
    return since
