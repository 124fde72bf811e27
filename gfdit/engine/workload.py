"""Workload traces: `{"description", "metadata", "requests": [...]}` (the GF-DiT trace format).

Records are in milliseconds; see `Request.from_record` for the fields read.
Bad records are reported all at once, each with its index and id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gfdit.resources import ResourceError, cost_model_dir, shipped_file, shipped_names

from .request import Request, RequestError



@dataclass
class Workload:
    """A trace: its requests sorted by arrival (then id), plus its description and metadata."""

    requests: list[Request]
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "Workload":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise RequestError(f"cannot read workload {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise RequestError(f"workload {path} is not JSON: {exc}") from exc
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, data: Any, source: str = "<workload>") -> "Workload":
        if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
            raise RequestError(f"{source}: a workload is an object with a 'requests' list")
        requests, problems, seen = [], [], set()
        for index, rec in enumerate(data["requests"]):
            try:
                if not isinstance(rec, dict):
                    raise RequestError(f"record is a {type(rec).__name__}, not an object")
                req = Request.from_record(rec)
                if req.id in seen:
                    raise RequestError(f"duplicate request_id {req.id!r}")
                seen.add(req.id)
                requests.append(req)
            except RequestError as exc:
                problems.append(f"request #{index}: {exc}")
        if problems:
            shown = "; ".join(problems[:10]) + (f"; ... {len(problems) - 10} more" if len(problems) > 10 else "")
            raise RequestError(f"{source}: {len(problems)} bad records: {shown}")
        requests.sort(key=lambda r: (r.arrival, r.id))
        return cls(requests, str(data.get("description", "")), dict(data.get("metadata") or {}))

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "metadata": self.metadata,
                "requests": [r.to_record() for r in self.requests]}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")


def shipped_workload(name: str) -> Path:
    """Path of a workload shipped in gfdit/data/workloads (by file stem)."""
    try:
        return shipped_file("workloads", name, ".json")
    except ResourceError as exc:
        raise RequestError(str(exc)) from None


def workload_path(spec: str) -> Path:
    """A trace: the file `spec` when it exists, else the shipped trace of that name (`short-4gpu`,
    `short-4gpu.json`); an error names both and lists the shipped ones."""
    path = Path(spec)
    if path.is_file() or path.parent != Path("."):  # a path with a folder is a path (read errors say why)
        return path
    name = path.name.removesuffix(".json")
    if name in shipped_names("workloads", ".json"):
        return shipped_workload(name)
    raise RequestError(f"no workload file {spec} and no shipped trace {name!r}; shipped: "
                       f"{', '.join(shipped_names('workloads', '.json'))}")


def shipped_cost_model(name: str = "qwen-h20") -> Path:
    """A cost-model directory: `name` itself when it is one, else the shipped cost model `name`."""
    try:
        return cost_model_dir(name)
    except ResourceError as exc:
        raise RequestError(str(exc)) from None
