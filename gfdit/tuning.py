"""Tuning a policy's params: simulate a grid (or a random sample of it) over traces, in parallel.

`tune(spec, grid, workloads, cost_model_dir, gpus, ...)` expands the grid
(`{"chunk": ["1", "2", "5"], "penalty": ["2", "4", "8"]}`: every combination,
or `random` of them drawn with `seed`), simulates each setting on every trace
in `jobs` processes, and returns one `Setting` per combination with its
metrics over the traces: SLO attainment and goodput over all their requests,
mean / p95 / p99 latency averaged over the traces (each trace counts the
same). `pareto` marks the settings no other beats on both SLO attainment
(higher) and mean latency (lower); `best` picks by an objective. It sits
above the engine and the language, like `gfdit.policies`.
"""

from __future__ import annotations

import itertools
import random
import re
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from gfdit.engine.costmodel import CostModel
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload
from gfdit.policies import fit_policy, resolve_policy

OBJECTIVES = {  # name -> (metric, higher is better)
    "slo": ("slo_attainment", True), "goodput": ("goodput_rpm", True), "mean": ("mean_latency_s", False),
    "p95": ("p95_latency_s", False), "p99": ("p99_latency_s", False),
}


@dataclass
class Setting:
    """One combination of params and what it did over the traces."""

    params: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    pareto: bool = False


def expand(grid: Mapping[str, Sequence[str]], sample: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """Every combination of the grid's values (in grid order), or `sample` of them drawn at random."""
    names = list(grid)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]
    if sample is not None and sample < len(combos):
        combos = random.Random(seed).sample(combos, sample)
    return combos


def tune(spec: str, grid: Mapping[str, Sequence[str]], workloads: Sequence[str | Path], cost_model_dir: str | Path,
         gpus: int, fixed: Mapping[str, str] | None = None, sample: int | None = None, seed: int = 0,
         jobs: int = 1) -> list[Setting]:
    """Simulate every setting of `grid` (with `fixed` params) on every workload; `jobs` processes."""
    settings = [Setting({**dict(fixed or {}), **combo}) for combo in expand(grid, sample, seed)]
    resolve_policy(spec, settings[0].params)  # a bad name, param or value fails here, before any process
    tasks = [(spec, s.params, [str(w) for w in workloads], str(cost_model_dir), gpus) for s in settings]
    if jobs <= 1:
        results = [evaluate(*task) for task in tasks]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_evaluate_task, tasks, chunksize=max(1, len(tasks) // (4 * jobs))))
    for setting, metrics in zip(settings, results, strict=True):
        setting.metrics = metrics
    mark_pareto(settings)
    return settings


_CACHE: dict[tuple, object] = {}  # per process: traces and cost models, read once


def _cached(key: tuple, load):
    if key not in _CACHE:
        _CACHE[key] = load()
    return _CACHE[key]


def _evaluate_task(task: tuple) -> dict[str, float]:
    return evaluate(*task)


def evaluate(spec: str, params: Mapping[str, str], workloads: Sequence[str], cost_model_dir: str,
             gpus: int) -> dict[str, float]:
    """One setting on every workload: metrics over all of them."""
    cost = _cached(("cost", cost_model_dir), lambda: CostModel.load(cost_model_dir))
    policy, _ = fit_policy(resolve_policy(spec, params), spec, params, cost, gpus)
    per_trace, met, judged, finished, goodput = [], 0, 0, 0, 0.0
    for path in workloads:
        workload = _cached(("workload", path), lambda p=path: Workload.load(p))
        overall = simulate(policy, workload, cost, gpus, time_rounds=False).metrics["overall"]
        per_trace.append(overall)
        met += overall["slo_met"]  # attainment is over every request not cancelled, as simulate reports it
        judged += overall["requests"] - overall["cancelled"]
        finished += overall["completed"]
        goodput += overall["goodput_rpm"]
    return {"slo_attainment": met / judged if judged else 0.0, "goodput_rpm": goodput,
            "completed": finished,
            **{k: statistics.mean(m[k] for m in per_trace)
               for k in ("mean_latency_s", "p95_latency_s", "p99_latency_s")}}


def mark_pareto(settings: list[Setting]) -> None:
    """`pareto` for each setting that no other beats on SLO attainment and mean latency at once."""
    for s in settings:
        slo, mean = s.metrics["slo_attainment"], s.metrics["mean_latency_s"]
        s.pareto = not any(
            o.metrics["slo_attainment"] >= slo and o.metrics["mean_latency_s"] <= mean
            and (o.metrics["slo_attainment"] > slo or o.metrics["mean_latency_s"] < mean) for o in settings)


def best(settings: Sequence[Setting], objective: str = "slo") -> Setting:
    """The setting that does best on `objective` (ties: higher SLO attainment, then lower mean latency)."""
    metric, higher = OBJECTIVES[objective]
    sign = 1 if higher else -1
    return max(settings, key=lambda s: (sign * s.metrics[metric], s.metrics["slo_attainment"],
                                        -s.metrics["mean_latency_s"]))


def with_params(text: str, params: Mapping[str, str]) -> str:
    """The policy text with each `param NAME = VALUE` line set to the given value (comments kept)."""
    for name, value in params.items():
        pattern = re.compile(rf"^(\s*param\s+{re.escape(name)}\s*=\s*)([^#\n]*?)(\s*(#.*)?)$", re.M)
        text, count = pattern.subn(lambda m, v=value: f"{m.group(1)}{v}{m.group(3)}", text, count=1)
        if count == 0:
            raise ValueError(f"the policy declares no param {name!r}")
    return text
