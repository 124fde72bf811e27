"""What gfdit ships, found through importlib.resources: the same from a wheel as from a checkout.

    policy_file("slo_grow")          -> .../gfdit/data/policies/slo_grow.gfp
    cost_model_dir("qwen-h20")       -> .../gfdit/data/costmodels/qwen-h20 (or a directory given by path)
    shipped_file("workloads", "short-4gpu", ".json"), shipped_names("profiles", ".json")

Kinds (folders of gfdit/data): policies (.gfp), costmodels (directories),
workloads and profiles (.json). A name that is not shipped raises `ResourceError`
listing what is. Neutral: imports nothing of gfdit.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = ("policies", "costmodels", "workloads", "profiles")


class ResourceError(ValueError):
    """A shipped resource that does not exist (the message lists the shipped names)."""


def data_dir(kind: str) -> Path:
    """The folder of shipped `kind` (a real directory: gfdit is installed unpacked, as pip does)."""
    if kind not in KINDS:
        raise ResourceError(f"unknown kind of shipped data {kind!r}; known: {', '.join(KINDS)}")
    folder = files("gfdit") / "data" / kind
    if not isinstance(folder, Path):  # a zip import: nothing here reads from one
        raise ResourceError(f"gfdit's data is not on the file system ({folder}); install gfdit unpacked")
    return folder


def shipped_names(kind: str, suffix: str = "") -> list[str]:
    """The names of shipped `kind`: file stems with `suffix`, or directory names when suffix is ''."""
    folder = data_dir(kind)
    if not folder.is_dir():
        return []
    if suffix:
        return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix) and p.is_file())
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def shipped_file(kind: str, name: str, suffix: str) -> Path:
    """The shipped `kind` file `name` + `suffix`; `ResourceError` when there is none."""
    path = data_dir(kind) / f"{name}{suffix}"
    if not path.is_file():
        raise ResourceError(f"no shipped {_singular(kind)} {name!r}; shipped: {', '.join(shipped_names(kind, suffix))}")
    return path


def policy_file(name: str) -> Path | None:
    """The shipped policy `name` (slo_grow), or None when there is none."""
    path = data_dir("policies") / f"{name}.gfp"
    return path if path.is_file() else None


def cost_model_dir(spec: str | Path = "qwen-h20") -> Path:
    """A cost-model directory: `spec` itself when it is one, else the shipped cost model of that name."""
    path = Path(spec)
    if path.is_dir():
        return path
    shipped = data_dir("costmodels") / str(spec)
    if "/" not in str(spec) and shipped.is_dir():
        return shipped
    raise ResourceError(f"no cost-model directory {str(spec)!r} and no shipped cost model of that name; "
                        f"shipped: {', '.join(shipped_names('costmodels'))}")


def _singular(kind: str) -> str:
    return {"policies": "policy", "costmodels": "cost model"}.get(kind, kind[:-1])
