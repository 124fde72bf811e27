"""The latency and SLO table per class that the demo (and benches) print; p95 is `simulate`'s
(`gfdit.engine.metrics.percentile`)."""

from __future__ import annotations

from dataclasses import dataclass

from gfdit.engine.metrics import percentile


@dataclass(frozen=True)
class Finished:
    request_class: str
    state: str
    latency_s: float
    deadline_s: float | None
    slo_met: bool | None


def class_table(rows: list[Finished]) -> str:
    """Markdown-ish table: per class and overall, requests, completed, latency, SLO attainment."""
    classes = sorted({r.request_class for r in rows})
    lines = ["| class | requests | completed | mean latency s | p95 latency s | SLO met |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, group in [(c, [r for r in rows if r.request_class == c]) for c in classes] + [("all", rows)]:
        done = [r for r in group if r.state == "completed"]
        lat = [r.latency_s for r in done]
        met = sum(1 for r in done if r.slo_met)
        mean = f"{sum(lat) / len(lat):.2f}" if lat else "-"
        p95 = f"{percentile(lat, 95):.2f}" if lat else "-"
        slo = f"{met}/{len(group)} ({100 * met / len(group):.0f}%)" if group else "-"
        lines.append(f"| {name} | {len(group)} | {len(done)} | {mean} | {p95} | {slo} |")
    return "\n".join(lines)
