"""`gfdit demo`: the main job, end to end on this machine.

Starts a server on the built-in `tiny` model with 4 CPU workers and a shipped
elastic policy (a copy in the output folder, so the edits never touch the
repository), measures the model so deadlines are realistic, sends a mixed
workload through the Python client with live progress, edits the policy file
mid-run (a broken edit, refused with diagnostics; then a good one, swapped in),
and ends with the images in a folder and a latency/SLO table per class.
Then part 2 (`gfdit.cli.demo_elastic`): the same server on emulated GPUs, the
fixed pipeline against an elastic policy, where requests grow and shrink.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from gfdit.cli import demo_elastic
from gfdit.engine.costmodel import CostModelError
from gfdit.engine.policy_check import PolicyError
from gfdit.engine.request import RequestError
from gfdit.resources import policy_file as shipped_policy_file


QUICK = {"num_gpus": 4, "requests": 4, "size": 64, "emulate_gpus": 4, "trace_span": 0.03}  # demo --quick


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="gfdit-demo-out", help="folder for images and results (default ./gfdit-demo-out)")
    parser.add_argument("--policy", default="edf_best_fit",
                        help="a shipped policy name or a .gfp file, copied into --out and edited there")
    parser.add_argument("--num-gpus", type=int, default=4, help="CPU worker processes")
    parser.add_argument("--requests", type=int, default=12, help="requests in the workload")
    parser.add_argument("--gap", type=float, default=0.3, help="mean seconds between arrivals")
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no per-event progress lines")
    parser.add_argument("--emulated-only", action="store_true", help="run only part 2 (emulated GPUs)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (under a minute on 2 cores): " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    demo_elastic.add_arguments(parser)


class Printer:
    """Serialises console lines from the per-request threads, stamped with demo time."""

    def __init__(self):
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)


def describe(event) -> str:
    if event.state == "running":
        return f"running step {event.step}/{event.steps} at width {event.width} on ranks {list(event.ranks)}"
    if event.state == "migrated":
        return f"migrated {list(event.from_ranks)} -> {list(event.ranks)}"
    return event.state + (f" ({event.message})" if event.message else "")


def follow(handle, req, out: Path, say, quiet: bool, rows: list, widths: dict) -> None:
    """Print a request's progress, save its image, record its row (runs on its own thread)."""
    from gfdit.client import GfditError
    from gfdit.server.summary_table import Finished

    tag = f"{req.request_id:<12}"
    try:
        for event in handle.progress():
            if hasattr(event, "step"):
                if event.width:
                    widths.setdefault(req.request_id, []).append(event.width)
                if not quiet:
                    say(f"{tag} {describe(event)}")
        result = handle.result()
    except GfditError as exc:  # failed, cancelled, or the server went away: the row says so
        say(f"{tag} {exc}")
        final = handle._final[0] if handle._final else None
        rows.append(Finished(req.request_class, final.state if final else "lost",
                             final.latency_s if final else 0.0, final.deadline_s if final else None, None))
        return
    paths = result.save(out / "images")
    slo = "met" if result.slo_met else "missed"
    say(f"{tag} done in {result.latency_s:.2f}s (deadline {result.deadline_s:.2f}s, SLO {slo}) -> {paths[0]}")
    rows.append(Finished(req.request_class, "completed", result.latency_s, result.deadline_s, result.slo_met))


