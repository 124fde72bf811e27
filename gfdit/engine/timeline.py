"""Rank timelines of a run: a Chrome trace (chrome://tracing, Perfetto) and a matplotlib plot.

One lane per rank; every task appears on each rank of its group, preceded by
its migration (if any) as a separate slice.
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass
from typing import Sequence

from .executor import Span

def chrome_trace(spans: Sequence[Span], gpus: int) -> dict:
    """The Chrome trace-event JSON of `spans` (times in microseconds)."""
    events: list[dict] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "gfdit ranks"}}]
    events += [{"name": "thread_name", "ph": "M", "pid": 0, "tid": r, "args": {"name": f"rank {r}"}}
               for r in range(gpus)]
    for span in spans:
        args = {"request": span.request_id, "task": span.task_id, "steps": list(span.steps),
                "group": list(span.group)}
        compute_start = span.start + span.migration_s
        for rank in span.group:
            if span.migration_s > 0:
                events.append({"name": f"migrate {span.request_id}", "cat": "migrate", "ph": "X", "pid": 0,
                               "tid": rank, "ts": span.start * 1e6, "dur": span.migration_s * 1e6, "args": args})
            events.append({"name": f"{span.request_id} {span.stage}", "cat": span.stage, "ph": "X", "pid": 0,
                           "tid": rank, "ts": compute_start * 1e6, "dur": (span.end - compute_start) * 1e6,
                           "args": args})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_chrome_trace(spans: Sequence[Span], gpus: int, path: str | Path) -> None:
    Path(path).write_text(json.dumps(chrome_trace(spans, gpus)))


@dataclass(frozen=True)
class Bar:
    """One rectangle of the plot: a task (or its migration) on one rank."""

    rank: int
    start: float
    length: float
    request_id: str
    kind: str  # "encode" | "denoise" | "decode" | "migrate"
    width: int  # ranks in the task's group
    color: int  # the request's colour, an index into a palette of PALETTE (see `request_colors`)
    run_end: float = 0.0  # set on the bar that labels a run (consecutive denoise tasks on one group): its end


def stage_kind(span: Span) -> str:
    """How a task is drawn: a task with denoise steps is "denoise" (even when it also
    encodes and decodes: `chunk = all`); encode-only and decode-only tasks are theirs."""
    return "denoise" if span.steps[1] > span.steps[0] else span.stage


def timeline_bars(spans: Sequence[Span]) -> list[Bar]:
    """Every rectangle of the timeline; each request keeps one colour index throughout, and
    each run of its denoise tasks on one group is labelled once (request and width)."""
    ordered = sorted(spans, key=lambda s: (s.start, s.request_id))
    colors = request_colors(ordered)
    run_ends = _run_ends(ordered)
    bars: list[Bar] = []
    for span in ordered:
        color, width, compute = colors[span.request_id], len(span.group), span.start + span.migration_s
        for rank in span.group:
            if span.migration_s > 0:
                bars.append(Bar(rank, span.start, span.migration_s, span.request_id, "migrate", width, color))
            run_end = run_ends.get(span.task_id, 0.0) if rank == min(span.group) else 0.0
            bars.append(Bar(rank, compute, span.end - compute, span.request_id, stage_kind(span), width, color,
                            run_end))
    return bars


PALETTE = 20  # matplotlib's tab20


def request_colors(spans: Sequence[Span], palette: int = PALETTE) -> dict[str, int]:
    """A colour per request such that requests alive at the same time (first start to last end)
    differ whenever at most `palette` are: each takes the colour freed longest ago."""
    life: dict[str, tuple[float, float]] = {}
    for span in spans:
        start, end = life.get(span.request_id, (span.start, span.end))
        life[span.request_id] = (min(start, span.start), max(end, span.end))
    free_at = [float("-inf")] * palette
    colors: dict[str, int] = {}
    for request_id, (_, end) in sorted(life.items(), key=lambda item: (item[1][0], item[0])):
        color = min(range(palette), key=free_at.__getitem__)
        colors[request_id] = color
        free_at[color] = end
    return colors


def _run_ends(ordered: Sequence[Span]) -> dict[str, float]:
    """For the first task of each run of a request's denoise tasks on one group: the run's end."""
    ends: dict[str, float] = {}
    current: dict[str, tuple[str, tuple[int, ...]]] = {}  # request -> (first task of its run, group)
    for span in ordered:
        if stage_kind(span) != "denoise":
            current.pop(span.request_id, None)
            continue
        run = current.get(span.request_id)
        if run is None or run[1] != span.group:
            run = current[span.request_id] = (span.task_id, span.group)
        ends[run[0]] = span.end
    return ends


STAGE_HATCH = {"encode": "..", "denoise": "", "decode": "\\\\", "migrate": "xx"}


def plot_timeline(spans: Sequence[Span], gpus: int, path: str | Path, title: str = "") -> None:
    """Draw the rank timeline to an image (needs matplotlib: the `plot` extra)."""
    plot_timelines([(title or "rank timeline", spans)], gpus, path)


def plot_timelines(panels: Sequence[tuple[str, Sequence[Span]]], gpus: int, path: str | Path) -> None:
    """One rank timeline per panel, stacked on one time axis. Each request has its own colour
    (and its id written on its denoise bars, with the width: "r07 x4"); the stage is the
    hatching (encode dotted, decode striped, migration crossed)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install 'gfdit[plot]'") from exc
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 0.6 + (0.9 + 0.45 * gpus) * len(panels)),
                             sharex=True, squeeze=False)
    for ax, (title, spans) in zip(axes[:, 0], panels, strict=True):
        _draw_panel(ax, timeline_bars(spans), gpus, title)
    axes[-1, 0].set_xlabel("time (s)")
    handles = [Patch(facecolor="white", edgecolor="black", hatch=STAGE_HATCH[kind], label=kind)
               for kind in STAGE_HATCH]
    axes[0, 0].legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, fontsize="small",
                      frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_panel(ax, bars: list[Bar], gpus: int, title: str) -> None:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    groups: dict[tuple[int, int, str], list[tuple[float, float]]] = {}
    for bar in bars:  # one call per rank, request and stage: fast on long runs
        groups.setdefault((bar.rank, bar.color, bar.kind), []).append((bar.start, bar.length))
    for (rank, color, kind), parts in groups.items():
        hatch = STAGE_HATCH.get(kind, "")
        ax.broken_barh(parts, (rank - 0.4, 0.8), facecolors=cmap(color), edgecolor="black",
                       linewidth=0.4 if hatch else 0.0, hatch=hatch)
    end = max((b.start + b.length for b in bars), default=1.0)
    for bar in bars:  # each run long enough to hold it: request and width, on the group's lowest rank
        if bar.run_end - bar.start > 0.05 * end:
            ax.text((bar.start + bar.run_end) / 2, bar.rank, f"{_short(bar.request_id)} x{bar.width}",
                    ha="center", va="center", fontsize=6, clip_on=True)
    ax.set_yticks(range(gpus), [f"rank {r}" for r in range(gpus)])
    ax.set_ylim(-0.6, gpus - 0.4)
    ax.set_title(title, loc="left", fontsize="medium")


def _short(request_id: str) -> str:
    """A request id short enough to sit in a bar: its last 8 characters."""
    return request_id[-8:]
