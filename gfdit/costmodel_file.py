"""The cost-model directory format of the GF-DiT artifact, and its one writer.

A directory holds one JSON file per parallel layout (`layout_filename`), plus an
optional `migration.json` (the fields of `gfdit.engine.costmodel.Migration`):

    {"model", "parallelism": {"tp", "sp", "ulysses", "ring", "cfg"}, "options",
     "stages": {STAGE: {"x_name", "coeffs": {"a", "b", "c"}, "r2", "samples"}}}

Every writer uses `write_cost_model` (the server's calibration, `gfdit profile`,
the shipped models' builder); the engine's reader (`CostModel.load`) shares
`STAGE_X` and `MIGRATION_FILE`. A neutral module: it imports nothing from gfdit,
so the engine and the workers may both use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

MIGRATION_FILE = "migration.json"
STEP = "dit_step_chunk"  # one denoise step; `_cfg` / `_nocfg` variants may refine it
STAGE_X = {  # each stage's variable in the artifact (its `x_name` when a file omits it)
    "text_encode": "text_seq_len", "dit_prepare": "latent_seq_len", "timestep_prepare": "num_steps",
    STEP: "latent_seq_len", f"{STEP}_cfg": "latent_seq_len", f"{STEP}_nocfg": "latent_seq_len",
    "vae_decode": "voxels", "finalize": "ones",
}


def stage_entry(x_name: str, a: float, b: float, c: float, r2: float = 1.0,
                samples: Iterable[tuple[float, float]] = ()) -> dict:
    """One stage: ``max(0, a*x^2 + b*x + c)`` ms of `x_name`, with its fit quality and (x, ms) samples."""
    return {"x_name": x_name, "coeffs": {"a": float(a), "b": float(b), "c": float(c)}, "r2": float(r2),
            "samples": [[float(x), float(y)] for x, y in samples]}


def layout_filename(width: int) -> str:
    return f"tp1_ulysses{width}_ring1_cfg1.json"


def layout_doc(model: str, width: int, stages: Mapping[str, dict], options: Mapping | None = None) -> dict:
    """One sequence-parallel layout of `width` ranks."""
    return {"model": model, "options": dict(options or {}),
            "parallelism": {"tp": 1, "sp": width, "ulysses": width, "ring": 1, "cfg": 1},
            "stages": dict(sorted(stages.items()))}


def write_cost_model(directory: str | Path, layouts: Mapping[int, dict], migration: Mapping | None = None) -> Path:
    """Write `layouts` ({width: `layout_doc`}) and, if given, the migration fields; returns the directory."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for width, doc in sorted(layouts.items()):
        (out / layout_filename(width)).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if migration:
        (out / MIGRATION_FILE).write_text(json.dumps(dict(migration), indent=2, sort_keys=True) + "\n")
    return out
