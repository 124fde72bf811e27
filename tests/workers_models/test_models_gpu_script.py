"""bench/gpu_dit_step.py runs on CPU with --tiny and writes a cost-model layout
the engine's loader reads (the coordinator runs the full-size version on a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gfdit.engine.costmodel import CostModel

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_tiny_run_writes_a_loadable_cost_model(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "gpu_dit_step.py"), "--tiny", "--out", str(tmp_path),
               "--resolutions", "32", "64", "96", "--warmup", "0", "--repeat", "1"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    layout = json.loads((tmp_path / "tp1_ulysses1_ring1_cfg1.json").read_text())
    step = layout["stages"]["dit_step_chunk"]
    assert [x for x, _ in step["samples"]] == [4, 16, 36]  # latent tokens of 32, 64, 96 px
    assert all(ms > 0 for _, ms in step["samples"])
    model = CostModel.load(tmp_path)
    assert model.widths == (1,) or list(model.widths) == [1]
    assert model.stage_s("vae_decode", 64 * 64, 1) > 0
    assert (tmp_path / "gpu_dit_step.md").read_text().startswith("# Flux DiT stage times")
