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


def class_stats(rows: list[Finished]) -> list[tuple[str, int, int, str, str, str]]:
    """Per class (sorted) and "all": requests, completed, mean and p95 latency, SLO met ("met/n (pct%)")."""
    classes = sorted({r.request_class for r in rows})
    out = []
    for name, group in [(c, [r for r in rows if r.request_class == c]) for c in classes] + [("all", rows)]:
        done = [r for r in group if r.state == "completed"]
        lat = [r.latency_s for r in done]
        met = sum(1 for r in done if r.slo_met)
        mean = f"{sum(lat) / len(lat):.2f}" if lat else "-"
        p95 = f"{percentile(lat, 95):.2f}" if lat else "-"
        slo = f"{met}/{len(group)} ({100 * met / len(group):.0f}%)" if group else "-"
        out.append((name, len(group), len(done), mean, p95, slo))
    return out


def class_table(rows: list[Finished]) -> str:
    """Markdown-ish table: per class and overall, requests, completed, latency, SLO attainment."""
    lines = ["| class | requests | completed | mean latency s | p95 latency s | SLO met |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {' | '.join(str(v) for v in stats)} |" for stats in class_stats(rows)]
    return "\n".join(lines)


def compare_table(runs: list[tuple[str, list[Finished]]]) -> str:
    """The same trace under several policies, side by side: per class, each policy's SLO met,
    mean and p95 latency (a markdown table, columns aligned)."""
    stats = [{s[0]: s for s in class_stats(rows)} for _, rows in runs]
    classes = sorted({name for st in stats for name in st} - {"all"}) + ["all"]
    header = ["class", "requests"] + [f"{policy}: {col}" for policy, _ in runs
                                      for col in ("SLO met", "mean s", "p95 s")]
    body = [[name, str(max(st[name][1] if name in st else 0 for st in stats))]
            + [cell for st in stats for cell in _cells(st.get(name))] for name in classes]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([_aligned(header, widths), rule, *(_aligned(row, widths) for row in body)])


def _cells(stat: tuple | None) -> list[str]:
    return ["-", "-", "-"] if stat is None else [stat[5], stat[3], stat[4]]


def _aligned(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"
