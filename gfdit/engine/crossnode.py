"""What crossing hosts costs: a group that spans nodes, a state move to another node.

`CrossNode` is part of a `CostModel` (optionally `cross_node.json` in the
cost-model directory, with these field names). The engine learns which rank is
on which node from its `Cluster` (``ranks_per_node``; one node when unset, and
then none of this applies):

- a task whose group spans nodes takes ``group_factor`` times its one-node
  estimate (its collectives cross the network each step);
- a state move in which some receiver's node holds no copy of the state is
  priced as the migration (`CostModel.cross_migration`: same bytes, same rounds
  ``ceil(receivers / senders)``) with ``bandwidth_Bps`` and ``fixed_s``.

Defaults (documented in docs/engine.md, "Several hosts"): 1.3x, 12.5 GB/s
(one 100 Gb/s link), 2 ms. `gfdit profile` on one host cannot measure them;
write the file by hand from a measurement between your hosts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

CROSS_NODE_FILE = "cross_node.json"


@dataclass(frozen=True, slots=True)
class CrossNode:
    group_factor: float = 1.3
    bandwidth_Bps: float = 12.5e9
    fixed_s: float = 0.002

    def __post_init__(self) -> None:
        if not self.group_factor >= 1.0 or not self.bandwidth_Bps > 0 or not self.fixed_s >= 0:
            raise ValueError(f"cross-node costs need group_factor >= 1, bandwidth_Bps > 0, fixed_s >= 0; "
                             f"got {self.group_factor}, {self.bandwidth_Bps}, {self.fixed_s}")

    @classmethod
    def read(cls, file: Path) -> "CrossNode":
        """The file's fields over the defaults; ValueError (with the file) when it is wrong."""
        try:
            data = json.loads(file.read_text())
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(f"unknown fields {unknown}; known: {sorted(known)}")
            return cls(**{k: float(v) for k, v in data.items()})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{file}: bad cross-node costs ({exc})") from exc
