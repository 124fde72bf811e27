"""`gfdit demo` part 2 at a small size: the emulated server under static_sp and load_adaptive, real
processes and sockets; requests change width, the tables come from the run, the timeline is drawn."""

from __future__ import annotations

import argparse
import json
import sys
from itertools import pairwise

import pytest

from gfdit.cli import demo_elastic
from gfdit.protocol import Progress

pytestmark = pytest.mark.slow


def small_args(**changes) -> argparse.Namespace:
    args = dict(emulate_gpus=4, elastic_policy="load_adaptive", load=1.6, trace_span=0.05, time_scale=0.05,
                seed=0, quiet=False)
    return argparse.Namespace(**(args | changes))


def test_part_two_shows_requests_changing_width_and_draws_them(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert demo_elastic.run_part(small_args(), tmp_path, print) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    elastic, fixed = results["load_adaptive"], results["static_sp"]
    assert len(elastic["rows"]) == len(fixed["rows"]) == len(json.loads((tmp_path / "trace.json").read_text())
                                                            ["requests"])
    assert all(row["state"] == "completed" for row in elastic["rows"] + fixed["rows"])
    assert fixed["width_changes"] == []  # the fixed pipeline: one group per request, start to end
    assert elastic["width_changes"], "no request changed width under the elastic policy"
    request, old, new, step, steps = elastic["width_changes"][0]
    assert old != new and 0 < step < steps
    verb = "grew" if new > old else "shrank"
    assert f"{request:<10} {verb} {old} -> {new} at step {step}/{steps}" in out
    assert "static_sp: SLO met" in out and "load_adaptive: SLO met" in out
    for run in (elastic, fixed):  # the server's timeline: every request on it, no rank double-booked
        assert {s[0] for s in run["spans"]} == _ids(tmp_path)
        for rank in range(4):
            busy = sorted((s[3], s[4]) for s in run["spans"] if rank in s[2])
            assert all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in pairwise(busy))
    png = tmp_path / "timeline.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def _ids(out) -> set[str]:
    return {r["request_id"] for r in json.loads((out / "trace.json").read_text())["requests"]}


def test_part_two_without_matplotlib_says_the_plot_was_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert demo_elastic.run_part(small_args(trace_span=0.02, quiet=True), tmp_path, print) == 0
    assert "rank timeline plot skipped" in capsys.readouterr().out
    assert not (tmp_path / "timeline.png").exists()


def test_width_changes_reads_the_running_events_only():
    def ev(state, width, step=0, steps=50, stage="denoise"):
        return Progress(request_id="r", seq=0, state=state, time=0.0, stage=stage, step=step, steps=steps,
                        width=width)

    events = [ev("queued", 0, stage="encode"), ev("encoding", 1, stage="encode"), ev("migrated", 4, steps=0),
              ev("running", 4, 0), ev("running", 4, 10), ev("migrated", 2, steps=0), ev("running", 2, 10),
              ev("running", 2, 20), ev("decoding", 1, 50, stage="decode")]
    assert demo_elastic.width_changes(events) == [(4, 2, 10, 50)]


@pytest.mark.parametrize("option, message", [
    (["--elastic-policy", "nope"], "unknown policy 'nope'"),
    (["--load", "0"], "load > 0"),
    (["--time-scale", "0"], "--time-scale must be positive"),
    (["--emulate-gpus", "-1"], "--emulate-gpus must be >= 1"),
])
def test_bad_part_two_options_are_refused_before_anything_starts(tmp_path, capsys, option, message):
    from gfdit.cli import main

    assert main(["demo", "--out", str(tmp_path), *option]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "policy.gfp").exists()  # part 1 never started (it copies the policy first)


def test_a_request_whose_server_went_away_is_recorded_as_lost():
    from types import SimpleNamespace

    from gfdit.client import ServerGone

    class GoneHandle:
        request_id = "S_000001"

        def progress(self, timeout=None):
            yield Progress(request_id="S_000001", seq=1, state="running", time=0.0, stage="denoise", step=5,
                           steps=50, width=1)
            raise ServerGone("server at tcp://127.0.0.1:1 silent for 15.0s")

    run, said = demo_elastic.Run("load_adaptive"), []
    demo_elastic.follow(GoneHandle(), SimpleNamespace(request_class="S"), run, said.append, True)
    assert [(r.request_class, r.state) for r in run.rows] == [("S", "lost")] and "silent" in said[-1]
