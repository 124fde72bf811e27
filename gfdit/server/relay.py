"""Engine events -> progress messages and metrics: the server's narration of the engine.

The engine owns every request's state and reports what changed as typed events
(`gfdit.engine.events`); the loop drains them after every input and round and
hands each to `Relay.take`, which tells the request's subscribers (through the
`ProgressBook`) and counts it. The relay keeps no request state of its own.

| engine event | progress message |
|---|---|
| `TaskStarted` | `migrated` (state moved to new ranks), then `encoding` / `running` / `decoding` (a `running` only when the chunk runs on new ranks: otherwise the last event says it all) |
| `Advanced` (denoise last) | `running` at the chunk's last step |
| `Held` | `held`, with the rule |
| `Retrying` | `retrying`, with why |
| `Finished` | the `Result` (with the images of a completed request) |

Task starts and good ends also make the rank timeline (`spans`, see `gfdit.server.spans`).
"""

from __future__ import annotations

import logging
import math
from typing import Callable

from gfdit.engine.events import Advanced, Finished, Held, Retrying, TaskStarted
from gfdit.engine.executor import StageEnd
from gfdit.engine.request import REJECTED
from gfdit.server.progress import ProgressBook
from gfdit.server.prometheus import ServerMetrics
from gfdit.server.spans import SpanRecorder

log = logging.getLogger("gfdit.server")
STAGE_STATE = {"encode": "encoding", "denoise": "running", "decode": "decoding"}


class Relay:
    """Maps engine events to the progress book and the metrics (see the module doc)."""

    def __init__(self, book: ProgressBook, metrics: ServerMetrics, drop: Callable[[str], None]):
        self.book, self.metrics, self.drop = book, metrics, drop
        self.spans = SpanRecorder()
        self.HANDLERS = {TaskStarted: self._started, Advanced: self._advanced, Held: self._held,
                         Retrying: self._retrying, Finished: self._finished}

    def take(self, event, now: float) -> None:
        self.HANDLERS[type(event)](event, now)

    def _started(self, e: TaskStarted, now: float) -> None:
        d, m = e.dispatch, self.metrics
        self.spans.started(d, now)
        width = len(d.group)
        moved = bool(d.state_ranks) and bool(set(d.group) - set(d.state_ranks))
        with m.lock:
            m.tasks.inc(stage="+".join(d.stages), width=str(width))
            m.widths.observe(width, stage=d.stage)
            if moved:
                m.migrations.inc()
            if e.first:
                m.queue_time.observe(e.queue_s, request_class=m.label(e.request_class))
        if moved:
            self.book.emit(d.request_id, "migrated", now, stage=d.stage, ranks=d.group,
                           from_ranks=d.state_ranks, width=width)
        state = STAGE_STATE[d.stage]
        if state != "running" or d.group != d.state_ranks:  # same ranks: the last event says it all
            self.book.emit(d.request_id, state, now, stage=d.stage, step=d.steps[0], steps=e.steps,
                           width=width, ranks=d.group)

    def _advanced(self, e: Advanced, now: float) -> None:
        d = e.dispatch
        self.spans.ended(d, now)
        if d.stages[-1] == "denoise":
            self.book.emit(d.request_id, "running", now, stage="denoise", step=d.steps[1],
                           steps=d.request.steps if d.request else d.steps[1], width=len(d.group), ranks=d.group)

    def stage_ended(self, e: StageEnd, steps: int, now: float) -> None:
        """One stage of a multi-stage task ended (an executor event, progress only)."""
        self.book.emit(e.request_id, "running", now, stage="denoise", step=e.step_end, steps=steps, width=e.width)
        if e.stage == "denoise":
            self.book.emit(e.request_id, "decoding", now, stage="decode", step=steps, steps=steps, width=e.width)

    def _held(self, e: Held, now: float) -> None:
        self.book.emit(e.request_id, "held", now, stage=e.stage, step=e.step, steps=e.steps, message=e.reason)

    def _retrying(self, e: Retrying, now: float) -> None:
        log.warning("request %s: %s failed, retrying: %s", e.request_id, e.stage, e.reason[:1000])
        self.spans.dropped(e.request_id)
        self.book.emit(e.request_id, "retrying", now, stage=e.stage, message=e.reason[:1000])

    def _finished(self, e: Finished, now: float) -> None:
        outcome = e.outcome
        self.spans.dropped(outcome.id)
        self.metrics.count_outcome(outcome)
        if outcome.state == REJECTED:
            return
        if outcome.state == "failed":
            log.warning("request %s failed: %s", outcome.id, (outcome.reason or "")[:1000])
        state, completed = outcome.state, outcome.state == "completed"
        outputs, payload = e.outputs if completed and e.outputs else ([], [])
        deadline = None if math.isinf(outcome.deadline) else outcome.deadline - outcome.arrival
        self.book.finish(outcome.id, state, payload, reason=outcome.reason or "", latency_s=outcome.latency or 0.0,
                         deadline_s=deadline, slo_met=outcome.met_slo if completed else None, outputs=outputs)
        self.drop(outcome.id)
