"""`gfdit policy explain`: why each decision was taken, on a simulated trace.

Each decision-log record becomes a few lines: the time, the event and request,
what it got (or, for a `skip`, what it wanted and what was free), the rule
(`file:line` and its source text), the order key it was sorted by, and the
values the rule saw — including, for a choice, each candidate width's value
(`finish(k)={1: 9.742, 2: 10.042, 4: 10.592}`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gfdit.cli.params import parse_params
from gfdit.dsl.diagnostics import PolicyError

EXPLAINED_EVENTS = ("dispatch", "skip", "hold", "reserve", "reject", "error", "chunk")
# engine rules of a `skip`: why a candidate got no ranks without its width being the reason
ENGINE_SKIPS = {
    "engine:full": "no ranks left this round",
    "engine:reserve": "behind the candidate `on short reserve` kept the ranks for",
    "engine:pool": "its pool has no room for the smallest width",
    "engine:lost": "lost ranks leave its pool too small",
    "engine:migration_budget": "the round's migration budget (param migration_budget) is spent",
    "engine:quota": "its class holds its share of the ranks (class ... { share = F })",
}


def run_explain(args: argparse.Namespace) -> int:
    from gfdit.engine.costmodel import CostModel
    from gfdit.engine.decisions import DecisionLog
    from gfdit.engine.simulator import simulate
    from gfdit.engine.workload import Workload, shipped_cost_model, workload_path
    from gfdit.policies import fit_policy, resolve_policy

    try:
        params = parse_params(args.param)
        workload = Workload.load(workload_path(args.workload))
        cost_model = CostModel.load(shipped_cost_model(args.cost_model or "qwen-h20"))
        policy, notes = fit_policy(resolve_policy(args.policy, params), args.policy, params, cost_model, args.gpus)
        for note in notes:
            print(f"gfdit policy explain: note: {note}", file=sys.stderr)
        log = DecisionLog()
        simulate(policy, workload, cost_model, args.gpus, decision_log=log, time_rounds=False)
    except (ValueError, OSError) as error:  # PolicyError, RequestError, CostModelError are ValueErrors
        print(f"gfdit policy explain: {error}", file=sys.stderr)
        return 1 if isinstance(error, PolicyError) else 2
    records = [r for r in log.records or () if r.get("event") in EXPLAINED_EVENTS
               and (args.request is None or r.get("request") == args.request)]
    if args.request is not None and not records:
        print(f"gfdit policy explain: no decisions for request {args.request!r}", file=sys.stderr)
        return 2
    print(f"policy {policy.name} ({policy.revision}) on {args.gpus} GPUs: "
          f"{len(records)} decision(s)")
    sources = SourceLines()
    shown = records if args.limit <= 0 else records[:args.limit]
    try:
        for record in shown:
            print(explain_line(record, sources))
        if len(shown) < len(records):
            print(f"... {len(records) - len(shown)} more (use --limit 0 or --request ID)")
        sys.stdout.flush()
    except BrokenPipeError:  # piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def explain_line(record: dict, sources: "SourceLines") -> str:
    """One decision: time, event, request, what it got, the rule (file:line and its text), the values."""
    event, rid = record.get("event"), record.get("request", "")
    values = dict(record.get("values") or {})
    head = f"t={record.get('t', 0):10.3f}  {event:8s} {rid}"
    if event == "dispatch":
        head += (f" {record.get('stage')} width {record.get('width')} (wanted {record.get('wanted')})"
                 f" on ranks {record.get('ranks')}")
    elif event == "skip":
        head += " " + _skip_text(record.get("rule") or "", values)
    elif event == "chunk":  # written as the task is cut, just before its dispatch
        steps = values.pop("steps", None)  # the rule's answer; the record's is what the task covers
        head += f" next denoise task: {record.get('steps', steps)} step(s)"
    elif record.get("reason"):
        head += f" ({record['reason']})"
    rule = record.get("rule") or ""
    lines = [head, f"      rule {rule}" + (f": {sources.get(rule)}" if sources.get(rule) else "")]
    if record.get("order_key") is not None:
        lines.append("      key  (" + ", ".join(_short(k) for k in record["order_key"]) + ")")
    if values:
        lines.append("      saw  " + ", ".join(f"{k}={_short(v)}" for k, v in values.items()))
    for grown in record.get("grown") or ():
        lines.append(f"      grew {grown}")
    return "\n".join(lines)


def _skip_text(rule: str, values: dict) -> str:
    """Why a candidate got no ranks: what it wanted against what was free, and `on short`."""
    free = values.pop("free", None)
    if rule in ENGINE_SKIPS:
        return f"not placed: {ENGINE_SKIPS[rule]}" + (f" ({free} free)" if free is not None else "")
    wanted, mode = values.pop("wanted", "?"), values.pop("on_short", "?")
    capped = values.pop("capped", None)
    tried = f" (capped to {capped})" if capped is not None else ""
    return f"not placed: wanted width {wanted}{tried}, {'?' if free is None else free} free (on short {mode})"


def _short(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


class SourceLines:
    """The source text of `file:line` rule locations (cached per file)."""

    def __init__(self) -> None:
        self._files: dict[str, list[str]] = {}

    def get(self, rule: str) -> str:
        path, _, line = rule.rpartition(":")
        if not line.isdigit() or not path.endswith(".gfp"):
            return ""
        if path not in self._files:
            try:
                self._files[path] = Path(path).read_text(encoding="utf-8").splitlines()
            except OSError:
                self._files[path] = []
        lines = self._files[path]
        return lines[int(line) - 1].strip() if 0 < int(line) <= len(lines) else ""
