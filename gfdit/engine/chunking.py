"""How many denoise steps the next task of a request covers (its chunk).

The policy's `chunk` (None: `chunk = all`, the whole rest of the trajectory in one
task), else, when the request's class sets one, the class's own (`class L { chunk = 10 }`).
A class chunk is ignored under `chunk = all`: every task is then the whole rest.
"""

from __future__ import annotations

from .policy import Policy
from .tracked import Tracked


def chunk_of(policy: Policy, tracked: Tracked) -> int | None:
    """Steps of `tracked`'s next task under `policy`: its class's `chunk`, else the policy's."""
    chunk = policy.chunk
    if chunk is None or not policy.classes:
        return chunk
    spec = policy.classes.get(tracked.req.request_class) or policy.classes.get("default")
    own = getattr(spec, "chunk", None)
    return own if own is not None else chunk
