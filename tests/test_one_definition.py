"""One definition per concept: the name sets and helpers that used to be written out in
several places are defined once (see each `HOME`), and every other module imports them."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "gfdit").rglob("*.py"), *(ROOT / "bench").glob("*.py")])
NAME_SETS = {  # a literal tuple/list/set of exactly these strings is a second definition
    frozenset({"encode", "denoise", "decode"}): "gfdit/protocol.py",
    frozenset({"sticky", "compact", "lowest"}): "gfdit/engine/policy.py",
    frozenset({"skip", "shrink", "reserve"}): "gfdit/engine/policy.py",
}
PERCENTILE_HOME = "gfdit/engine/metrics.py"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _string_sets(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            yield node.lineno, frozenset(e.value for e in node.elts)
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if all(isinstance(e, ast.Constant) for e in elts):
                yield node.lineno, frozenset(e.value for e in elts)


def test_stage_placement_and_on_short_names_are_defined_once():
    assert len(SOURCES) > 100
    found = {names: set() for names in NAME_SETS}
    for path in SOURCES:
        for line, names in _string_sets(ast.parse(path.read_text())):
            if names in found:
                found[names].add((_rel(path), line))
    for names, home in NAME_SETS.items():
        assert [path for path, _ in found[names]] == [home], (sorted(names), sorted(found[names]))


def _sorts(fn: ast.FunctionDef) -> bool:
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "sorted" for n in ast.walk(fn))


def test_one_percentile_function():
    """A function named like a percentile that sorts its values is a percentile definition."""
    defined = [f"{_rel(path)}:{node.lineno} {node.name}" for path in SOURCES
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and _sorts(node)
               and any(word in node.name for word in ("pct", "percentile", "quantile"))]
    assert [d.split(":")[0] for d in defined] == [PERCENTILE_HOME], defined


def test_one_cost_model_writer():
    """Only gfdit/costmodel_file.py builds a layout document (a dict with a "parallelism" key)."""
    writers = {_rel(path) for path in SOURCES for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Dict)
               and any(isinstance(k, ast.Constant) and k.value == "parallelism" for k in node.keys)}
    assert writers == {"gfdit/costmodel_file.py"}, writers
