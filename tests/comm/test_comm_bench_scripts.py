"""The comm benchmark scripts run (quick mode / CPU fallback) and write their results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_comm_gpu_check_runs_its_cpu_fallback(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_comm_check.py")],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gpu_comm_check: PASS" in proc.stdout
    report = json.loads((tmp_path / "gpu_comm_check.json").read_text())
    assert report["status"] == "PASS"
    ranks = report.get("per_rank") or [report]
    assert all(r["data_ok"] and r["process_groups"] == 1 for r in ranks)
