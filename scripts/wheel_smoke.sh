#!/usr/bin/env bash
# The wheel, as a user gets it: build gfdit's wheel, install it into a fresh venv outside the
# checkout, and from a temporary folder (no PYTHONPATH, the checkout not importable) run
# `gfdit --version`, simulate a shipped policy on a shipped trace, explain one, and a short demo.
# The venv sees the project venv's third-party packages read-only (a path in a .pth file; that
# venv's own .pth files, among them the editable gfdit, are not run), so nothing is downloaded;
# `pip check` proves the wheel's declared dependencies are met. VENV=dir picks the project venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT_PY="$(cd "${VENV:-.venv}/bin" && pwd)/python"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gfdit-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

"$PROJECT_PY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" .
"$PROJECT_PY" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$PROJECT_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$SITE/gfdit-smoke-deps.pth"
"$PY" -m pip install --quiet --no-deps --no-index "$WORK"/dist/gfdit-*.whl
"$PY" -m pip check | grep -i "^gfdit" && { echo "wheel smoke: gfdit's dependencies are not met" >&2; exit 1; }

cd "$WORK"
export -n PYTHONPATH 2>/dev/null || true
unset PYTHONPATH
G="$WORK/venv/bin/gfdit"
version=$("$G" --version)  # (not `tee /dev/stderr`: reopening a log file given as stderr truncates it)
echo "$version"
grep -q "$WORK/venv/" <<< "$version" || { echo "wheel smoke: gfdit was not imported from the wheel" >&2; exit 1; }
"$G" simulate --policy slo_grow --workload short-4gpu --gpus 4 --cost-model qwen-h20 > simulate.txt
grep -q "policy slo_grow" simulate.txt && head -n 3 simulate.txt
"$G" policy explain --policy load_adaptive --workload short-4gpu.json --gpus 4 --limit 2 > explain.txt
grep -q "rule" explain.txt
"$G" demo --quick --quiet --out "$WORK/demo" > demo.txt 2>&1 || { cat demo.txt >&2; exit 1; }
grep -q "static_sp" demo.txt && test -s "$WORK/demo/results.json"
echo "wheel smoke: ok ($(basename "$WORK"/dist/gfdit-*.whl) from $WORK/venv: simulate, explain, demo --quick)"
