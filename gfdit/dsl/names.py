"""The built-in vocabulary of `.gfp`: value types, request fields, cluster names, functions.

These tables are the single source for the checker (what exists and its type),
the compiler and the interpreter (how to read it) and the reference docs.
"""

from __future__ import annotations

from dataclasses import dataclass

from gfdit.engine.policy import STAGES

NUM, DUR, BOOL, SET, CLASS, STAGE, STR, REQS = (
    "number", "duration", "bool", "set", "class", "stage", "string", "requests")
NUMERIC = (NUM, DUR)

STAGE_NAMES = STAGES  # the engine's names (gfdit.engine.policy), under the language's name
RESERVED_PARAMS = ("chunk", "widths", "tick", "grow_budget", "migration_budget", "plan")
ELEMENT = "r"  # names the element inside an aggregate: count(waiting where r.width > 1)

# request field -> (type, RequestView attribute, meaning)
REQUEST_FIELDS: dict[str, tuple[str, str, str]] = {
    "id": (STR, "id", "request id"),
    "class": (CLASS, "request_class", "request class name"),
    "priority": (NUM, "priority", "priority (explicit, else its class's)"),
    "arrival": (DUR, "arrival", "arrival time"),
    "deadline": (DUR, "deadline", "deadline (infinite when none)"),
    "age": (DUR, "age", "now - arrival"),
    "waited": (DUR, "waited", "time since its last task ended (or since arrival)"),
    "queued": (DUR, "queued", "total time with no task in flight since arrival (not reset by a task)"),
    "paused": (DUR, "paused", "total time held by `hold` rules so far"),
    "tokens": (NUM, "tokens", "latent sequence length"),
    "steps": (NUM, "steps", "denoise steps in total"),
    "steps_done": (NUM, "steps_done", "denoise steps done"),
    "steps_left": (NUM, "steps_left", "denoise steps left"),
    "stage": (STAGE, "stage", "stage of its next task"),
    "width": (NUM, "width", "width of its running task, else of its last one, 0 if none ran yet"),
    "t_single": (DUR, "t_single", "isolated single-GPU time of the whole trajectory"),
    "preemptible": (BOOL, "preemptible", "whether it may be preempted"),
}

# cluster name -> (type, RoundView attribute, meaning)
CLUSTER_NAMES: dict[str, tuple[str, str, str]] = {
    "now": (DUR, "now", "the engine clock"),
    "gpus": (NUM, "gpus", "ranks in the cluster"),
    "free": (NUM, "free", "ranks free at the start of the round"),
    "busy": (NUM, "busy", "ranks running a task"),
    "waiting": (REQS, "waiting", "requests with no task in flight"),
    "running": (REQS, "running", "requests with a task in flight"),
}

# cost-model function of the current candidate at width k -> (RoundView method, meaning)
COST_FUNCTIONS: dict[str, tuple[str, str]] = {
    "step": ("step", "time of one denoise step at width k"),
    "est": ("est", "all remaining work at width k"),
    "finish": ("finish", "now + est(k)"),
    "slack": ("slack", "req.deadline - finish(k)"),
    "gpu_time": ("gpu_time", "remaining denoise time at width k, times k"),
}

# aggregate over a request set -> meaning (the value on an empty set)
AGGREGATES: dict[str, str] = {
    "count": "count(SET [where C]): how many elements match (0)",
    "any": "any(SET where C): whether one matches (false)",
    "sum": "sum(SET [where C], E): sum of E over matches (0)",
    "min": "min(SET [where C], E): least E over matches (infinity); min(a, b) of two values",
    "max": "max(SET [where C], E): greatest E over matches (-infinity); max(a, b) of two values",
}
FUNCTION_NAMES = tuple(COST_FUNCTIONS) + tuple(AGGREGATES)


@dataclass(frozen=True, slots=True)
class Ref:
    """What a name, field or call denotes, set by the resolver.

    kind: "param" (value), "let" (decl), "class", "stage", "cluster", "var"
    (a choice variable, slot), "req" (a candidate field), "elem" (an aggregate
    element's field, slot), "cost", "agg", "pair" (min/max of two values).
    """

    kind: str
    key: str
    value: object = None
    slot: int = -1


def same_numeric(a: str, b: str) -> bool:
    return a == b and a in NUMERIC
