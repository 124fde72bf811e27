#!/usr/bin/env bash
# Sets up gfdit in ./.venv: torch 2.13.0 first (the CPU build on local disk where present;
# an unpinned torch would pull a multi-GB CUDA build), then gfdit with its model and dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[models,dev]"
