"""`resolve_policy`: turn a `--policy` argument into a Policy.

Resolution, in order:
1. `spec` is a path ending in `.gfp`, or names `policies/<spec>.gfp` under the
   repository root (the parent of the gfdit package): if the policy language
   is installed (`gfdit.dsl.load.load_policy(path, params)`), it compiles
   that file;
2. otherwise a built-in Python policy of that name (for a `.gfp` path, its
   file stem), called with `params` as keyword arguments;
3. otherwise a `PolicyError` listing every known name.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Callable, Mapping

from .builtin_policies import BUILTINS
from .policy import Policy
from .policy_check import PolicyError

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"


def _dsl_loader() -> Callable[[str, Mapping[str, object]], Policy] | None:
    try:
        module = importlib.import_module("gfdit.dsl.load")
    except ImportError:
        return None
    return getattr(module, "load_policy", None)


def known_policies() -> list[str]:
    files = {p.stem for p in POLICY_DIR.glob("*.gfp")} if POLICY_DIR.is_dir() else set()
    return sorted(files | set(BUILTINS))


def resolve_policy(spec: str, params: Mapping[str, object] | None = None) -> Policy:
    """The policy named by `spec` (a .gfp path, a shipped policy name, or a built-in)."""
    params = dict(params or {})
    path = Path(spec)
    gfp = path if spec.endswith(".gfp") else POLICY_DIR / f"{spec}.gfp"
    name = path.stem if spec.endswith(".gfp") else spec
    if gfp.is_file():
        loader = _dsl_loader()
        if loader is not None:
            return loader(str(gfp), params)
    elif spec.endswith(".gfp") and name not in BUILTINS:
        raise PolicyError(f"policy file not found: {spec}")
    factory = BUILTINS.get(name)
    if factory is None:
        raise PolicyError(f"unknown policy {spec!r}; known: {', '.join(known_policies())}")
    accepted = set(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise PolicyError(f"policy {name!r} has no parameters {unknown}; it takes {sorted(accepted)}")
    return factory(**{k: coerce_param(v) for k, v in params.items()})


def coerce_param(value: object) -> object:
    """A command-line parameter value: `all` -> None, `{1,2,4}` or `1,2,4` -> a tuple, numbers -> numbers."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "all":
        return None
    if text.startswith("{") or "," in text:
        return tuple(int(part) for part in text.strip("{}").split(",") if part.strip())
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
