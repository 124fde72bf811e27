"""The `gfdit` command: one subcommand per module, registered in one literal table.

Each module named in COMMANDS defines `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `gfdit simulate` never
imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path

COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("gfdit.cli.simulate", "simulate a policy on a workload trace"),
    "workload": ("gfdit.cli.workload", "generate a workload trace"),
    "policy": ("gfdit.cli.policy", "check, explain or reload .gfp policies"),
    "profile": ("gfdit.cli.profile", "time a model's stages and write a cost model"),
    "serve": ("gfdit.cli.serve", "run the server"),
    "gateway": ("gfdit.cli.gateway", "serve the OpenAI-compatible HTTP API for a running server"),
    "worker": ("gfdit.cli.worker", "run this host's workers for a server on another host (--head)"),
    "generate": ("gfdit.cli.generate", "generate one image through a running server"),
    "record": ("gfdit.cli.record", "record a running server's arrivals as a workload trace (start FILE / stop)"),
    "status": ("gfdit.cli.status", "show a running server's status (--requests: its live requests)"),
    "cancel": ("gfdit.cli.cancel", "cancel requests on a running server"),
    "demo": ("gfdit.cli.demo", "start a server, send a mixed workload, hot-reload its policy"),
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; a caller in the same process (a test, an embedding) gets its SIGPIPE back."""
    if not hasattr(signal, "SIGPIPE"):
        return _main(argv)
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `gfdit simulate | head` ends quietly
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGPIPE, previous)


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="gfdit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    parser.add_argument("-V", "--version", action="store_true", help="print the version and where gfdit is installed")
    if argv and argv[0] in ("-V", "--version"):
        import gfdit

        print(f"gfdit {gfdit.__version__} ({Path(gfdit.__file__).parent})")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; known: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"gfdit {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd_parser)
    return int(module.run(cmd_parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
