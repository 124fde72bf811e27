"""Per-class quotas: a class with a `share` holds at most that fraction of the cluster's ranks.

Counted on the running tasks' current widths plus this round's grants (and
their growth); enforced by allocate and grow: a candidate whose class has no
room for its width is shrunk to what its quota allows (`on short shrink`) or
passed over (rule `engine:quota`), never `reserve`d for (the ranks are not
short, its class is). A class's limit is floor(share × gpus), at least the
smallest allowed width, so every class can always make progress: a width
above the limit is capped to the largest allowed width within it (as widths are
capped to the cluster), so a request only waits while its own class's running
tasks hold the room.
"""

from __future__ import annotations

import math

from .policy import Policy, RequestView, class_spec
from .view import Round


class Quotas:
    """Ranks each class with a share may still take this round."""

    __slots__ = ("_classes", "limits", "used")

    def __init__(self, policy: Policy, view: Round):
        self._classes = policy.classes
        self.limits = {name: max(policy.widths[0], math.floor(spec.share * view.gpus + 1e-9))
                       for name, spec in policy.classes.items() if getattr(spec, "share", None) is not None}
        self.used = dict.fromkeys(self.limits, 0)
        for running in view.running:
            name = self.class_of(running)
            if name is not None:
                self.used[name] += running.width

    @staticmethod
    def of(policy: Policy, view: Round) -> "Quotas | None":
        """The round's quotas, or None when no class has a share (nothing to count)."""
        return Quotas(policy, view) if any(getattr(s, "share", None) is not None for s in policy.classes.values()) \
            else None

    def class_of(self, req: RequestView) -> str | None:
        spec = class_spec(self._classes, req.request_class)
        return spec.name if spec is not None and spec.name in self.limits else None

    def limit(self, req: RequestView) -> int | None:
        """The most ranks `req`'s class may ever hold at once (None: no quota)."""
        name = self.class_of(req)
        return None if name is None else self.limits[name]

    def room(self, req: RequestView) -> int | None:
        """Ranks `req`'s class may still take (None: no quota)."""
        name = self.class_of(req)
        return None if name is None else self.limits[name] - self.used[name]

    def take(self, req: RequestView, ranks: int) -> None:
        name = self.class_of(req)
        if name is not None:
            self.used[name] += ranks
