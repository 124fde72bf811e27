"""`gfdit policy tune`: simulate a policy's params over a grid (or a random sample) on traces.

    gfdit policy tune POLICY --workload W [W ...] --gpus N --grid chunk=1,2,5 --grid penalty=2,4,8
        [--random K] [--seed S] [--param K=V] [--objective slo|mean|p95|p99|goodput] [--jobs J]
        [--cost-model DIR] [--write-params FILE] [--write-gfp FILE] [--json OUT]

Prints one line per setting (SLO attainment, mean / p95 / p99 latency,
goodput), `*` on the Pareto front (SLO attainment against mean latency),
`>` on the setting chosen by the objective, which `--write-params` writes as
`--param K=V` lines and `--write-gfp` as a copy of the policy with those
values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gfdit.cli.params import add_param_option, parse_params
from gfdit.dsl.diagnostics import PolicyError
from gfdit.dsl.load import compile_policy
from gfdit.engine.costmodel import CostModelError
from gfdit.engine.request import RequestError
from gfdit.engine.workload import shipped_cost_model, workload_path
from gfdit.policies import policy_path
from gfdit.tuning import OBJECTIVES, Setting, best, tune, with_params


def add_tune_arguments(sub) -> None:
    tuner = sub.add_parser("tune", help="simulate a grid of param settings on traces, in parallel")
    tuner.add_argument("policy", help="a .gfp file or a shipped policy name")
    tuner.add_argument("--workload", nargs="+", required=True, help="trace JSON files or shipped trace names")
    tuner.add_argument("--gpus", type=int, required=True)
    tuner.add_argument("--cost-model", default=None, help="cost-model directory (default: the shipped qwen-h20)")
    tuner.add_argument("--grid", action="append", default=[], metavar="K=V1,V2,...",
                       help="a param and its values (repeatable; sets are written {1,2}|{1,2,4})")
    add_param_option(tuner)
    tuner.add_argument("--random", type=int, default=None, metavar="K", help="K settings drawn from the grid")
    tuner.add_argument("--seed", type=int, default=0, help="seed of --random")
    tuner.add_argument("--objective", choices=sorted(OBJECTIVES), default="slo",
                       help="what the chosen setting does best (default: SLO attainment)")
    tuner.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="simulation processes")
    tuner.add_argument("--write-params", metavar="FILE", help="write the chosen setting as --param lines")
    tuner.add_argument("--write-gfp", metavar="FILE", help="write the policy with the chosen values")
    tuner.add_argument("--json", metavar="OUT", help="write every setting and its metrics as JSON")


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`["chunk=1,2,5", "widths={1,2}|{1,2,4}"]` -> `{"chunk": ["1", "2", "5"], "widths": [...]}`."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        sep_char = "|" if "{" in values else ","
        parts = [v.strip() for v in values.split(sep_char) if v.strip()]
        if not sep or not key.strip() or not parts:
            raise SystemExit(f"--grid takes K=V1,V2,..., got {item!r}")
        if key.strip() in grid:
            raise SystemExit(f"--grid names {key.strip()!r} twice")
        grid[key.strip()] = parts
    if not grid:
        raise SystemExit("gfdit policy tune: give at least one --grid K=V1,V2,...")
    return grid


def run_tune(args: argparse.Namespace) -> int:
    grid, fixed = parse_grid(args.grid), parse_params(args.param)
    try:
        workloads = [str(workload_path(w)) for w in args.workload]
        cost_dir = str(shipped_cost_model(args.cost_model or "qwen-h20"))
        t0 = time.perf_counter()
        settings = tune(args.policy, grid, workloads, cost_dir, args.gpus, fixed, args.random, args.seed,
                        max(1, args.jobs))
    except PolicyError as exc:
        print(f"gfdit policy tune: {exc}", file=sys.stderr)
        return 2
    except (CostModelError, RequestError, OSError, ValueError) as exc:
        print(f"gfdit policy tune: {exc}", file=sys.stderr)
        return 2
    chosen = best(settings, args.objective)
    print(_table(settings, chosen, list(grid)))
    print(f"{len(settings)} settings x {len(workloads)} trace(s) on {args.gpus} GPUs in "
          f"{time.perf_counter() - t0:.1f} s ({max(1, args.jobs)} processes); chosen by {args.objective}: "
          + " ".join(f"{k}={v}" for k, v in chosen.params.items()))
    return _write(args, settings, chosen)


def _table(settings: list[Setting], chosen: Setting, names: list[str]) -> str:
    rows = [["", *names, "SLO", "mean s", "p95 s", "p99 s", "goodput/min"]]
    for s in sorted(settings, key=lambda s: (-s.metrics["slo_attainment"], s.metrics["mean_latency_s"])):
        m = s.metrics
        mark = (">" if s is chosen else " ") + ("*" if s.pareto else " ")
        rows.append([mark, *(s.params[n] for n in names), f"{m['slo_attainment']:.3f}",
                     f"{m['mean_latency_s']:.1f}", f"{m['p95_latency_s']:.1f}", f"{m['p99_latency_s']:.1f}",
                     f"{m['goodput_rpm']:.2f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines + ["(* on the Pareto front of SLO attainment and mean latency; > chosen)"])


def _write(args: argparse.Namespace, settings: list[Setting], chosen: Setting) -> int:
    if args.write_params:
        Path(args.write_params).write_text("".join(f"--param {k}={v}\n" for k, v in chosen.params.items()))
        print(f"wrote {args.write_params}")
    if args.write_gfp:
        source = policy_path(args.policy)
        if source is None:
            print(f"gfdit policy tune: {args.policy} is a built-in policy: there is no .gfp to write",
                  file=sys.stderr)
            return 2
        note = "# tuned: gfdit policy tune " + " ".join(f"{k}={v}" for k, v in chosen.params.items()) + "\n"
        text = note + with_params(source.read_text(), chosen.params)
        try:
            compile_policy(text, args.write_gfp)  # the written file must check
        except PolicyError as exc:
            print(f"gfdit policy tune: the tuned policy does not check:\n{exc}", file=sys.stderr)
            return 1
        Path(args.write_gfp).write_text(text)
        print(f"wrote {args.write_gfp}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"params": s.params, "pareto": s.pareto, "chosen": s is chosen, **s.metrics} for s in settings],
            indent=1) + "\n")
    return 0
