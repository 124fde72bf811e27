"""Built-in Python policies: the fixed pipeline and EDF best-fit.

They implement the `Policy` protocol with pure hooks, exactly as a compiled
`.gfp` policy does, and exist so the simulator runs before (and without) the
policy language. The shipped `.gfp` files under `gfdit/data/policies/` say the same thing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

from .policy import ClassSpec, OnShort, Placement, RequestView, RoundView, Stage, Why

REFERENCE_CLASSES: Mapping[str, ClassSpec] = {
    "S": ClassSpec("S", slo_factor=1.5, priority=100),
    "M": ClassSpec("M", slo_factor=2.0, priority=50),
    "L": ClassSpec("L", slo_factor=6.0, priority=0, preemptible=True),
    "interactive": ClassSpec("interactive", slo_factor=1.5, priority=100),
    "standard": ClassSpec("standard", slo_factor=2.0, priority=50),
    "batch": ClassSpec("batch", slo_factor=6.0, priority=0, preemptible=True),
    "default": ClassSpec("default", slo_factor=2.0, priority=50),
}


def _revision(name: str, params: dict) -> str:
    text = f"python:{name}:" + ",".join(f"{k}={params[k]!r}" for k in sorted(params))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Base:
    """Configuration shared by the built-ins; hooks default to: admit, no hold, FIFO."""

    name: str = "builtin"
    revision: str = ""
    chunk: int | None = None
    widths: tuple[int, ...] = (1,)
    on_short: OnShort = "skip"
    placement: tuple[Placement, ...] = ("lowest",)
    pools: Mapping[str, frozenset[int]] = field(default_factory=dict)
    stage_pools: Mapping[Stage, str] = field(default_factory=dict)
    classes: Mapping[str, ClassSpec] = field(default_factory=lambda: dict(REFERENCE_CLASSES))
    tick: float | None = None

    def admit(self, view: RoundView, req: RequestView) -> tuple[str | None, Why | None]:
        return None, None

    def hold(self, view: RoundView, req: RequestView) -> Why | None:
        return None

    def order_key(self, view: RoundView, req: RequestView) -> tuple:
        return ()  # the engine's tie-break: arrival, then id

    def grow(self, view: RoundView, req: RequestView) -> tuple[int, Why] | None:
        return None


@dataclass(frozen=True)
class StaticSP(_Base):
    """The fixed pipeline: each request's whole trajectory in one task on a group of
    one fixed width, first come first served, strict order (`reserve`)."""

    width_value: int = 4

    def width(self, view: RoundView, req: RequestView) -> tuple[int, Why]:
        return self.width_value, Why("python:static_sp.width", {"width": self.width_value})


@dataclass(frozen=True)
class EDFBestFit(_Base):
    """Earliest deadline first; the smallest width that meets the deadline, else the
    fastest; encode and decode at width 1; surplus ranks grow requests whose slack
    at their width is negative; sticky, compact placement; a queue cap on admission."""

    queue_cap: int = 512

    def admit(self, view: RoundView, req: RequestView) -> tuple[str | None, Why | None]:
        waiting = len(view.waiting)
        if waiting < self.queue_cap:
            return None, None
        return "queue full", Why("python:edf_best_fit.admit", {"waiting": waiting, "queue_cap": self.queue_cap})

    def order_key(self, view: RoundView, req: RequestView) -> tuple:
        return (req.deadline, -req.priority, req.arrival)

    def width(self, view: RoundView, req: RequestView) -> tuple[int, Why]:
        if req.stage != "denoise":
            return 1, Why("python:edf_best_fit.width[encode,decode]", {})
        deadline = req.deadline
        best, best_finish = 0, 0.0
        for k in self.widths:  # ascending: the first that meets the deadline is the smallest
            if k > view.gpus and best:
                break
            finish = view.finish(req, k)
            if finish <= deadline:
                return k, Why("python:edf_best_fit.width[meets]", {"finish": finish, "deadline": deadline})
            if not best or finish < best_finish:
                best, best_finish = k, finish
        return best, Why("python:edf_best_fit.width[fastest]", {"finish": best_finish, "deadline": deadline})

    def grow(self, view: RoundView, req: RequestView) -> tuple[int, Why] | None:
        if req.stage != "denoise":
            return None
        slack = view.slack(req, max(req.width, 1))
        if slack < 0:
            return self.widths[-1], Why("python:edf_best_fit.grow", {"slack": slack})
        return None


def static_sp(sp: int = 4) -> StaticSP:
    """`sp` is the one width every request gets (the parameter's name in gfdit/data/policies/static_sp.gfp)."""
    params = {"sp": sp}
    return StaticSP(name="static_sp", revision=_revision("static_sp", params), chunk=None,
                    widths=(int(sp),), on_short="reserve", placement=("compact", "lowest"),
                    width_value=int(sp))


def edf_best_fit(chunk: int | None = 5, widths: tuple[int, ...] = (1, 2, 4), queue_cap: int = 512) -> EDFBestFit:
    widths = tuple(sorted(int(w) for w in widths))
    params = {"chunk": chunk, "widths": widths, "queue_cap": queue_cap}
    return EDFBestFit(name="edf_best_fit", revision=_revision("edf_best_fit", params), chunk=chunk,
                      widths=widths, on_short="skip", placement=("sticky", "compact"),
                      queue_cap=int(queue_cap))


BUILTINS = {
    "static_sp": static_sp,
    "edf_best_fit": edf_best_fit,
}
