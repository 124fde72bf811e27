"""`gfdit demo`, part 2: the same server on emulated GPUs, the fixed pipeline against an elastic policy.

On 2 CPU cores a wider group is slower, so the real-model part keeps every
request at width 1. This part shows the idea where it pays: the same server,
with emulated workers that take the Qwen-Image/H20 cost model's time (scaled
down by `--time-scale`), serves one mixed trace (classes S, M, L of the `short`
profile, deadlines from each class's SLO) twice: under `static_sp` (every
request on one fixed group of 4) and under an elastic policy (`load_adaptive`:
wide when the queue is short, narrow when it is long, regrouping between
chunks). It prints every width change the progress events report, the two
latency/SLO tables side by side, and draws both rank timelines to one PNG.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FIXED_POLICY = "static_sp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("part 2: emulated GPUs")
    group.add_argument("--emulate-gpus", type=int, default=8, help="emulated GPUs (0 skips part 2; default 8)")
    group.add_argument("--elastic-policy", default="load_adaptive", help="the elastic policy shown against static_sp")
    group.add_argument("--load", type=float, default=1.6, help="offered load of the trace (1.0: GPUs just busy)")
    group.add_argument("--trace-span", type=float, default=0.1,
                       help="fraction of the 10-minute `short` profile to replay (default 0.1: about 30 requests)")
    group.add_argument("--time-scale", type=float, default=0.1, help="wall seconds per emulated second")


@dataclass
class Run:
    """One policy's pass over the trace: rows for the table, width changes, the timeline."""

    policy: str
    rows: list = field(default_factory=list)
    changes: list = field(default_factory=list)  # (request, from width, to width, step, steps)
    spans: list = field(default_factory=list)
    wall_s: float = 0.0


def width_changes(events) -> list[tuple[int, int, int, int]]:
    """(from, to, step, steps) for every change of a request's denoise width in its progress events
    (the `running` events: each names the step reached or begun at the width it runs on)."""
    out, last = [], None
    for event in events:
        if event.state != "running" or not event.width:
            continue
        if last is not None and event.width != last:
            out.append((last, event.width, event.step, event.steps))
        last = event.width
    return out


def describe_change(request_id: str, change: tuple[int, int, int, int]) -> str:
    old, new, step, steps = change
    verb = "grew" if new > old else "shrank"
    return f"{request_id:<10} {verb} {old} -> {new} at step {step}/{steps}"


def follow(handle, req, run: Run, say, quiet: bool) -> None:
    """Collect one request's progress and result (on its own thread); print its width changes as they come."""
    from gfdit.client import GfditError
    from gfdit.protocol import Result
    from gfdit.server.summary_table import Finished

    events, told = [], 0
    try:
        for event in handle.progress(timeout=600):
            if isinstance(event, Result):
                run.rows.append(Finished(req.request_class, event.state, event.latency_s, event.deadline_s,
                                         event.slo_met if event.state == "completed" else None))
                return
            events.append(event)
            found = width_changes(events)
            for change in found[told:]:
                run.changes.append((handle.request_id, *change))
                if not quiet:
                    say(f"  {run.policy:<13} {describe_change(handle.request_id, change)}")
            told = len(found)
    except GfditError as exc:  # the server went away: the row says so, the request is not lost silently
        say(f"  {run.policy:<13} {handle.request_id:<10} {exc}")
    run.rows.append(Finished(req.request_class, "lost", 0.0, None, None))


