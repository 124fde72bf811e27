"""Rank timelines of a run: a Chrome trace (chrome://tracing, Perfetto) and a matplotlib plot.

One lane per rank; every task appears on each rank of its group, preceded by
its migration (if any) as a separate slice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .executor import Span

STAGE_COLORS = {"encode": "tab:green", "denoise": "tab:blue", "decode": "tab:orange", "migrate": "tab:red"}


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


def plot_timeline(spans: Sequence[Span], gpus: int, path: str | Path, title: str = "") -> None:
    """Draw the rank timeline to an image (needs matplotlib: the `plot` extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'gfdit[plot]'") from exc
    fig, ax = plt.subplots(figsize=(12, 1 + 0.5 * gpus))
    for stage, color in STAGE_COLORS.items():
        bars: dict[int, list[tuple[float, float]]] = {}
        for span in spans:
            if stage == "migrate":
                part = (span.start, span.migration_s) if span.migration_s > 0 else None
            else:
                part = (span.start + span.migration_s, span.end - span.start - span.migration_s) \
                    if span.stage == stage else None
            if part is not None:
                for rank in span.group:
                    bars.setdefault(rank, []).append(part)
        for rank, parts in bars.items():
            ax.broken_barh(parts, (rank - 0.4, 0.8), facecolors=color, edgecolor="none")
        ax.plot([], [], color=color, linewidth=6, label=stage)
    ax.set_yticks(range(gpus), [f"rank {r}" for r in range(gpus)])
    ax.set_xlabel("time (s)")
    ax.set_title(title or "rank timeline", loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
