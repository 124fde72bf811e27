"""`gfdit profile` on the tiny model: a cost-model directory the engine loads."""

import json

import pytest

from gfdit.cli import main
from gfdit.cli.profile import parse_shapes, parse_widths
from gfdit.engine.costmodel import CostModel, Shape
from gfdit.workers.profile import Measurements, fit_curve, migration_fit, migration_summary

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
    assert migration_fit([]) == {}


def test_moves_that_cannot_separate_bandwidth_from_latency_give_one_mean_rate():
    one_size = [(64, 5096, 0.002 + 5096 / 5e8)] * 2
    flat = [(16, 2000, 0.0045), (64, 5000, 0.0041), (256, 17000, 0.0043)]  # noise over a fixed latency
    for moves in (one_size, flat):
        fit = migration_fit(moves)
        tokens, nbytes, seconds = (sum(m[i] for m in moves) for i in range(3))
        assert fit["fixed_s"] == 0.0 and fit["fixed_bytes"] == 0
        assert fit["bandwidth_Bps"] == pytest.approx(nbytes / seconds)
        assert fit["bytes_per_token"] == round(nbytes / tokens)
        line = migration_summary(Measurements(moves=moves), fit)
        assert "could not separate bandwidth from latency" in line and line.endswith("-> migration.json")


def test_the_summary_says_why_no_migration_was_measured():
    skipped = Measurements(moves_skipped="measuring a state move needs 2 workers and this profile ran 1")
    assert migration_summary(skipped, {}).startswith("migration.json not written: measuring a state move needs 2")


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
    printed = capsys.readouterr().out
    assert "cost model written" in printed and "-> migration.json" in printed
    measured = json.loads((out / "migration.json").read_text())  # measured between workers 0 and 1
    assert measured["bandwidth_Bps"] > 0 and measured["bytes_per_token"] > 0
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
    assert (cm.migration.bandwidth_Bps, cm.migration.bytes_per_token) == (measured["bandwidth_Bps"],
                                                                       measured["bytes_per_token"])


@pytest.mark.slow
def test_profile_on_one_worker_says_why_it_wrote_no_migration(tmp_path, capsys):
    out = tmp_path / "cm"
    assert main(["profile", "tiny", "--widths", "1", "--shapes", "32x32", "--steps", "2", "--repeats", "1",
                 "--out", str(out)]) == 0
    assert "migration.json not written: measuring a state move needs 2 workers" in capsys.readouterr().out
    assert not (out / "migration.json").exists() and CostModel.load(out).widths == (1,)


def test_profile_rejects_bad_shapes_without_starting_workers(tmp_path, capsys):
    assert main(["profile", "tiny", "--shapes", "64by64", "--out", str(tmp_path)]) == 2
    assert "bad shape" in capsys.readouterr().err


@pytest.mark.slow
def test_profile_of_a_model_that_does_not_load_says_why(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "missing"), "--widths", "1", "--out", str(tmp_path / "cm")]) == 1
    err = capsys.readouterr().err
    assert "gfdit profile: worker 0 could not start: AdapterError: " in err and "missing" in err
    assert "Traceback" not in err
    assert not (tmp_path / "cm").exists()
