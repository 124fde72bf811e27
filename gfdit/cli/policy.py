"""`gfdit policy`: check .gfp files, explain a policy's decisions on a trace, reload a server's policy.

    gfdit policy check FILE... [--param K=V] [--json] [--cost-model DIR|none] [--gpus N]
    gfdit policy explain --policy P --workload W --cost-model DIR --gpus N [--request ID]
    gfdit policy reload FILE [--address ADDR] [--if-revision R] [--token T] [--timeout S]
    gfdit policy tune POLICY --workload W... --gpus N --grid K=V1,V2 ... (see gfdit/cli/tune.py)
    gfdit policy diff A B --workload W [--gpus N] [--first 5] (see gfdit/cli/diff.py)
    gfdit policy shadow FILE | --clear; gfdit policy promote [--if-revision R] (see gfdit/cli/shadow.py)
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from gfdit.cli.diff import add_diff_arguments, run_diff
from gfdit.cli.shadow import add_shadow_arguments, run_promote, run_shadow
from gfdit.cli.explain import run_explain
from gfdit.cli.params import add_param_option, parse_params
from gfdit.cli.token import add_token_arguments
from gfdit.cli.tune import add_tune_arguments, run_tune
from gfdit.dsl.check import check
from gfdit.dsl.diagnostics import PolicyError
from gfdit.dsl.load import read_policy_text, revision_of

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    checker = sub.add_parser("check", help="check .gfp files; exit 1 on any error")
    checker.add_argument("files", nargs="+", metavar="FILE")
    add_param_option(checker)
    checker.add_argument("--json", action="store_true", help="diagnostics as JSON lines")
    checker.add_argument("--cost-model", default=None,
                         help="cost model the rules are probed on: a shipped name or a directory (default: the shipped "
                              "qwen-h20; `none`: check the language only)")
    checker.add_argument("--gpus", type=int, default=None,
                         help="GPUs of the probed rounds (default: the policy's largest width)")
    explain = sub.add_parser("explain", help="why each decision was taken, on a simulated trace")
    explain.add_argument("--policy", required=True, help="a shipped policy name, py:NAME (a built-in) or a .gfp file")
    add_param_option(explain)
    explain.add_argument("--workload", required=True, help="trace JSON or a shipped trace name")
    explain.add_argument("--cost-model", default=None, help="a shipped cost model (qwen-h20, synthetic) or a directory (default: qwen-h20)")
    explain.add_argument("--gpus", type=int, required=True)
    explain.add_argument("--request", default=None, help="only this request's decisions")
    explain.add_argument("--limit", type=int, default=200, help="at most this many lines (0: all)")
    reload = sub.add_parser("reload", help="send a policy file to a running server")
    reload.add_argument("file", metavar="FILE")
    reload.add_argument("--address", default=None, help="the server's address")
    reload.add_argument("--if-revision", default=None, help="refused unless this revision is running")
    add_token_arguments(reload)
    reload.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply")
    add_tune_arguments(sub)
    add_diff_arguments(sub)
    add_shadow_arguments(sub)  # shadow, promote: cli/shadow.py


def run(args: argparse.Namespace) -> int:
    actions = {"check": run_check, "explain": run_explain, "reload": run_reload,  # explain: cli/explain.py
               "tune": run_tune, "diff": run_diff,  # cli/tune.py, cli/diff.py
               "shadow": run_shadow, "promote": run_promote}  # cli/shadow.py
    return actions[args.action](args)


def run_check(args: argparse.Namespace) -> int:
    params, failed = parse_params(args.param), 0
    try:
        cost_model = _probe_cost_model(args.cost_model)
    except ValueError as error:  # CostModelError, RequestError (no such shipped model)
        print(f"gfdit policy check: {error}", file=sys.stderr)
        return 2
    for name in args.files:
        try:
            text = read_policy_text(name)
        except PolicyError as error:
            diagnostics, ok = error.diagnostics, False
        else:
            checked = check(text, name, params)
            diagnostics, ok = checked.diagnostics, checked.ok
            if ok and cost_model is not None:
                diagnostics = _probed(text, name, params, cost_model, args.gpus)
                ok = not any(d.severity == "error" for d in diagnostics)
        failed += not ok
        for d in diagnostics:
            print(json.dumps(d.to_dict()) if args.json else d.render(),
                  file=sys.stdout if args.json else sys.stderr)
        if not args.json:
            errors = sum(d.severity == "error" for d in diagnostics)
            warnings = len(diagnostics) - errors
            status = f"ok, revision {revision_of(text, params)}" if ok else f"{errors} error(s)"
            print(f"{name}: {status}" + (f", {warnings} warning(s)" if warnings else ""))
    return 1 if failed else 0


def _probe_cost_model(option: str | None):
    """The cost model `policy check` probes rules on: the option's directory, the shipped default, or
    None for `--cost-model none`."""
    if option is not None and option.lower() == "none":
        return None
    from gfdit.engine.costmodel import CostModel
    from gfdit.engine.workload import shipped_cost_model

    return CostModel.load(shipped_cost_model(option or "qwen-h20"))


def _probed(text: str, name: str, params: dict[str, str], cost_model, gpus: int | None) -> list:
    """Every diagnostic of a policy that checks: its warnings and what probing its rules finds."""
    from gfdit.dsl.load import compile_policy
    from gfdit.dsl.probe import probe

    policy = compile_policy(text, name, params)
    found = probe(policy, cost_model, gpus or policy.widths[-1])
    return sorted([*policy.warnings, *found], key=lambda d: (d.span.line, d.span.col, d.code))


def run_reload(args: argparse.Namespace) -> int:
    """Delegates to the server client (`gfdit.client.reload_policy_cli`), when it is installed."""
    try:
        client = importlib.import_module("gfdit.client")
    except ImportError:
        client = None
    reload_cli = getattr(client, "reload_policy_cli", None)
    if reload_cli is None:
        print("gfdit policy reload: server client not available", file=sys.stderr)
        return 2
    return int(reload_cli(args) or 0)
