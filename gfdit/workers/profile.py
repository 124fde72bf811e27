"""Profiling: time a model's stages on real pool workers and write a cost model.

Two halves:

* in the worker, `StageClock` wraps the loaded diffusers pipeline's
  `encode_prompt`, `prepare_latents` and `vae.decode` with timers, so a task's
  `TaskDone.timings` carry ``stage.text_encode``, ``stage.dit_prepare`` and
  ``stage.vae_decode`` besides its total compute time (``dit_prepare`` is timed
  in the first denoise task, where the DiT's set-up runs; the rest of that task
  beyond one step is ``timestep_prepare``, the rest of decode is ``finalize``);
* in the controller, `profile_model` runs encode / denoise / decode tasks at each
  width and shape through a `WorkerPool`, fits each stage to
  ``max(0, a*x^2 + b*x + c)`` ms (`fit_curve`) and returns one layout per width in
  the GF-DiT cost-model format (`gfdit.costmodel_file`, docs/engine.md "Time and
  cost"), plus the migration cost measured between two workers (`migration.json`).

Its x variables follow the engine: ``latent_seq_len`` is
`gfdit.shapes.latent_tokens(H, W, F)`, ``voxels`` is H*W*F.
"""

from __future__ import annotations

import functools
import platform
import statistics
import time
from dataclasses import dataclass, field

from gfdit.costmodel_file import STAGE_X, layout_doc
from gfdit.protocol import GenParams, RunTask
from gfdit.shapes import latent_tokens

STAGE_PREFIX = "stage."


class StageClock:
    """Accumulated seconds of the pipeline's timed methods since the last `take`."""

    TIMED = (("encode_prompt", "text_encode"), ("prepare_latents", "dit_prepare"))

    def __init__(self, adapter) -> None:
        self.totals: dict[str, float] = {}
        self.facts: dict[str, float] = {}
        pipe = getattr(adapter, "pipe", None)
        if pipe is None:
            return
        for method, stage in self.TIMED:
            if hasattr(pipe, method):
                setattr(pipe, method, self._timed(getattr(pipe, method), stage))
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            vae.decode = self._timed(vae.decode, "vae_decode")

    def _timed(self, fn, stage: str):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                self.totals[stage] = self.totals.get(stage, 0.0) + time.perf_counter() - start
            if stage == "text_encode":
                self._note_text_length(out)
            return out
        return timed

    def _note_text_length(self, out) -> None:
        first = out[0] if isinstance(out, tuple) and out else out
        if getattr(first, "ndim", 0) == 3:
            self.facts["x.text_seq_len"] = float(first.shape[1])

    def take(self) -> dict[str, float]:
        """``{"stage.<name>": seconds}`` since the last call (and ``x.text_seq_len``)."""
        taken = {STAGE_PREFIX + k: v for k, v in self.totals.items()} | self.facts
        self.totals.clear()
        self.facts = {}
        return taken


