"""A shipped policy serves on fewer GPUs than its widths (and a cost model that prices fewer):
the widths the cluster cannot use are dropped with a one-line note (gfdit.policies.fit_policy)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from gfdit.client import Client
from gfdit.resources import data_dir

pytestmark = pytest.mark.slow
QWEN = Path(__file__).resolve().parents[2] / "gfdit" / "data" / "costmodels" / "qwen-h20"


def test_edf_best_fit_serves_on_2_gpus_with_widths_1_and_2_priced(tmp_path, caplog):
    from gfdit.server import Server, ServerConfig

    cost_model = tmp_path / "cm12"  # what a 2-GPU calibration measures: widths 1 and 2
    cost_model.mkdir()
    for name in ("tp1_ulysses1_ring1_cfg1.json", "tp1_ulysses2_ring1_cfg1.json"):
        shutil.copy(QWEN / name, cost_model / name)
    config = ServerConfig(executor="emulated", num_gpus=2, cost_model=str(cost_model),
                          policy=str(data_dir("policies") / "edf_best_fit.gfp"),
                          address="tcp://127.0.0.1:0", time_scale=0.02)
    with caplog.at_level(logging.WARNING, logger="gfdit.server"):
        server = Server(config).start_background()
    try:
        assert any("widths [4] dropped" in r.getMessage() for r in caplog.records)
        with Client(server.address, timeout=30) as client:
            result = client.submit("x", steps=6, height=512, width=512).result(timeout=60)
            assert result.latency_s > 0
    finally:
        server.stop()
