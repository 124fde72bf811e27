"""`gfdit profile` on the tiny model: a cost-model directory the engine loads."""

import json

import pytest

from gfdit.cli import main
from gfdit.cli.profile import parse_shapes, parse_widths
from gfdit.engine.costmodel import CostModel, Shape
from gfdit.workers.profile import fit_curve, migration_fit

STAGES = {"text_encode", "dit_prepare", "timestep_prepare", "dit_step_chunk", "vae_decode", "finalize"}


def test_fit_recovers_a_quadratic_and_degrades_with_few_points():
    samples = [(x, 2e-3 * x * x + 0.5 * x + 7) for x in (100, 400, 900, 1600)]
    fit = fit_curve(samples)
    assert fit["r2"] == pytest.approx(1.0)
    assert [fit["coeffs"][k] for k in "abc"] == pytest.approx([2e-3, 0.5, 7], rel=1e-6)
    line = fit_curve([(1, 3.0), (3, 7.0)])["coeffs"]
    assert (line["a"], line["b"], line["c"]) == pytest.approx((0, 2, 1))
    assert fit_curve([(5, 2.0), (5, 4.0)])["coeffs"] == {"a": 0.0, "b": 0.0, "c": 3.0}


def test_migration_fit_reads_bandwidth_and_fixed_cost():
    moves = [(t, 1000 + 64 * t, 0.002 + (1000 + 64 * t) / 5e8) for t in (16, 64, 256)]
    fit = migration_fit(moves)
    assert fit["bandwidth_Bps"] == pytest.approx(5e8, rel=1e-6)
    assert fit["fixed_s"] == pytest.approx(0.002, rel=1e-6)
    assert (fit["bytes_per_token"], fit["fixed_bytes"]) == (64, 1000)
    assert migration_fit(moves[:1]) == {}


def test_bad_arguments_are_clear_errors():
    assert parse_shapes("64x32, 16x16x5") == [(64, 32, 1), (16, 16, 5)]
    assert parse_widths("4,1,2") == [1, 2, 4]
    for bad in ("64", "64xa", "0x64", ""):
        with pytest.raises(ValueError):
            parse_shapes(bad)
    with pytest.raises(ValueError, match="positive"):
        parse_widths("0,1")


@pytest.mark.slow
def test_profile_tiny_writes_a_loadable_cost_model(tmp_path, capsys):
    out = tmp_path / "cm"
    code = main(["profile", "tiny", "--widths", "1,2", "--shapes", "32x32,64x64,96x96",
                 "--steps", "3", "--repeats", "1", "--out", str(out)])
    assert code == 0
    assert "cost model written" in capsys.readouterr().out
    cm = CostModel.load(out)
    assert cm.widths == (1, 2)
    for width in (1, 2):
        layout = json.loads((out / f"tp1_ulysses{width}_ring1_cfg1.json").read_text())
        assert STAGES <= set(layout["stages"]) and layout["parallelism"]["ulysses"] == width
        step = layout["stages"]["dit_step_chunk"]
        assert step["x_name"] == "latent_seq_len" and len(step["samples"]) == 3
        assert all(ms > 0 for _, ms in step["samples"])
    shape = Shape(tokens=16, text_tokens=13, steps=3, voxels=64 * 64)
    assert all(part > 0 for part in cm.parts(shape, 1))
    assert cm.migration.bandwidth_Bps > 0 and cm.migration.bytes_per_token > 0


def test_profile_rejects_bad_shapes_without_starting_workers(tmp_path, capsys):
    assert main(["profile", "tiny", "--shapes", "64by64", "--out", str(tmp_path)]) == 2
    assert "bad shape" in capsys.readouterr().err


@pytest.mark.slow
def test_profile_of_a_model_that_does_not_load_says_why(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "missing"), "--widths", "1", "--out", str(tmp_path / "cm")]) == 1
    err = capsys.readouterr().err
    assert "gfdit profile: worker 0 exited with code 1 while starting" in err and "missing" in err
    assert not (tmp_path / "cm").exists()
