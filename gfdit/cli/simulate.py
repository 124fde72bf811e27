"""`gfdit simulate`: run a policy over a workload trace on simulated GPUs and print the metrics."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from gfdit.cli.params import add_param_option, parse_params
from gfdit.engine.costmodel import CostModel, CostModelError
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.policy_check import PolicyError
from gfdit.policies import DEFAULT_POLICY, fit_policy, resolve_policy
from gfdit.engine.report import failure_summary, metrics_table
from gfdit.engine.request import RequestError, State
from gfdit.engine.simulator import simulate
from gfdit.engine.workload import Workload, shipped_cost_model, workload_path

DEFAULT_WORKLOAD = "short-4gpu"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default=DEFAULT_POLICY,
                        help="a shipped policy name (slo_grow), py:NAME (a built-in) or a .gfp file "
                             "(default: the shipped default.gfp)")
    add_param_option(parser)
    parser.add_argument("--workload", default=DEFAULT_WORKLOAD, help="trace JSON, or a shipped trace name")
    parser.add_argument("--cost-model", default=None, help="a shipped cost model (qwen-h20, synthetic) or a cost-model directory (default: qwen-h20)")
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--ranks-per-node", type=int, default=None, help="ranks per node (default: all on one)")
    parser.add_argument("--json", metavar="OUT", help='write {"overall": ..., "classes": ...} here')
    parser.add_argument("--trace", metavar="OUT.json", help="write a Chrome trace, one lane per rank")
    parser.add_argument("--plot", metavar="OUT.png", help="draw the rank timeline (needs matplotlib)")
    parser.add_argument("--decision-log", metavar="OUT.jsonl", help="write every decision as a JSON line")
    parser.add_argument("--migration-gbps", type=float, default=None,
                        help="state-migration bandwidth in GB/s (default: the cost model's, else 25)")
    parser.add_argument("--migration-fixed-ms", type=float, default=None,
                        help="fixed cost per migration round in ms (default: the cost model's, else 1)")


def _workload(spec: str) -> Workload:
    return Workload.load(workload_path(spec))


def _cost_model(args: argparse.Namespace) -> CostModel:
    cost_model = CostModel.load(shipped_cost_model(args.cost_model or "qwen-h20"))
    changes = {}
    if args.migration_gbps is not None:
        if args.migration_gbps <= 0:
            raise ValueError("--migration-gbps must be positive")
        changes["bandwidth_Bps"] = args.migration_gbps * 1e9
    if args.migration_fixed_ms is not None:
        if args.migration_fixed_ms < 0:
            raise ValueError("--migration-fixed-ms must be >= 0")
        changes["fixed_s"] = args.migration_fixed_ms / 1000.0
    if changes:
        cost_model.migration = replace(cost_model.migration, **changes)
    return cost_model


def run(args: argparse.Namespace) -> int:
    log = None
    try:
        params = parse_params(args.param)
        workload = _workload(args.workload)
        cost_model = _cost_model(args)
        policy, notes = fit_policy(resolve_policy(args.policy, params), args.policy, params, cost_model, args.gpus)
        for note in notes:
            print(f"gfdit simulate: note: {note}", file=sys.stderr)
        log = DecisionLog(args.decision_log) if args.decision_log else None
        result = simulate(policy, workload, cost_model, args.gpus, ranks_per_node=args.ranks_per_node,
                          decision_log=log, record_spans=bool(args.trace or args.plot))
    except (PolicyError, RequestError, CostModelError, ValueError, OSError) as exc:
        print(f"gfdit simulate: {exc}", file=sys.stderr)
        return 2
    finally:
        if log is not None:
            log.close()
    print(f"policy {policy.name} ({policy.revision}) on {args.gpus} GPUs, {len(workload.requests)} requests, "
          f"cost model {Path(cost_model.source).name}; simulated {result.end_time:.1f} s in {result.wall_s:.2f} s")
    print(metrics_table(result.metrics))
    problems = failure_summary(result.outcomes, result.unfinished, result.rule_errors,
                               result.rule_error_messages)
    for line in problems:
        print(line)
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(result.metrics, indent=2, default=str) + "\n")
        if args.trace:
            from gfdit.engine.timeline import write_chrome_trace
            write_chrome_trace(result.spans or [], args.gpus, args.trace)
        if args.plot:
            from gfdit.engine.timeline import plot_timeline
            plot_timeline(result.spans or [], args.gpus, args.plot, f"{policy.name} on {args.gpus} GPUs")
    except (RuntimeError, OSError) as exc:  # no matplotlib, or an output path that cannot be written
        print(f"gfdit simulate: {exc}", file=sys.stderr)
        return 2
    return 1 if _went_wrong(result) else 0


def _went_wrong(result) -> bool:
    """A rule failed, a request failed, or one never finished: exit 1 (rejections are decisions)."""
    failed = any(o.state == State.FAILED.value for o in result.outcomes)
    return bool(result.rule_errors or failed or result.unfinished)
