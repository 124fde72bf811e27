#!/usr/bin/env bash
# The checks CI runs, in order, each failing the run on a violation: ruff (pyflakes F and
# bugbear B rules, configured in pyproject.toml), import-linter (the layering contracts in
# pyproject.toml), the wheel smoke (scripts/wheel_smoke.sh: the built wheel in a fresh venv
# outside the checkout; about a minute), then the test suite. Extra arguments go to pytest.
# VENV=dir picks another venv; SKIP_WHEEL_SMOKE=1 skips the smoke (local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
"$BIN/ruff" check .
"$BIN/lint-imports" --no-cache
if [ "${SKIP_WHEEL_SMOKE:-0}" != 1 ]; then
    VENV="${VENV:-.venv}" bash scripts/wheel_smoke.sh
fi
"$BIN/python" -m pytest -q "$@"
