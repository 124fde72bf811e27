"""The policy interface: the hooks a scheduling round asks, and what they see.

A policy is configuration plus pure hooks. Every hook receives a read-only
`RoundView` (the cluster and queue at this round) and one candidate
`RequestView`, and returns a decision; it keeps no state of its own, which is
what makes a hot reload a plain swap. The engine, not the policy, enforces the
invariants (no rank given twice, widths in `widths`, one task per request at a
time) and contains a hook that raises (that request is held for the round).

Both the built-in Python policies and policies compiled from `.gfp` files
implement this interface; the engine knows nothing else about them.

The round, in order (see docs/policy-language.md):
  admit (arrivals) -> candidates -> hold -> order -> width -> allocate
  (on_short) -> grow -> place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Protocol, Sequence, get_args

from gfdit.protocol import STAGES as STAGES  # re-exported: the policy's stage names are the wire's
from gfdit.protocol import Stage

OnShort = Literal["skip", "shrink", "reserve"]
ON_SHORT_MODES: tuple[OnShort, ...] = get_args(OnShort)
Placement = Literal["sticky", "compact", "lowest"]
PLACEMENTS: tuple[Placement, ...] = get_args(Placement)


@dataclass(frozen=True, slots=True)
class Why:
    """Why a hook decided: the rule that decided and the values it saw.

    `rule` is a source location such as ``policies/edf_best_fit.gfp:14`` for a
    compiled policy, or ``python:edf_best_fit.width`` for a Python one. `values`
    holds the few numbers the rule looked at (wanted width, finish estimate,
    slack, ...); it goes into the decision log as is, so keep it JSON-friendly.
    """

    rule: str
    values: Mapping[str, object] = field(default_factory=dict)


class RuleError(Exception):
    """A policy rule failed at run time (the hook contract for errors).

    A hook that cannot answer raises this, naming the rule that failed:
    `rule` is its source location (``policies/x.gfp:7:10`` for a compiled
    policy: file, line, column of the rule or expression that raised;
    ``python:NAME.HOOK`` for a Python one) and `cause` the exception it raised.
    The engine counts it per `rule` (`Engine.rule_errors`), logs it with that
    location and applies the hook's fallback (docs/engine.md, "Rule errors").
    """

    def __init__(self, rule: str, cause: BaseException):
        super().__init__(rule, cause)
        self.rule = rule
        self.cause = cause

    @property
    def message(self) -> str:
        """What went wrong, without the location: ``CostModelError: ... no layout of width 3 ...``."""
        return f"{type(self.cause).__name__}: {self.cause}"

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass(frozen=True, slots=True)
class ClassSpec:
    """A request class: how its deadline is derived, its priority, whether it can be preempted.

    Exactly one of `slo_factor` (deadline = arrival + factor * t_single) and
    `slo_seconds` (deadline = arrival + seconds) is set, or neither (no deadline
    of its own: infinite). A request's explicit deadline and priority win over
    its class's.
    """

    name: str
    slo_factor: float | None = None
    slo_seconds: float | None = None
    priority: int = 0
    preemptible: bool = False
    share: float | None = None  # at most this fraction of the ranks at once (gfdit/engine/quotas.py)
    chunk: int | None = None  # denoise steps per task for this class (None: the policy's chunk)
    pool: str | None = None  # its requests run only on this pool's ranks (pinned), with any stage pool


def class_spec(classes: Mapping[str, "ClassSpec"], name: str) -> "ClassSpec | None":
    """The spec of class `name`: its own, else the policy's `default` class, else None."""
    return classes.get(name) or classes.get("default")


