"""`resolve_policy`: turn a `--policy` argument into a Policy.

It sits above both the engine (which runs a `Policy`) and the policy language
(which compiles `.gfp` files to one), so neither has to know the other.
Resolution, in order:
1. `spec` is a path ending in `.gfp`, or names `policies/<spec>.gfp` under the
   repository root (the parent of the gfdit package): `gfdit.dsl.load.load_policy`
   compiles that file with `params`;
2. otherwise a built-in Python policy of that name (`builtin_policy`), called
   with `params` as keyword arguments;
3. otherwise a `PolicyError` listing every known name.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Mapping

from gfdit.dsl.load import load_policy
from gfdit.engine.builtin_policies import BUILTINS
from gfdit.engine.policy import Policy
from gfdit.engine.policy_check import PolicyError

POLICY_DIR = Path(__file__).resolve().parents[1] / "policies"


def known_policies() -> list[str]:
    files = {p.stem for p in POLICY_DIR.glob("*.gfp")} if POLICY_DIR.is_dir() else set()
    return sorted(files | set(BUILTINS))


def resolve_policy(spec: str, params: Mapping[str, object] | None = None) -> Policy:
    """The policy named by `spec` (a .gfp path, a shipped policy name, or a built-in)."""
    params = dict(params or {})
    is_path = spec.endswith(".gfp")
    gfp = Path(spec) if is_path else POLICY_DIR / f"{spec}.gfp"
    if gfp.is_file():
        return load_policy(str(gfp), params)
    if is_path:
        raise PolicyError(f"policy file not found: {spec}")
    return builtin_policy(spec, params)


def builtin_policy(name: str, params: Mapping[str, object] | None = None) -> Policy:
    """The built-in Python policy `name`, its `params` (command-line strings) checked and coerced."""
    params = dict(params or {})
    factory = BUILTINS.get(name)
    if factory is None:
        raise PolicyError(f"unknown policy {name!r}; known: {', '.join(known_policies())}")
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
