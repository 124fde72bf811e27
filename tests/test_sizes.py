"""Project shape: one concept per file, so no source file grows past 500 lines."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 500


def test_no_source_file_over_500_lines():
    too_big = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / "gfdit").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > LIMIT
    }
    assert not too_big, f"files over {LIMIT} lines: {too_big}"


def test_dsl_and_engine_do_not_import_torch():
    offenders = [
        str(p.relative_to(ROOT))
        for pkg in ("dsl", "engine")
        for p in (ROOT / "gfdit" / pkg).rglob("*.py")
        if any(
            line.strip().startswith(("import torch", "from torch"))
            for line in p.read_text().splitlines()
        )
    ]
    assert not offenders, offenders
