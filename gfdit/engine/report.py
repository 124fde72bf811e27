"""The metrics table `gfdit simulate` prints (overall, then one row per class)."""

from __future__ import annotations

import math

COLUMNS = (  # header, key, format
    ("class", None, "{}"),
    ("reqs", "requests", "{:d}"),
    ("done", "completed", "{:d}"),
    ("SAR", "slo_attainment", "{:.1%}"),
    ("mean s", "mean_latency_s", "{:.2f}"),
    ("p50 s", "p50_latency_s", "{:.2f}"),
    ("p95 s", "p95_latency_s", "{:.2f}"),
    ("p99 s", "p99_latency_s", "{:.2f}"),
    ("tput/min", "throughput_rpm", "{:.2f}"),
    ("good/min", "goodput_rpm", "{:.2f}"),
    ("GPU util", "gpu_utilization", "{:.1%}"),
    ("migr", "migrations", "{:d}"),
)


def _cell(fmt: str, value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return fmt.format(value)


def metrics_table(metrics: dict) -> str:
    """A markdown table of the overall block and every class block."""
    rows = [("overall", metrics["overall"])] + sorted(metrics["classes"].items())
    cells = [[name if key is None else _cell(fmt, block[key]) for _, key, fmt in COLUMNS] for name, block in rows]
    header = [h for h, _, _ in COLUMNS]
    widths = [max(len(header[i]), *(len(r[i]) for r in cells)) for i in range(len(header))]
    line = lambda parts: "| " + " | ".join(p.rjust(w) for p, w in zip(parts, widths, strict=True)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)
