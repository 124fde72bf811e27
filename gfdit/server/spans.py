"""Which task ran on which ranks, when: the live server's rank timeline.

The relay opens a span when the engine starts a task and closes it when the
task ends well (`Advanced`); a task that fails or is cancelled leaves no span.
Times are engine seconds, as in the simulator's spans, so `gfdit.engine.timeline`
draws both alike. The last `keep` spans are kept: a long-lived server's memory
stays bounded.
"""

from __future__ import annotations

import threading
from collections import deque

from gfdit.engine.executor import Span
from gfdit.engine.task import Dispatch

KEEP_SPANS = 20_000


class SpanRecorder:
    """Open spans by request (a request runs one task at a time) and the closed ones, oldest first."""

    def __init__(self, keep: int = KEEP_SPANS):
        self._open: dict[str, tuple[Dispatch, float]] = {}
        self._closed: deque[Span] = deque(maxlen=keep)
        self._lock = threading.Lock()  # the engine loop appends; `spans()` may be read from any thread

    def started(self, d: Dispatch, now: float) -> None:
        self._open[d.request_id] = (d, now)

    def ended(self, d: Dispatch, now: float) -> None:
        opened = self._open.pop(d.request_id, None)
        if opened is None or opened[0].task_id != d.task_id:
            return
        span = Span(d.request_id, d.task_id, d.stage, d.steps, d.group, opened[1], now, d.migration_s)
        with self._lock:
            self._closed.append(span)

    def dropped(self, request_id: str) -> None:
        """The request's task will not end well (it failed, or the request ended): no span."""
        self._open.pop(request_id, None)

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._closed)
