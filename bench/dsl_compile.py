"""Compile time of the shipped `.gfp` policies (target: the largest well under 50 ms).

Writes bench/results/dsl_compile.json and bench/results/dsl_compile.md. Run:

    python3 bench/dsl_compile.py [--repeats 50]

`cold` is the first compile in this process (it builds the LALR tables from
grammar.lark once); `warm` is the median of `--repeats` further compiles
(parse, every check pass, closure compilation). Both are wall-clock times on
this machine; the largest policy (by characters) is the headline figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
EXTRA = ROOT / "tests" / "dsl" / "cases" / "ok_every_form.gfp"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="5 repeats (dsl_compile_quick.*)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 5)
    stem = "dsl_compile_quick" if args.quick else "dsl_compile"
    t0 = time.perf_counter()
    from gfdit.dsl.load import compile_policy  # noqa: PLC0415 -- import time is part of "cold"

    files = sorted((ROOT / "gfdit" / "data" / "policies").glob("*.gfp")) + ([EXTRA] if EXTRA.exists() else [])
    texts = {p: p.read_text() for p in files}
    largest = max(files, key=lambda p: len(texts[p]))
    compile_policy(texts[largest], str(largest))
    cold_ms = (time.perf_counter() - t0) * 1e3
    rows = []
    for path in files:
        samples = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            compile_policy(texts[path], str(path))
            samples.append(time.perf_counter() - t)
        rows.append({"policy": str(path.relative_to(ROOT)), "chars": len(texts[path]),
                     "lines": len(texts[path].splitlines()),
                     "median_ms": statistics.median(samples) * 1e3, "max_ms": max(samples) * 1e3})
        print(f"{rows[-1]['policy']:45s} {rows[-1]['chars']:5d} chars  median {rows[-1]['median_ms']:6.2f} ms"
              f"  max {rows[-1]['max_ms']:6.2f} ms")
    head = next(r for r in rows if r["policy"] == str(largest.relative_to(ROOT)))
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "repeats": args.repeats,
            "python": platform.python_version(), "loadavg": round(os.getloadavg()[0], 2),
            "largest": head["policy"], "largest_median_ms": head["median_ms"],
            "cold_first_compile_ms": cold_ms, "target_ms": 50}
    print(f"largest: {head['policy']} median {head['median_ms']:.2f} ms; cold first compile "
          f"(import + LALR tables + compile) {cold_ms:.1f} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# .gfp compile time ({meta['when']})", "",
             f"Median of {args.repeats} compiles (parse + checks + closures), Python {meta['python']}, "
             f"load average {meta['loadavg']}. Cold first compile (import, LALR tables, compile): "
             f"{cold_ms:.1f} ms.", "", "| policy | chars | lines | median (ms) | max (ms) |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['policy']} | {r['chars']} | {r['lines']} | {r['median_ms']:.2f} | {r['max_ms']:.2f} |"
              for r in rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
