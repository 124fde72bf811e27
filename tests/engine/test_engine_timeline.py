"""The rank-timeline plot tells requests and widths apart (the same code draws `simulate --plot` and the demo)."""

from __future__ import annotations

import pytest

from gfdit.engine.executor import Span
from gfdit.engine.timeline import PALETTE, plot_timelines, request_colors, timeline_bars

SPANS = [
    Span("a", "a.0", "encode", (0, 0), (0,), 0.0, 1.0, 0.0),
    Span("a", "a.1", "denoise", (0, 5), (0, 1), 1.0, 3.0, 0.2),      # grew to 2 ranks (migration first)
    Span("a", "a.2", "denoise", (5, 10), (0, 1), 3.0, 5.0, 0.0),     # same group: one run, one label
    Span("b", "b.0", "encode", (0, 0), (2,), 0.5, 1.0, 0.0),
    Span("b", "b.1", "encode", (0, 10), (2, 3), 1.0, 6.0, 0.0),      # a whole trajectory (chunk = all)
    Span("a", "a.3", "denoise", (10, 20), (0, 1, 2, 3), 6.0, 8.0, 0.1),  # grew again: a new run
]


def test_each_request_keeps_its_own_colour_and_every_bar_its_width():
    bars = timeline_bars(SPANS)
    colours = {}
    for bar in bars:
        colours.setdefault(bar.request_id, set()).add(bar.color)
    assert colours["a"] != colours["b"] and all(len(c) == 1 for c in colours.values())
    widths = {(b.request_id, b.start, b.kind): b.width for b in bars}
    assert widths[("a", 1.2, "denoise")] == 2 and widths[("a", 6.1, "denoise")] == 4
    assert widths[("b", 1.0, "denoise")] == 2  # a task with denoise steps draws as denoise
    assert sum(1 for b in bars if b.kind == "migrate") == 2 + 4  # on every rank of the new group
    assert len([b for b in bars if b.rank == 1 and b.request_id == "a"]) == 5


def test_requests_alive_at_the_same_time_never_share_a_colour():
    # one long request beside 59 short ones that come and go (at most 3 alive at once): colours by
    # order of arrival alone would give r20 and r40 the long request's colour while it runs
    spans = [Span("r00", "r00.0", "denoise", (0, 50), (0,), 0.0, 100.0, 0.0)]
    spans += [Span(f"r{i:02d}", f"r{i:02d}.0", "denoise", (0, 5), (1 + i % 2,), float(i), i + 1.5, 0.0)
              for i in range(1, 60)]
    colors = request_colors(spans)
    assert len(colors) == 60 and set(colors.values()) <= set(range(PALETTE))
    for a in spans:
        for b in spans:
            if a is not b and a.start < b.end and b.start < a.end:
                assert colors[a.request_id] != colors[b.request_id], (a.request_id, b.request_id)


def test_a_run_of_tasks_on_one_group_is_labelled_once_on_its_lowest_rank():
    labelled = [b for b in timeline_bars(SPANS) if b.run_end]
    assert [(b.request_id, b.rank, b.start, b.run_end, b.width) for b in labelled] == [
        ("a", 0, 1.2, 5.0, 2), ("b", 2, 1.0, 6.0, 2), ("a", 0, 6.1, 8.0, 4)]


def test_plot_timelines_writes_one_png_with_a_panel_per_run(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "two.png"
    plot_timelines([("fixed", SPANS[:3]), ("elastic", SPANS)], 4, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