def wait_reload(client, field: str, before, timeout: float = 20.0) -> dict:
    """Poll status until `field` of the reload counters (or the revision) changes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status()
        now = status["revision"] if field == "revision" else status["reloads"][field]
        if now != before:
            return status
        time.sleep(0.1)
    raise TimeoutError(f"the server did not react to the policy edit within {timeout:.0f}s")


def edit_policy(client, policy_file: Path, say) -> None:
    """The hot-reload act: a broken edit (refused), then a good one (swapped in)."""
    from gfdit.server.demo_workload import broken_edit, good_edit

    original = policy_file.read_text()
    status = client.status()
    say(f"policy edit 1: a hasty rule with a typo -> {policy_file.name}")
    policy_file.write_text(broken_edit(original))
    status = wait_reload(client, "refused", status["reloads"]["refused"])
    last = status["reloads"]["last"]
    say(f"  refused ({last['message']}); revision {status['revision']} keeps running. Diagnostics:")
    for diagnostic in last.get("diagnostics", []):
        for line in diagnostic.splitlines():
            print(f"           {line}")
    before = status["revision"]
    say("policy edit 2: shorter chunks (param chunk = 2) -> more rescheduling points")
    policy_file.write_text(good_edit(original))
    status = wait_reload(client, "revision", before)
    say(f"  swapped in: revision {before} -> {status['revision']} (from the next round; no request paused)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("gfdit.server.loop").setLevel(logging.CRITICAL)  # the demo prints reload outcomes itself
    if args.quick:
        vars(args).update(QUICK)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:  # part 2's options (and part 1's policy) are checked before part 1 starts
        args.policy_source = policy_source(args.policy)
        if args.emulate_gpus < 0 or (args.emulated_only and args.emulate_gpus == 0):
            raise ValueError(f"--emulate-gpus must be >= 1 for part 2 (0 skips it), got {args.emulate_gpus}")
        prepared = demo_elastic.prepare(args) if args.emulate_gpus > 0 else None
    except (PolicyError, RequestError, CostModelError, ValueError) as exc:
        print(f"gfdit demo: {exc}", file=sys.stderr)
        return 2
    say = Printer()
    code = 0 if args.emulated_only else real_part(args, out, say)
    if prepared is not None:
        print()
        code = max(code, demo_elastic.run_part(args, out / "emulated", say, prepared))
    return code


def policy_source(spec: str) -> Path:
    """The .gfp file the demo copies: a path, or a shipped policy's file."""
    path = Path(spec) if spec.endswith(".gfp") else shipped_policy_file(spec)
    if path is None or not path.is_file():
        raise ValueError(f"--policy {spec}: no such .gfp file or shipped policy")
    return path


def real_part(args: argparse.Namespace, out: Path, say: Printer) -> int:
    """Part 1: the tiny model on CPU workers, live progress, the hot-reload act."""
    from gfdit.server import Server, ServerConfig

    policy_file = out / "policy.gfp"
    shutil.copyfile(args.policy_source, policy_file)
    say(f"starting a server: tiny model on {args.num_gpus} CPU workers, policy {policy_file} "
        "(a copy: the edits stay out of the repository)")
    config = ServerConfig(model="tiny", num_gpus=args.num_gpus, policy=str(policy_file),
                          address="tcp://127.0.0.1:0", metrics_port=0, calibrate_shape=(args.size, args.size),
                          decision_log=str(out / "decisions.jsonl"))
    server = Server(config).start_background()
    try:
        return drive(server, args, out, policy_file, say)
    finally:
        say("stopping the server")
        server.stop()


def drive(server, args: argparse.Namespace, out: Path, policy_file: Path, say: Printer) -> int:
    """Send the workload, edit the policy on the way, print the table."""
    from gfdit.client import Client
    from gfdit.server.calibrate import cpu_contention, write_calibrated
    from gfdit.server.demo_workload import mixed_workload
    from gfdit.server.summary_table import class_table

    write_calibrated(server.cost_model, out / "costmodel")
    layouts = server.cost_model.layouts
    steps_ms = {k: round(v["dit_step_chunk"].c, 1) for k, v in layouts.items()}
    factor = cpu_contention(args.num_gpus, "cpu")
    say(f"ready on {server.address}, Prometheus on http://127.0.0.1:{server.metrics_port}/metrics")
    say(f"cost model measured on the workers (x{factor:g}: {args.num_gpus} workers share "
        f"{os.cpu_count()} cores): denoise step by width {steps_ms} ms -> {out / 'costmodel'}")
    workload = mixed_workload(args.requests, args.gap, args.seed)
    rows, widths, threads = [], {}, []
    edit_at = len(workload) // 3
    with Client(server.address) as client:
        t0 = time.monotonic()
        for i, req in enumerate(workload):
            time.sleep(max(0.0, t0 + req.at_s - time.monotonic()))
            handle = client.submit(req.prompt, height=args.size, width=args.size, steps=req.steps, seed=req.seed,
                                   request_class=req.request_class, request_id=req.request_id)
            say(f"{req.request_id:<12} submitted: class {req.request_class}, {req.steps} steps")
            thread = threading.Thread(target=follow, args=(handle, req, out, say, args.quiet, rows, widths),
                                      daemon=True)
            thread.start()
            threads.append(thread)
            if i == edit_at:
                edit_policy(client, policy_file, say)
        for thread in threads:
            thread.join()
        metrics = client.metrics()
    table = class_table(rows)
    (out / "results.json").write_text(json.dumps(
        {"rows": [r.__dict__ for r in rows], "widths": widths, "server_metrics": metrics["overall"]}, indent=2))
    print()
    print(table)
    print(f"\nimages: {out / 'images'}   decision log: {out / 'decisions.jsonl'}   results: {out / 'results.json'}")
    return 0 if all(r.state == "completed" for r in rows) else 1