class RequestView(Protocol):
    """What a hook may read of one request. Times are seconds on the engine clock."""

    @property
    def id(self) -> str: ...
    @property
    def request_class(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def arrival(self) -> float: ...
    @property
    def deadline(self) -> float: ...  # math.inf when none
    @property
    def age(self) -> float: ...  # now - arrival
    @property
    def waited(self) -> float: ...  # now - end of its last task (or arrival)
    @property
    def paused(self) -> float: ...  # total time held by `hold` rules so far
    @property
    def queued(self) -> float: ...  # total time with no task in flight since arrival
    @property
    def tokens(self) -> int: ...  # latent sequence length
    @property
    def steps(self) -> int: ...
    @property
    def steps_done(self) -> int: ...
    @property
    def steps_left(self) -> int: ...
    @property
    def stage(self) -> Stage: ...  # stage of its next task
    @property
    def width(self) -> int: ...  # its running task's width, else its last one's, 0 if none ran
    @property
    def t_single(self) -> float: ...  # isolated single-GPU time, whole trajectory
    @property
    def preemptible(self) -> bool: ...
    @property
    def ranks(self) -> tuple[int, ...]: ...  # ranks holding its state, () if none


class RoundView(Protocol):
    """The cluster and queue as one round sees them, plus cost-model estimates."""

    @property
    def now(self) -> float: ...
    @property
    def gpus(self) -> int: ...
    @property
    def free(self) -> int: ...  # ranks free at the start of this round
    @property
    def busy(self) -> int: ...
    @property
    def waiting(self) -> Sequence[RequestView]: ...  # accepted, not terminal, no task in flight
    @property
    def running(self) -> Sequence[RequestView]: ...  # a task in flight

    explain: bool  # optional (default True): False when nothing reads Why.values this round

    def step(self, req: RequestView, k: int) -> float:
        """Time of one denoise step of `req` at width k."""
    def est(self, req: RequestView, k: int) -> float:
        """All remaining work of `req` (current stage to the end) at width k."""
    def finish(self, req: RequestView, k: int) -> float:
        """now + est(req, k)."""
    def slack(self, req: RequestView, k: int) -> float:
        """req.deadline - finish(req, k)."""
    def gpu_time(self, req: RequestView, k: int) -> float:
        """Remaining denoise time at width k, times k."""


class Policy(Protocol):
    """A scheduling policy: configuration plus pure hooks over a `RoundView`.

    Configuration
      name, revision   -- names it in logs; revision is a hash of its source.
      chunk            -- denoise steps per task; None means the whole trajectory
                          (`chunk = all`: encode, all steps and decode in one task).
      widths           -- allowed widths, ascending.
      on_short         -- what `allocate` does when the wanted width does not fit.
      placement        -- rank preferences, in order.
      pools            -- named rank sets; stage_pools maps a stage to a pool name
                          (a stage not in stage_pools may use every rank).
      pools_sized_for  -- optional: the GPU count `pools` were computed for, when they depend on
                          the cluster (`pool main = rest`); the engine refuses another count
                          (fit the policy first: gfdit.policies.fit_to). Absent or None: fixed.
      classes          -- request classes by name; "default" covers unnamed ones.
      tick             -- seconds between extra rounds, None for event-driven only.

    Optional promises (absent means False), which let the engine do less work
    for the same decisions:
      static_order     -- order_key depends only on the request's fixed fields
                          (id, class, priority, arrival, deadline, shape,
                          t_single, preemptible): computed once per request.
      never_holds      -- hold always answers None: not asked.
    Optional per-task chunk (absent or None: the class's `chunk`, else `chunk`):
      chunk_rule       -- chunk_rule(view, req) -> (int, Why) | None: denoise steps of req's next
                          denoise task as it is cut, and why (decision-log event `chunk`); None
                          leaves it to the class/policy chunk; not asked under `chunk = None`
                          (gfdit/engine/chunking.py).
    Optional budgets per round (absent or None: no limit):
      grow_budget      -- at most this many requests are widened by `grow` in one round.
      migration_budget -- at most this many (>= 1) grants of one round move a request's state to
                          ranks that do not hold it (the most urgent keep theirs; the others
                          wait for the next round).
    """

    name: str
    revision: str
    chunk: int | None
    widths: tuple[int, ...]
    on_short: OnShort
    placement: tuple[Placement, ...]
    pools: Mapping[str, frozenset[int]]
    stage_pools: Mapping[Stage, str]
    classes: Mapping[str, ClassSpec]
    tick: float | None

    def admit(self, view: RoundView, req: RequestView) -> tuple[str | None, Why | None]:
        """(None, why) admits; (reason, why) rejects with that reason."""

    def hold(self, view: RoundView, req: RequestView) -> Why | None:
        """A `Why` holds the candidate for this round; None lets it compete."""

    def order_key(self, view: RoundView, req: RequestView) -> tuple:
        """Sort key, ascending; the engine breaks ties by arrival, then id. Keys should be totally
        ordered: keys that cannot be compared are a hook error, and with keys that are sets or hold
        a NaN inside one of their elements the order is unspecified."""

    def width(self, view: RoundView, req: RequestView) -> tuple[int, Why]:
        """Wanted width for the candidate's next task (a member of `widths`)."""

    def grow(self, view: RoundView, req: RequestView) -> tuple[int, Why] | None:
        """None if no grow rule matches; else (upper bound on width, why)."""
