"""Build the shipped cost models from published figures (run: python3 -m gfdit.data.build_costmodels).

qwen-h20: Qwen-Image per-step DiT latency on H20, as published by the GF-DiT
authors: 1024 / 4096 / 9216 latent tokens take 155 / 605 / 1557 ms at
sequence-parallel width 1, 161 / 350 / 880 ms at width 2, 172 / 207 / 464 ms at
width 4. The step curve is the quadratic through those three points, solved
exactly with rationals. The other stages are nominal (text encode 55 ms, DiT
prepare 50 ms, timestep prepare 2 ms, VAE decode 9e-8 ms per voxel + 100 ms,
finalize 0.5 ms), the same at every width.

synthetic: widths 1, 2, 4, 8 for 8-GPU and emulated runs: per-step time
0.1323 ms per latent token divided by a parallel efficiency of 1 / 1.82 / 3.33
/ 5.88, plus 20 ms of communication per extra rank.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from gfdit.costmodel_file import layout_doc, stage_entry, write_cost_model

HERE = Path(__file__).resolve().parent / "costmodels"
QWEN_POINTS = {1: (155, 605, 1557), 2: (161, 350, 880), 4: (172, 207, 464)}
QWEN_TOKENS = (1024, 4096, 9216)
SYNTHETIC_EFFICIENCY = {1: 1.0, 2: 1.82, 4: 3.33, 8: 5.88}
NOMINAL = {  # stage: (x_name, a, b, c)
    "text_encode": ("text_seq_len", 0.0, 0.0, 55.0),
    "dit_prepare": ("latent_seq_len", 0.0, 0.0, 50.0),
    "timestep_prepare": ("num_steps", 0.0, 0.0, 2.0),
    "vae_decode": ("voxels", 0.0, 9e-8, 100.0),
    "finalize": ("ones", 0.0, 0.0, 0.5),
}


def quadratic_through(xs, ys) -> tuple[Fraction, Fraction, Fraction]:
    """The exact (a, b, c) of a*x^2 + b*x + c through three points (Lagrange)."""
    x0, x1, x2 = map(Fraction, xs)
    y0, y1, y2 = map(Fraction, ys)
    d0, d1, d2 = (x0 - x1) * (x0 - x2), (x1 - x0) * (x1 - x2), (x2 - x0) * (x2 - x1)
    a = y0 / d0 + y1 / d1 + y2 / d2
    b = -(y0 * (x1 + x2) / d0 + y1 * (x0 + x2) / d1 + y2 * (x0 + x1) / d2)
    c = y0 * x1 * x2 / d0 + y1 * x0 * x2 / d1 + y2 * x0 * x1 / d2
    return a, b, c


def stage(x_name, a, b, c, samples) -> dict:
    return stage_entry(x_name, a, b, c, 1.0, samples)


def layout(model: str, width: int, step: dict, options: dict) -> dict:
    stages = {name: stage(x, a, b, c, [(1, a + b + c)]) for name, (x, a, b, c) in NOMINAL.items()}
    stages["dit_step_chunk"] = step
    stages["dit_step_chunk_nocfg"] = step
    return layout_doc(model, width, stages, options)


def write(directory: Path, width: int, data: dict) -> None:
    write_cost_model(directory, {width: data})


def build() -> None:
    for width, ys in QWEN_POINTS.items():
        a, b, c = quadratic_through(QWEN_TOKENS, ys)
        step = stage("latent_seq_len", a, b, c, zip(QWEN_TOKENS, ys, strict=True))
        step["coeffs_exact_rational"] = {"a": str(a), "b": str(b), "c": str(c)}
        write(HERE / "qwen-h20", width, layout("Qwen/Qwen-Image", width, step, {
            "hardware": "H20", "source": "published Qwen-Image per-step latency (GF-DiT), exact quadratic",
            "other_stages": "nominal, identical at every width"}))
    base, comm = 0.1323, 20.0
    for width, eff in SYNTHETIC_EFFICIENCY.items():
        step = stage("latent_seq_len", 0.0, base / eff, comm * (width - 1),
                     [(1, base / eff + comm * (width - 1))])
        write(HERE / "synthetic", width, layout("synthetic", width, step, {
            "synthetic": True, "base_per_latent_ms": base, "efficiency": eff, "comm_overhead_ms": comm}))


if __name__ == "__main__":
    build()
