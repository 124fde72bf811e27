"""The `--param K=V` option shared by every command that loads a policy."""

from __future__ import annotations

import argparse


def add_param_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--param", action="append", default=[], metavar="K=V",
                        help="override a policy param (repeatable)")


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`["k=v", ...]` -> `{"k": "v"}`; a pair without `=` or a key is a usage error."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--param takes K=V, got {pair!r}")
        params[key.strip()] = value.strip()
    return params