def serve_trace(policy: str, workload, cost_model_dir: Path, args: argparse.Namespace, out: Path, say) -> Run:
    """Start an emulated server under `policy`, replay the trace through the client, collect everything."""
    from gfdit.client import Client
    from gfdit.client.replay import replay
    from gfdit.server import Server, ServerConfig

    run = Run(policy)
    config = ServerConfig(executor="emulated", num_gpus=args.emulate_gpus, cost_model=str(cost_model_dir),
                          policy=policy, address="tcp://127.0.0.1:0", time_scale=args.time_scale,
                          watch_policy=False, decision_log=str(out / f"decisions-{policy}.jsonl"))
    server = Server(config).start_background()
    try:
        say(f"{policy}: serving the trace on {args.emulate_gpus} emulated GPUs")
        threads = []

        def start_following(handle, req) -> None:
            thread = threading.Thread(target=follow, args=(handle, req, run, say, args.quiet), daemon=True)
            thread.start()
            threads.append(thread)

        t0 = time.monotonic()
        with Client(server.address, timeout=60) as client:
            replay(client, workload, args.time_scale, on_submit=start_following)
            for thread in threads:
                thread.join()
        run.wall_s = time.monotonic() - t0
        run.spans = server.spans()
    finally:
        server.stop()
    return run


def prepare(args: argparse.Namespace) -> tuple[dict, object]:
    """The trace (JSON and `Workload`) part 2 will serve; checks the options before anything starts.
    Raises PolicyError / RequestError / CostModelError with a one-line reason."""
    from gfdit.engine.costmodel import CostModel
    from gfdit.engine.workload import Workload, shipped_cost_model
    from gfdit.engine.workload_gen import generate, load_profile
    from gfdit.policies import resolve_policy

    for policy in (FIXED_POLICY, args.elastic_policy):
        resolve_policy(policy)  # an unknown name or a .gfp that does not compile: say so now
    if not args.time_scale > 0:
        raise ValueError(f"--time-scale must be positive, got {args.time_scale}")
    trace = generate(load_profile("short"), CostModel.load(shipped_cost_model("qwen-h20")), args.emulate_gpus,
                     args.load, args.seed, duration_scale=args.trace_span)
    return trace, Workload.from_json(trace)


def run_part(args: argparse.Namespace, out: Path, say, prepared: tuple[dict, object] | None = None) -> int:
    """Part 2 of the demo (see the module doc); returns 0 when every request completed."""
    from gfdit.engine.workload import shipped_cost_model
    from gfdit.server.summary_table import compare_table

    trace, workload = prepared or prepare(args)
    out.mkdir(parents=True, exist_ok=True)
    cost_model_dir = shipped_cost_model("qwen-h20")
    workload.save(out / "trace.json")
    counts = trace["metadata"]["class_counts"]
    say(f"part 2: the same server on {args.emulate_gpus} emulated GPUs (Qwen-Image on H20 cost model, "
        f"{args.time_scale:g} s wall per emulated s): {len(workload.requests)} requests "
        f"({', '.join(f'{n} {c}' for c, n in counts.items())}), offered load {args.load:g}")
    runs = [serve_trace(policy, workload, cost_model_dir, args, out, say)
            for policy in (FIXED_POLICY, args.elastic_policy)]
    print()
    print(f"the same {len(workload.requests)} requests under each policy (latency in emulated seconds):")
    print(compare_table([(r.policy, r.rows) for r in runs]))
    for run in runs:
        moved = sorted({c[0] for c in run.changes})
        print(f"{run.policy}: {len(moved)} of {len(run.rows)} requests changed width while denoising"
              + (f" ({len(run.changes)} changes)" if run.changes else ""))
    (out / "results.json").write_text(json.dumps(
        {r.policy: {"rows": [row.__dict__ for row in r.rows], "width_changes": r.changes, "wall_s": r.wall_s,
                    "spans": [[s.request_id, s.stage, list(s.group), s.start, s.end] for s in r.spans]}
         for r in runs}, indent=1))
    plot = out / "timeline.png"
    try:
        from gfdit.engine.timeline import plot_timelines

        plot_timelines([(f"{r.policy} on {args.emulate_gpus} emulated GPUs", r.spans) for r in runs],
                       args.emulate_gpus, plot)
        print(f"rank timelines (one colour per request, label = request and width): {plot}")
    except RuntimeError as exc:  # no matplotlib
        print(f"rank timeline plot skipped: {exc}")
    print(f"trace, decision logs, results: {out}")
    return 0 if all(r.state == "completed" for run in runs for r in run.rows) else 1
