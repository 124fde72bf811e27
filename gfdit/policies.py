"""`resolve_policy`: turn a `--policy` argument into a Policy.

It sits above both the engine (which runs a `Policy`) and the policy language
(which compiles `.gfp` files to one), so neither has to know the other.
Resolution:
1. `spec` ending in `.gfp` is a path; it must exist (a missing file is an
   error, never a fall-back), and `gfdit.dsl.load.load_policy` compiles it with
   `params`;
2. `py:NAME` is the built-in Python policy NAME (`builtin_policy`), called with
   `params` as keyword arguments;
3. any other `spec` names a shipped policy, `gfdit/data/policies/<spec>.gfp`
   read through importlib.resources (`gfdit.resources`: the same from a wheel
   as from a checkout);
4. otherwise a `PolicyError` listing every known name.

`fit_policy` then fits a resolved policy to a cluster and a cost model, so a
shipped policy runs on 1 to 4 GPUs: widths the cluster cannot hold or the cost
model does not price are dropped (the policy is resolved again with the
narrower `widths` param), pools sized by the cluster (`pool main = rest`,
`{0 .. gpus / 4 - 1}`) are sized for it, pool ranks outside the cluster are
dropped, and a stage whose pool is left with no rank may use every rank. Each change is one
line of the returned notes. A policy with no usable width is left as it is:
the engine refuses it (`check_policy`).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from gfdit.dsl.load import load_policy
from gfdit.engine.builtin_policies import BUILTINS
from gfdit.engine.costmodel import CostModel
from gfdit.engine.policy import Policy
from gfdit.engine.policy_check import PolicyError
from gfdit.resources import data_dir, policy_file, shipped_names

POLICY_DIR = data_dir("policies")
BUILTIN_PREFIX = "py:"
DEFAULT_POLICY = "default"  # gfdit/data/policies/default.gfp: the recommended policy, what runs without --policy


def known_policies() -> list[str]:
    """Every name `resolve_policy` takes besides a path: the shipped policies, then `py:` built-ins."""
    return shipped_names("policies", ".gfp") + [BUILTIN_PREFIX + name for name in sorted(BUILTINS)]


def resolve_policy(spec: str, params: Mapping[str, object] | None = None) -> Policy:
    """The policy named by `spec` (a .gfp path, a shipped policy name, or `py:` and a built-in)."""
    params = dict(params or {})
    if spec.startswith(BUILTIN_PREFIX):
        return builtin_policy(spec.removeprefix(BUILTIN_PREFIX), params)
    gfp = policy_path(spec)
    if gfp is not None and gfp.is_file():
        return load_policy(str(gfp), params)
    if spec.endswith(".gfp"):
        raise PolicyError(f"policy file not found: {spec}")
    raise PolicyError(f"unknown policy {spec!r}; known: {', '.join(known_policies())} or a .gfp file")


def fit_policy(policy: Policy, spec: str, params: Mapping[str, object] | None, cost_model: CostModel,
               gpus: int) -> tuple[Policy, list[str]]:
    """`policy` (resolved from `spec`, `params`) fitted to `gpus` ranks and `cost_model`; and the notes."""
    params = dict(params or {})

    def with_widths(widths: str) -> Policy:
        return resolve_policy(spec, {**params, "widths": widths})

    return fit_to(policy, with_widths if _takes_widths(spec) else None, cost_model, gpus)


def fit_to(policy: Policy, with_widths: Callable[[str], Policy] | None, cost_model: CostModel,
           gpus: int) -> tuple[Policy, list[str]]:
    """`policy` fitted to `gpus` ranks and `cost_model`, and the notes; `with_widths(\"1,2\")` makes the
    same policy again with a narrower `widths` param (None: the policy has no such param).

    A server's start (`fit_policy`) and its hot reloads (`gfdit.server.reload`) fit the same way."""
    notes: list[str] = []
    widths = tuple(policy.widths)
    usable = [w for w in widths if w <= gpus and w in cost_model.layouts]
    if usable and len(usable) < len(widths) and with_widths is not None:
        dropped = [w for w in widths if w not in usable]
        notes.append(f"policy {policy.name}: widths {dropped} dropped (the cluster has {gpus} GPU(s), "
                     f"the cost model prices {list(cost_model.widths)}); using {usable}")
        policy = with_widths(",".join(map(str, usable)))
    for_cluster = getattr(policy, "for_cluster", None)  # a .gfp's pools sized by the cluster (`rest`)
    if for_cluster is not None:
        policy = for_cluster(gpus)
    return _fit_pools(policy, gpus, notes), notes


