"""The read-only view of one scheduling round that policy hooks receive (a RoundView).

Estimates are the cost model's, for the candidate at width k, in seconds:
`step(k)` one denoise step, `est(k)` all remaining work (current stage to the
end, as if it all ran at width k), `finish(k) = now + est(k)`, `slack(k) =
deadline - finish(k)`, `gpu_time(k)` the remaining denoise time times k. A
width the cost model lacks raises `CostModelError` (a hook that lets it
escape is contained by the engine like any other hook error).

`explain` is False when nothing will read the values a hook observes
(`Why.values`: the engine has no decision log); a hook may then leave them
out, which is most of a round's cost in the simulator. Decisions never depend
on it.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .tracked import Tracked


class Round:
    """One round's snapshot: clock, cluster counts, the queue (built on first use)."""

    __slots__ = ("now", "gpus", "free", "busy", "explain", "_active", "_waiting", "_running")

    def __init__(self, now: float, gpus: int, free: int, busy: int,
                 active: Callable[[], Sequence[Tracked]], explain: bool = True):
        self.now = now
        self.explain = explain  # False: nobody reads Why.values this round (no decision log)
        self.gpus = gpus
        self.free = free
        self.busy = busy
        self._active = active
        self._waiting: list[Tracked] | None = None
        self._running: list[Tracked] | None = None

    @property
    def waiting(self) -> Sequence[Tracked]:
        """Accepted, not terminal, no task in flight."""
        if self._waiting is None:
            self._split()
        return self._waiting  # type: ignore[return-value]

    @property
    def running(self) -> Sequence[Tracked]:
        """A task in flight."""
        if self._running is None:
            self._split()
        return self._running  # type: ignore[return-value]

    def _split(self) -> None:
        waiting, running = [], []
        for t in self._active():
            (running if t.task is not None else waiting).append(t)
        self._waiting, self._running = waiting, running

    def step(self, req: Tracked, k: int) -> float:
        return req.parts(k)[1]

    def est(self, req: Tracked, k: int) -> float:
        return req.remaining_s(k)

    def finish(self, req: Tracked, k: int) -> float:
        return self.now + req.remaining_s(k)

    def slack(self, req: Tracked, k: int) -> float:
        return req.deadline - self.now - req.remaining_s(k)

    def gpu_time(self, req: Tracked, k: int) -> float:
        return req.parts(k)[1] * (req.req.steps - req.steps_done) * k
