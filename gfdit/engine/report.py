"""What `gfdit simulate` prints: the metrics table (overall, then one row per class)
and the summary of what went wrong (failures, rule errors)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

from .request import REJECTED, Outcome, State

SHOWN = 5  # distinct rule errors / failure reasons listed

COLUMNS = (  # header, key, format
    ("class", None, "{}"),
    ("reqs", "requests", "{:d}"),
    ("done", "completed", "{:d}"),
    ("fail", "failed", "{:d}"),
    ("rej", "rejected", "{:d}"),
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


def failure_summary(outcomes: Sequence[Outcome], unfinished: Sequence[str],
                    rule_errors: Mapping[str, int], messages: Mapping[str, str]) -> list[str]:
    """Lines saying what went wrong: failed / rejected / unfinished counts, the first distinct
    failure reasons and rule errors with their counts. Empty when nothing went wrong."""
    lines: list[str] = []
    ended = Counter(o.state for o in outcomes)
    failed, rejected = ended[State.FAILED.value], ended[REJECTED]
    if failed or rejected or unfinished:
        lines.append(f"{failed} request(s) failed, {rejected} rejected, {len(unfinished)} never finished"
                     + (f" (e.g. {', '.join(unfinished[:SHOWN])})" if unfinished else ""))
    reasons = Counter(o.reason or "no reason" for o in outcomes if o.state in (State.FAILED.value, REJECTED))
    lines += _top(reasons, "failure and rejection reasons", lambda reason: reason)
    lines += _top(Counter(rule_errors), "policy rule errors (the hook's fallback applied)",
                  lambda rule: f"{rule}: {messages.get(rule, '')}")
    return lines


def _top(counts: Counter, title: str, text) -> list[str]:
    if not counts:
        return []
    shown = counts.most_common(SHOWN)
    more = len(counts) - len(shown)
    return ([f"{title}:"] + [f"  {n:>6}x  {text(key)}" for key, n in shown]
            + ([f"  ... and {more} more"] if more else []))