def policy_path(spec: str) -> Path | None:
    """The .gfp file `spec` names (a path that may not exist, or a shipped policy), or None."""
    return Path(spec) if spec.endswith(".gfp") else policy_file(spec)


def _takes_widths(spec: str) -> bool:
    """Whether the policy `spec` resolves to has a `widths` parameter (every .gfp has one)."""
    factory = BUILTINS.get(spec.removeprefix(BUILTIN_PREFIX)) if spec.startswith(BUILTIN_PREFIX) else None
    return factory is None or "widths" in inspect.signature(factory).parameters


def _fit_pools(policy: Policy, gpus: int, notes: list[str]) -> Policy:
    pools = {name: frozenset(r for r in members if 0 <= r < gpus) for name, members in policy.pools.items()}
    if pools == dict(policy.pools) and all(pools.values()):
        return policy
    for name, members in policy.pools.items():
        if pools[name] != members:
            notes.append(f"policy {policy.name}: pool {name} loses ranks "
                         f"{sorted(set(members) - pools[name])} (not on this {gpus}-GPU cluster)")
    stage_pools = {stage: pool for stage, pool in policy.stage_pools.items() if pools.get(pool)}
    others = sorted(set(stage_pools.values()))
    for stage in sorted(set(policy.stage_pools) - set(stage_pools)):
        shared = f", those of pool{'s' * (len(others) > 1)} {', '.join(others)} too" if others else ""
        notes.append(f"policy {policy.name}: pool {policy.stage_pools[stage]} has no rank on this {gpus}-GPU "
                     f"cluster: {stage} may use every rank{shared}")
    classes = _fit_class_pools(policy, pools, notes)
    return _with(policy, pools=MappingProxyType({k: v for k, v in pools.items() if v}),
                 stage_pools=MappingProxyType(stage_pools), **({"classes": classes} if classes else {}))


def _fit_class_pools(policy: Policy, pools: Mapping[str, frozenset[int]], notes: list[str]) -> Mapping | None:
    """The classes with a class pinned to a pool left without ranks unpinned (it may use every rank),
    noted; None when no class changes."""
    classes = dict(policy.classes)
    for name, spec in policy.classes.items():
        pool = getattr(spec, "pool", None)
        if pool in pools and not pools[pool]:
            notes.append(f"policy {policy.name}: class {name}'s pool {pool} has no rank left: "
                         f"{name} may use every rank")
            classes[name] = dataclasses.replace(spec, pool=None)
    return MappingProxyType(classes) if classes != dict(policy.classes) else None


def _with(policy: Policy, **changes: object) -> Policy:
    """A copy of `policy` with some configuration fields changed (its hooks do not read them)."""
    if dataclasses.is_dataclass(policy):
        return dataclasses.replace(policy, **changes)  # type: ignore[type-var]
    fitted = copy.copy(policy)
    for name, value in changes.items():
        setattr(fitted, name, value)
    return fitted


def builtin_policy(name: str, params: Mapping[str, object] | None = None) -> Policy:
    """The built-in Python policy `name`, its `params` (command-line strings) checked and coerced."""
    params = dict(params or {})
    factory = BUILTINS.get(name)
    if factory is None:
        raise PolicyError(f"unknown built-in policy {BUILTIN_PREFIX}{name}; known: {', '.join(known_policies())}")
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
