"""A cost model measured on the running workers, for models without a profile.

The engine needs stage times to price requests (t_single, deadlines from class
SLOs, widths that meet them). The shipped cost models describe GPUs running
Qwen-Image; a tiny model on CPU workers is nothing like them. So, when the real
executor starts without `--cost-model`, the server times one request of the
calibration shape through its own pool: encode and decode at width 1, denoise
steps at every width it may use (each measured twice, the faster kept: the
first run warms caches), and migration onto new ranks. Every stage is then a
constant in that model (the `c` coefficient), exact for the calibration shape
and an approximation for others; `gfdit profile` measures proper curves. On CPU,
workers share the machine's cores: with N workers on C cores, each computes at
C/N of its solo speed when all are busy, so the measured (solo) times are
multiplied by max(1, N/C) — deadlines that hold under load, loose when idle.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

from gfdit.costmodel_file import layout_doc, stage_entry, write_cost_model
from gfdit.engine.costmodel import CostModel, Curve, Migration
from gfdit.protocol import GenParams, RunTask

log = logging.getLogger("gfdit.server.calibrate")


def calibration_widths(num_gpus: int, policy_widths: tuple[int, ...]) -> tuple[int, ...]:
    """Powers of two up to the pool size, plus any width the policy names that fits."""
    widths = {1}
    w = 2
    while w <= num_gpus:
        widths.add(w)
        w *= 2
    widths.update(x for x in policy_widths if x <= num_gpus)
    return tuple(sorted(widths))


def cpu_contention(num_workers: int, device: str) -> float:
    """How much slower a CPU worker runs when every worker computes at once: N workers
    share the machine's cores, so each gets cores/N of a core (1 on other devices)."""
    if device != "cpu":
        return 1.0
    return max(1.0, num_workers / (os.cpu_count() or 1))


def calibrate(pool, widths: tuple[int, ...], height: int, width: int, steps: int = 4,
              contention: float = 1.0) -> CostModel:
    """Time the pool's model at `widths` on one (height x width, steps) request; every
    stage time is multiplied by `contention` (see `cpu_contention`)."""
    steps = max(steps, 2 * len(widths))  # each width times two steps, in trajectory order
    params = GenParams(prompt="calibration", height=height, width=width, steps=steps, seed=0)
    ids = iter(range(1, 1_000_000))
    rid = "calibration"

    def run(stage: str, a: int, b: int, group: tuple[int, ...], state: tuple[int, ...]) -> dict:
        result = pool.run(RunTask(task_id=next(ids), request_id=rid, stage=stage, step_begin=a, step_end=b,
                                  group=group, state_ranks=state, params=params), timeout=600)
        return {rank: t for rank, t in result.timings.items()}

    encode_s = run("encode", 0, 0, (0,), ())[0]["compute"]
    holders: tuple[int, ...] = (0,)
    step_s: dict[int, float] = {}
    migrate_s = 0.0
    step = 0
    for k in widths:
        group = tuple(range(k))
        best = float("inf")
        for _ in range(2):
            timings = run("denoise", step, step + 1, group, holders)
            step += 1
            migrate_s = max(migrate_s, max(t.get("migrate", 0.0) for t in timings.values()))
            best = min(best, max(t["compute"] for t in timings.values()))
            holders = group
        step_s[k] = best
    if step < steps:
        run("denoise", step, steps, (0,), holders)
        holders = (0,)
    decode_s = run("decode", steps, steps, (0,), holders)[0]["compute"]
    pool.drop(rid)
    log.info("calibrated %dx%d: encode %.1f ms, step %s ms, decode %.1f ms, migration %.1f ms; x%.2f for "
             "contention", height, width, encode_s * 1e3, {k: round(v * 1e3, 1) for k, v in step_s.items()},
             decode_s * 1e3, migrate_s * 1e3, contention)
    c = contention
    layouts = {k: _layout(encode_s * c, s * c, decode_s * c) for k, s in step_s.items()}
    return CostModel(layouts, model=f"{pool.model} (calibrated)",
                     migration=Migration(bandwidth_Bps=1e12, fixed_s=migrate_s), source="calibrated")


def _layout(encode_s: float, step_s: float, decode_s: float) -> dict[str, Curve]:
    def const(x_name: str, seconds: float) -> Curve:
        return Curve(x_name, 0.0, 0.0, seconds * 1000.0)

    return {
        "text_encode": const("text_seq_len", encode_s),
        "dit_prepare": const("latent_seq_len", 0.0),
        "timestep_prepare": const("num_steps", 0.0),
        "dit_step_chunk": const("latent_seq_len", step_s),
        "dit_step_chunk_nocfg": const("latent_seq_len", step_s),  # timed without true CFG
        "vae_decode": const("voxels", decode_s),
        "finalize": const("ones", 0.0),
    }


def cost_model_docs(cost_model: CostModel, options: dict | None = None) -> tuple[dict[int, dict], dict]:
    """A cost model as the one writer's input (`write_cost_model`): ({width: layout_doc}, migration fields)."""
    layouts = {k: layout_doc(cost_model.model, k, {name: stage_entry(c.x_name, c.a, c.b, c.c)
                                                   for name, c in curves.items()}, options)
               for k, curves in cost_model.layouts.items()}
    return layouts, asdict(cost_model.migration)


def write_calibrated(cost_model: CostModel, directory: str | Path) -> Path:
    """Write a calibrated `cost_model` with the one cost-model writer (`gfdit.costmodel_file`)."""
    return write_cost_model(directory, *cost_model_docs(cost_model, {"calibrated": True}))
