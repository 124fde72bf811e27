"""A request: what a client asked for, and the states it passes through.

`Request` is the immutable description (from a workload record or a client
submit). Times are seconds on the engine clock. The engine tracks its progress
in `gfdit.engine.tracked.Tracked`; when it ends, an `Outcome` records how.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from gfdit.shapes import Shape, latent_tokens


class State(str, enum.Enum):
    """Lifecycle of an accepted request. The last three are terminal."""

    QUEUED = "queued"  # waiting for its next task
    RUNNING = "running"  # one task in flight
    HELD = "held"  # a `hold` rule made it sit out the last round
    COMPLETED = "completed"
    FAILED = "failed"  # with a reason
    CANCELLED = "cancelled"


TERMINAL = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})
REJECTED = "rejected"  # outcome of a request `admit` refused; it never had a State


class RequestError(ValueError):
    """A request (or workload record) is malformed; the message says which field."""


@dataclass(frozen=True, slots=True)
class Request:
    """One generation request.

    `deadline`, `priority`, `preemptible` and `t_single` are optional: None
    means "derive it" (deadline and priority from the policy's class, t_single
    from the cost model). `tokens` is the latent sequence length; when a record
    lacks it, `latent_tokens` derives it from the shape.
    """

    id: str
    arrival: float
    height: int
    width: int
    steps: int
    frames: int = 1
    text_tokens: int = 512
    tokens: int = 0
    request_class: str = "default"
    priority: int | None = None
    deadline: float | None = None
    preemptible: bool | None = None
    t_single: float | None = None
    cfg: bool = False
    seed: int = 0
    prompt: str = ""
    ranks: frozenset[int] | None = None  # pinned: its tasks run only on these ranks (gfdit/engine/pinning.py)
    payload: object = field(default=None, compare=False, repr=False)  # how to run it (the server: its
    # generation parameters); the engine never reads it

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise RequestError(f"request id must be a non-empty string, got {self.id!r}")
        for name in ("height", "width", "steps", "frames", "text_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RequestError(f"request {self.id}: {name} must be a positive integer, got {value!r}")
        if not math.isfinite(self.arrival) or self.arrival < 0:
            raise RequestError(f"request {self.id}: arrival must be finite and >= 0, got {self.arrival!r}")
        if self.tokens == 0:
            object.__setattr__(self, "tokens", latent_tokens(self.height, self.width, self.frames))
        if not isinstance(self.tokens, int) or self.tokens < 1:
            raise RequestError(f"request {self.id}: latent tokens must be a positive integer, got {self.tokens!r}")
        if self.deadline is not None and math.isnan(self.deadline):
            raise RequestError(f"request {self.id}: deadline is NaN")
        if self.ranks is not None:
            object.__setattr__(self, "ranks", _ranks(self.id, self.ranks))

    @property
    def shape(self) -> Shape:
        return Shape(self.tokens, self.text_tokens, self.steps,
                     self.height * self.width * self.frames, self.cfg)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "Request":
        """Build from one workload record (milliseconds, the GF-DiT trace format)."""
        try:
            rid = rec["request_id"]
            return cls(
                id=str(rid),
                arrival=float(rec["arrival_ms"]) / 1000.0,
                height=int(rec["height"]),
                width=int(rec["width"]),
                frames=int(rec.get("num_frames", 1)),
                steps=int(rec["num_steps"]),
                text_tokens=int(rec.get("text_seq_len", 512)),
                tokens=int(rec.get("latent_seq_len") or 0),
                request_class=str(rec.get("request_class") or "default"),
                priority=_opt(rec, "priority", int),
                deadline=_opt_ms(rec, "deadline_ms"),
                preemptible=_opt(rec, "preemptible", bool),
                t_single=_opt_ms(rec, "profiled_optimal_latency_ms"),
                cfg=bool(rec.get("do_true_cfg", False)),
                seed=int(rec.get("seed", 0)),
                prompt=str(rec.get("prompt", "")),
                ranks=rec.get("ranks"),
            )
        except KeyError as exc:
            raise RequestError(f"workload record {rec.get('request_id', '?')}: missing field {exc}") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, RequestError):
                raise
            raise RequestError(f"workload record {rec.get('request_id', '?')}: {exc}") from exc

    def to_record(self) -> dict[str, Any]:
        """The workload record of this request (inverse of `from_record`)."""
        rec: dict[str, Any] = {
            "request_id": self.id, "arrival_ms": round(self.arrival * 1000.0, 3),
            "height": self.height, "width": self.width, "num_frames": self.frames,
            "num_steps": self.steps, "text_seq_len": self.text_tokens,
            "latent_seq_len": self.tokens, "request_class": self.request_class,
            "do_true_cfg": self.cfg,
        }
        if self.priority is not None:
            rec["priority"] = self.priority
        if self.deadline is not None and math.isfinite(self.deadline):
            rec["deadline_ms"] = round(self.deadline * 1000.0, 3)
        if self.preemptible is not None:
            rec["preemptible"] = self.preemptible
        if self.ranks is not None:
            rec["ranks"] = sorted(self.ranks)
        if self.t_single is not None:
            rec["profiled_optimal_latency_ms"] = round(self.t_single * 1000.0, 3)
        return rec




@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended: the record metrics are computed from."""

    id: str
    request_class: str
    state: str  # a terminal State's value, or REJECTED
    arrival: float
    deadline: float  # math.inf when none
    finish: float | None  # time it became terminal; None if rejected
    t_single: float
    reason: str | None = None
    migrations: int = 0
    migration_s: float = 0.0
    busy_rank_s: float = 0.0  # rank-seconds its tasks occupied
    attempts: int = 1

    @property
    def latency(self) -> float | None:
        return None if self.finish is None else self.finish - self.arrival

    @property
    def met_slo(self) -> bool:
        return self.state == State.COMPLETED.value and self.finish is not None and self.finish <= self.deadline


def _opt(rec: Mapping[str, Any], key: str, kind: type):
    value = rec.get(key)
    return None if value is None else kind(value)


def _opt_ms(rec: Mapping[str, Any], key: str) -> float | None:
    value = rec.get(key)
    return None if value is None else float(value) / 1000.0


def _ranks(request_id: str, ranks: object) -> frozenset[int]:
    """A request's pinned ranks: a non-empty collection of rank numbers (>= 0)."""
    if isinstance(ranks, (str, bytes, Mapping)) or not hasattr(ranks, "__iter__"):
        raise RequestError(f"request {request_id}: ranks must be a list of rank numbers, got {ranks!r}")
    members = list(ranks)  # type: ignore[call-overload]
    if not members or any(not isinstance(r, int) or isinstance(r, bool) or r < 0 for r in members):
        raise RequestError(f"request {request_id}: ranks must be a non-empty list of rank numbers >= 0, "
                           f"got {members!r}")
    return frozenset(members)
