"""bench/run_all.sh runs every benchmark, and every benchmark has a quick mode.

Running `run_all.sh --quick` itself takes minutes, too slow for CI; instead: every
bench/*.py is listed in run_all.sh (so a new benchmark cannot be forgotten), and each
one it runs answers `--help` with a `--quick` option.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ALL = ROOT / "bench" / "run_all.sh"


def listed(array: str) -> list[str]:
    """The script names in one bash array of run_all.sh (entries "name.py|args" or "name.py")."""
    body = re.search(rf"^{array}=\((.*?)\)$", RUN_ALL.read_text(), re.S | re.M)
    assert body, f"run_all.sh has no {array}=( ... ) array"
    return re.findall(r'"([\w.-]+\.py)[|"]', body.group(1))


def test_run_all_lists_every_bench_script():
    scripts = {p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_")}
    named = set(listed("BENCHES")) | set(listed("GPU_ONLY"))
    assert scripts - named == set(), f"bench scripts run_all.sh does not list: {sorted(scripts - named)}"


def test_every_benchmark_run_all_runs_accepts_quick():
    scripts = [s for s in listed("BENCHES") if (ROOT / "bench" / s).is_file()]
    assert len(scripts) >= 10
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = {s: subprocess.Popen([sys.executable, str(ROOT / "bench" / s), "--help"], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for s in scripts}
    missing = {}
    for script, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0 or "--quick" not in out:
            missing[script] = (proc.returncode, out[-300:])
    assert not missing, f"scripts without a working --quick in --help: {missing}"


# The simulation-only benchmarks whose quick mode takes about a second: run for real, so a bench that
# has drifted from the code it measures fails here, not in the next `run_all.sh` (round_time.py did).
CHEAP = ["policies.py", "saturation.py", "sim_speed.py", "dsl_compile.py", "round_time.py"]


def test_the_cheap_benchmarks_run_in_quick_mode():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    failed = {}
    for script in CHEAP:
        run = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            failed[script] = run.stderr[-600:]
    assert not failed, failed
