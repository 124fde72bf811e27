"""`gfdit policy diff A B --workload W`: two policies on one trace, side by side.

Prints the metrics of both (SLO attainment, mean / p95 / p99 latency,
goodput, completed), how many requests were decided differently, and the
first of them (by the time of the first differing decision): each policy's
dispatch there — stage, steps, width, ranks, time — with the rule that decided
it (`file:line` and its text) and the values it saw, as `policy explain`
prints them. A request's decisions are its dispatches: what ran, when, how wide.
"""

from __future__ import annotations

import argparse
import sys

from gfdit.cli.explain import SourceLines, explain_line
from gfdit.cli.params import add_param_option, parse_params
from gfdit.dsl.diagnostics import PolicyError

ROWS = (("SLO attainment", "slo_attainment", "{:.3f}"), ("mean latency s", "mean_latency_s", "{:.1f}"),
        ("p95 latency s", "p95_latency_s", "{:.1f}"), ("p99 latency s", "p99_latency_s", "{:.1f}"),
        ("goodput /min", "goodput_rpm", "{:.2f}"), ("completed", "completed", "{}"),
        ("rounds", "rounds", "{}"))


def add_diff_arguments(sub) -> None:
    differ = sub.add_parser("diff", help="two policies on one trace: metrics and the first differing decisions")
    differ.add_argument("a", metavar="A", help="a .gfp file or a shipped policy name")
    differ.add_argument("b", metavar="B", help="a .gfp file or a shipped policy name")
    differ.add_argument("--workload", required=True, help="trace JSON or a shipped trace name")
    differ.add_argument("--gpus", type=int, default=4)
    differ.add_argument("--cost-model", default=None, help="cost-model directory (default: the shipped qwen-h20)")
    add_param_option(differ)
    differ.add_argument("--first", type=int, default=5, help="show this many differing requests (default 5)")


def run_diff(args: argparse.Namespace) -> int:
    from gfdit.engine.costmodel import CostModel
    from gfdit.engine.workload import Workload, shipped_cost_model, workload_path

    try:
        params = parse_params(args.param)
        workload = Workload.load(workload_path(args.workload))
        cost = CostModel.load(shipped_cost_model(args.cost_model or "qwen-h20"))
        runs = [_run(spec, params, workload, cost, args.gpus) for spec in (args.a, args.b)]
    except (ValueError, OSError) as error:  # PolicyError, RequestError, CostModelError are ValueErrors
        print(f"gfdit policy diff: {error}", file=sys.stderr)
        return 1 if isinstance(error, PolicyError) else 2
    print(_metrics_table(runs))
    differing = first_differences(runs[0][2], runs[1][2])
    print(f"\n{len(differing)} of {len(workload.requests)} requests decided differently")
    sources = SourceLines()
    for rid, when, a, b in differing[:max(0, args.first)]:
        print(f"\n{rid}: first difference at t={when:.3f}: {what_differs(a, b)}")
        for label, record in ((runs[0][0], a), (runs[1][0], b)):
            text = explain_line(record, sources) if record is not None else "(no further dispatch)"
            print(f"  {label}:\n    " + text.replace("\n", "\n    "))
    return 0


def what_differs(a: dict | None, b: dict | None) -> str:
    """`steps [0, 5) vs [0, 3), width 1 vs 4`: the fields of two dispatches that differ."""
    if a is None or b is None:
        return "one policy dispatched it once more"
    parts = []
    for name, (x, y) in zip(("stage", "steps", "width", "ranks", "t"), zip(_decision(a), _decision(b), strict=True),
                            strict=True):
        if x != y:
            show = (lambda v: f"[{v[0]}, {v[1]})") if name == "steps" else str
            parts.append(f"{name} {show(x)} vs {show(y)}")
    return ", ".join(parts)


def _run(spec: str, params: dict, workload, cost, gpus: int) -> tuple[str, dict, list[dict]]:
    from gfdit.engine.decisions import DecisionLog
    from gfdit.engine.simulator import simulate
    from gfdit.policies import fit_policy, resolve_policy

    policy, _ = fit_policy(resolve_policy(spec, params), spec, params, cost, gpus)
    log = DecisionLog()
    result = simulate(policy, workload, cost, gpus, decision_log=log, time_rounds=False)
    metrics = dict(result.metrics["overall"], rounds=result.rounds)
    return f"{policy.name}", metrics, [r for r in log.records or () if r.get("event") == "dispatch"]


def _metrics_table(runs: list[tuple[str, dict, list]]) -> str:
    (a, ma, _), (b, mb, _) = runs
    if a == b:
        a, b = f"A ({a})", f"B ({b})"
    width = max(len(a), len(b), 10)
    lines = [f"{'':16s}{a:>{width}s}  {b:>{width}s}"]
    for label, key, fmt in ROWS:
        lines.append(f"{label:16s}{fmt.format(ma[key]):>{width}s}  {fmt.format(mb[key]):>{width}s}")
    return "\n".join(lines)


def _decision(record: dict) -> tuple:
    """What a dispatch decided: the stage, steps, width and ranks, and when (to the millisecond)."""
    return (record.get("stage"), tuple(record.get("steps") or ()), record.get("width"),
            tuple(record.get("ranks") or ()), round(float(record.get("t", 0.0)), 3))


def first_differences(a: list[dict], b: list[dict]) -> list[tuple[str, float, dict | None, dict | None]]:
    """(request, time, A's dispatch, B's dispatch) at each request's first differing dispatch, earliest first."""
    by_a, by_b = _by_request(a), _by_request(b)
    out = []
    for rid in by_a.keys() | by_b.keys():
        xs, ys = by_a.get(rid, []), by_b.get(rid, [])
        for i in range(max(len(xs), len(ys))):
            x, y = (xs[i] if i < len(xs) else None), (ys[i] if i < len(ys) else None)
            if x is None or y is None or _decision(x) != _decision(y):
                when = min(float(r["t"]) for r in (x, y) if r is not None)
                out.append((rid, when, x, y))
                break
    return sorted(out, key=lambda item: (item[1], item[0]))


def _by_request(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for record in records:
        out.setdefault(record["request"], []).append(record)
    return out
