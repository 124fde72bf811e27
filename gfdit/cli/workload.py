"""`gfdit workload`: generate a workload trace from a profile (piecewise-Poisson phases)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gfdit.engine.costmodel import CostModel, CostModelError
from gfdit.engine.request import RequestError
from gfdit.engine.workload import shipped_cost_model
from gfdit.engine.workload_gen import generate, known_profiles, load_profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help=f"a profile name ({', '.join(known_profiles())}) or a profile .json")
    parser.add_argument("--gpus", type=int, required=True, help="ranks the offered load is scaled to")
    parser.add_argument("--load", type=float, default=0.9, help="offered load (work / capacity), default 0.9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output trace JSON ('-' for stdout)")
    parser.add_argument("--cost-model", default=None, help="cost model for t_single: a shipped one (qwen-h20, synthetic) or a directory (default: qwen-h20)")
    parser.add_argument("--duration-scale", type=float, default=1.0, help="stretch every phase by this factor")


def run(args: argparse.Namespace) -> int:
    try:
        cost_model = CostModel.load(shipped_cost_model(args.cost_model or "qwen-h20"))
        trace = generate(load_profile(args.profile), cost_model, args.gpus, args.load, args.seed,
                         args.duration_scale)
    except (RequestError, CostModelError) as exc:
        print(f"gfdit workload: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(trace, indent=1) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            print(f"gfdit workload: cannot write {args.out}: {exc}", file=sys.stderr)
            return 2
        meta = trace["metadata"]
        print(f"wrote {args.out}: {len(trace['requests'])} requests {meta['class_counts']}, "
              f"offered load {meta['offered_load_expected']} (realized {meta['offered_load_realized']})")
    return 0