def fit_curve(samples: list[tuple[float, float]]) -> dict:
    """Least-squares ``a*x^2 + b*x + c`` through (x, ms) samples, with r2.

    The degree follows the distinct x values: 3+ quadratic, 2 linear, 1 constant.
    """
    import numpy as np

    if not samples:
        raise ValueError("a curve needs at least one sample")
    x = np.array([s[0] for s in samples], dtype=np.float64)
    y = np.array([s[1] for s in samples], dtype=np.float64)
    degree = min(2, len(set(x.tolist())) - 1)
    scale = max(1.0, float(np.abs(x).max()))
    coeffs = np.polyfit(x / scale, y, degree) if degree else np.array([y.mean()])
    a, b, c = ([0.0] * (2 - degree) + coeffs.tolist())
    a, b = a / scale**2, b / scale
    predicted = (a * x + b) * x + c
    ss_res = float(((y - predicted) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res < 1e-12 else 0.0)
    return {"coeffs": {"a": a, "b": b, "c": c}, "r2": r2, "samples": [[float(u), float(v)] for u, v in samples]}


@dataclass
class Measurements:
    """(x, ms) samples per width and stage, and (bytes, seconds) of migrations."""

    stages: dict[int, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    moves: list[tuple[float, float, float]] = field(default_factory=list)  # tokens, bytes, seconds
    moves_skipped: str = ""  # why no move was measured

    def add(self, width: int, stage: str, x: float, seconds: float) -> None:
        self.stages.setdefault(width, {}).setdefault(stage, []).append((float(x), seconds * 1000.0))


def profile_model(pool, widths: list[int], shapes: list[tuple[int, int, int]], steps: int,
                  repeats: int = 2, prompt: str = "a lighthouse at dusk, oil painting") -> Measurements:
    """Time every stage of `shapes` at each of `widths` on `pool` (needs max(widths) workers)."""
    if steps < 2:
        raise ValueError("profiling needs at least 2 steps (one warm-up step is not timed)")
    found, ids = Measurements(), iter(range(1, 1 << 30))
    for width in widths:
        group = tuple(range(width))
        for height, width_px, frames in shapes:
            tokens = latent_tokens(height, width_px, frames)
            for rep in range(repeats + 1):  # the first round warms up and is not kept
                params = GenParams(prompt=prompt, height=height, width=width_px, steps=steps, seed=rep,
                                   frames=frames)
                timings = _trajectory(pool, ids, f"profile-{width}-{height}x{width_px}-{rep}", group, params)
                if rep:
                    _record(found, width, tokens, height * width_px * frames, steps, timings)
    if len(pool.pids) >= 2:
        found.moves = _measure_moves(pool, ids, shapes, steps, repeats, prompt)
    else:
        found.moves_skipped = (f"measuring a state move needs 2 workers and this profile ran {len(pool.pids)} "
                               "(give --widths a width of 2 or more)")
    return found


def _task(ids, request_id, stage, group, holders, params, begin=0, end=0) -> RunTask:
    return RunTask(task_id=next(ids), request_id=request_id, stage=stage, step_begin=begin, step_end=end,
                   group=group, state_ranks=holders, params=params)


def _trajectory(pool, ids, request_id, group, params) -> dict[str, dict]:
    """Encode, one warm-up step, the timed steps, decode: index-0 timings of each."""
    enc = pool.run(_task(ids, request_id, "encode", group, (), params))
    first = pool.run(_task(ids, request_id, "denoise", group, group, params, 0, 1))  # the set-up + a warm-up step
    chunk = pool.run(_task(ids, request_id, "denoise", group, group, params, 1, params.steps))
    dec = pool.run(_task(ids, request_id, "decode", group[:1], group, params, params.steps, params.steps))
    pool.drop(request_id)
    slowest = max((t for t in chunk.timings.values()), key=lambda t: t["compute"])
    return {"encode": enc.timings[group[0]], "first": first.timings[group[0]], "chunk": slowest,
            "decode": dec.timings[group[0]]}


def _record(found: Measurements, width: int, tokens: int, voxels: int, steps: int, timings) -> None:
    enc, first, chunk, dec = timings["encode"], timings["first"], timings["chunk"], timings["decode"]
    text = enc.get(STAGE_PREFIX + "text_encode", 0.0)
    prepare = first.get(STAGE_PREFIX + "dit_prepare", 0.0)
    step = chunk["compute"] / (steps - 1)
    vae = dec.get(STAGE_PREFIX + "vae_decode", 0.0)
    text_tokens = enc.get("x.text_seq_len", 512.0)
    found.add(width, "text_encode", text_tokens, text)
    found.add(width, "dit_prepare", tokens, prepare)
    found.add(width, "timestep_prepare", steps, max(0.0, first["compute"] - prepare - step))
    found.add(width, "dit_step_chunk", tokens, step)
    found.add(width, "vae_decode", voxels, vae)
    found.add(width, "finalize", 1, max(0.0, dec["compute"] - vae))


def _measure_moves(pool, ids, shapes, steps, repeats, prompt) -> list[tuple[float, float, float]]:
    """Move a state after its first step from rank 0 to rank 1 (a 0-step chunk): (tokens, bytes, seconds)."""
    moves = []
    for height, width_px, frames in shapes:
        for rep in range(repeats + 1):
            params = GenParams(prompt=prompt, height=height, width=width_px, steps=steps, seed=rep, frames=frames)
            rid = f"move-{height}x{width_px}-{rep}"
            pool.run(_task(ids, rid, "encode", (0,), (), params))
            pool.run(_task(ids, rid, "denoise", (0,), (0,), params, 0, 1))  # the DiT set-up: latents exist
            moved = pool.run(_task(ids, rid, "denoise", (1,), (0,), params, 1, 1))
            pool.drop(rid)
            if rep:
                t = moved.timings[1]
                moves.append((float(latent_tokens(height, width_px, frames)), t["recv_bytes"], t["migrate"]))
    return moves


def migration_fit(moves: list[tuple[float, float, float]]) -> dict:
    """`Migration` fields fitted from measured moves (tokens, bytes, seconds):
    seconds = fixed_s + bytes / bandwidth_Bps and bytes = fixed_bytes +
    bytes_per_token * tokens (the prompt's bytes fold into fixed_bytes). When
    the moves cannot separate bandwidth from fixed cost (one state size, or a
    time that does not grow with the size: small states on a noisy machine),
    each line goes through the origin instead (`separable` False): the mean
    rate, exact on average at the measured sizes. Empty without a move."""
    if not moves or any(b <= 0 or s <= 0 or t <= 0 for t, b, s in moves):
        return {}
    per_byte, fixed_s = _linear(moves, 1, 2) if len({b for _, b, _ in moves}) >= 2 else (0.0, 0.0)
    per_token, fixed_bytes = _linear(moves, 0, 1) if len({t for t, _, _ in moves}) >= 2 else (0.0, 0.0)
    separable = per_byte > 0 and per_token > 0
    if not separable:
        tokens, nbytes, seconds = (sum(m[i] for m in moves) for i in range(3))
        per_byte, fixed_s, per_token, fixed_bytes = seconds / nbytes, 0.0, nbytes / tokens, 0.0
    return {"bandwidth_Bps": 1.0 / per_byte, "fixed_s": max(0.0, fixed_s),
            "bytes_per_token": int(round(per_token)), "bytes_per_text_token": 0,
            "fixed_bytes": int(round(max(0.0, fixed_bytes)))}


def migration_summary(found: Measurements, fields: dict) -> str:
    """One line for the user: what `migration.json` holds, or why it was not written."""
    if fields:
        how = "" if fields["fixed_s"] > 0 or fields["fixed_bytes"] > 0 else (
            " (the moves could not separate bandwidth from latency: one mean rate, no fixed cost)")
        return (f"migration: {fields['bandwidth_Bps'] / 1e6:.1f} MB/s + {fields['fixed_s'] * 1e3:.2f} ms per move, "
                f"{fields['bytes_per_token']} bytes per latent token, from {len(found.moves)} moves between "
                f"workers 0 and 1{how} -> migration.json")
    why = found.moves_skipped or "no move was measured"
    return (f"migration.json not written: {why}; the cost model prices moves with the engine's "
            "default migration cost (docs/engine.md, Migration)")


def _linear(rows, xi: int, yi: int) -> tuple[float, float]:
    import numpy as np

    slope, intercept = np.polyfit([r[xi] for r in rows], [r[yi] for r in rows], 1)
    return float(slope), float(intercept)


def layouts(found: Measurements, model: str, options: dict) -> dict[int, dict]:
    """One cost-model layout (`gfdit.costmodel_file.layout_doc`) per width."""
    out = {}
    for width, stages in sorted(found.stages.items()):
        fitted = {name: {"x_name": STAGE_X[name], **fit_curve(samples)} for name, samples in stages.items()}
        fitted["dit_step_chunk_nocfg"] = dict(fitted["dit_step_chunk"])  # measured without true CFG
        out[width] = layout_doc(model, width, fitted, {
            **options, "median_step_ms": statistics.median(v for _, v in stages["dit_step_chunk"]),
            "hardware": platform.processor() or platform.machine()})
    return out
