#!/usr/bin/env bash
# Every benchmark under bench/, one after another, from the repository root:
#
#   bash bench/run_all.sh            # the full suite (about 20 minutes on 2 idle cores)
#   bash bench/run_all.sh --quick    # each script's --quick (a few minutes; results *_quick.*)
#
# Each script writes its JSON and markdown table (and plots) under bench/results/. A script
# that fails does not stop the others; the summary (script, seconds, exit status) goes to
# bench/results/run_all{,_quick}.md and the exit status is non-zero if any failed. A script
# listed here but not (yet) in bench/ is skipped with a note. tests/test_bench_scripts.py
# checks that every bench/*.py is listed below and that each accepts --quick.
#
# Environment: PYTHON (default python3), with gfdit importable (PYTHONPATH=$PWD or installed).
set -u
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONPATH=${PYTHONPATH:-$PWD}
QUICK=""
case "${1:-}" in
  --quick) QUICK="--quick" ;;
  "") ;;
  *) echo "usage: bash bench/run_all.sh [--quick]" >&2; exit 2 ;;
esac

# script | extra arguments of the full run (the quick run passes --quick alone)
BENCHES=(
  "policies.py|"
  "policy_table.py|--jobs 2"
  "round_plan.py|--jobs 2"
  "tune_speed.py|--jobs 2"
  "load_sweep.py|--processes 2"
  "saturation.py|"
  "sim_speed.py|"
  "scale.py|"
  "dsl_compile.py|"
  "round_time.py|"
  "comm_group_form.py|"
  "comm_collectives.py|"
  "sim_vs_emulated.py|--sizes 4,8,16"
  "control_plane.py|"
  "shadow_cost.py|"
  "worker_overhead.py|"
  "migration.py|"
  "soak.py|"
  "http_gateway.py|"
)
# need a GPU: run by bench/gpu_checks.sh on a GPU machine, not here
GPU_ONLY=("gpu_comm_check.py" "gpu_dit_step.py")

SUFFIX=${QUICK:+_quick}
SUMMARY="bench/results/run_all${SUFFIX}.md"
mkdir -p bench/results
{
  echo "# bash bench/run_all.sh ${QUICK} ($(date -u '+%Y-%m-%d %H:%M UTC'), $(getconf _NPROCESSORS_ONLN) CPUs, load average $(cut -d' ' -f1 /proc/loadavg))"
  echo
  echo "| script | seconds | status |"
  echo "|---|---:|---|"
} > "$SUMMARY"
failed=0
start_all=$(date +%s)
for entry in "${BENCHES[@]}"; do
  script=${entry%%|*}
  extra=${entry#*|}
  if [ ! -f "bench/$script" ]; then
    echo "== $script: not in bench/ yet, skipped"
    echo "| $script | - | skipped (not in bench/) |" >> "$SUMMARY"
    continue
  fi
  if [ -n "$QUICK" ]; then args=(--quick); else read -r -a args <<< "$extra"; fi
  echo "== $script ${args[*]}"
  t0=$(date +%s)
  "$PY" "bench/$script" "${args[@]}"
  rc=$?
  seconds=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then status=ok; else status="FAILED (exit $rc)"; failed=$((failed + 1)); fi
  echo "== $script: $status in ${seconds} s"
  echo "| $script | $seconds | $status |" >> "$SUMMARY"
done
for script in "${GPU_ONLY[@]}"; do
  echo "| $script | - | skipped (needs a GPU: bash bench/gpu_checks.sh) |" >> "$SUMMARY"
done
total=$(( $(date +%s) - start_all ))
printf '\nTotal: %d s; %d failed.\n' "$total" "$failed" >> "$SUMMARY"
cat "$SUMMARY"
[ "$failed" -eq 0 ]
