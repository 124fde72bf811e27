#!/usr/bin/env bash
# The checks CI runs, in order, each failing the run on a violation: ruff (pyflakes F and
# bugbear B rules, configured in pyproject.toml), import-linter (the layering contracts in
# pyproject.toml), then the test suite. Extra arguments go to pytest. VENV=dir picks another venv.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
"$BIN/ruff" check .
"$BIN/lint-imports" --no-cache
"$BIN/python" -m pytest -q "$@"
