"""The demo's mixed workload and its two policy edits.

Requests come in three classes named by the shipped policies (S small and
urgent, M medium, L large and loose) with different step counts, arriving as a
seeded Poisson process. The edits are plain text changes of the policy file: a
broken one (a misspelt field, a width outside `widths`) that the server must
refuse with diagnostics, and a good one (shorter chunks, so more rescheduling
points) that it must swap in.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

CLASS_STEPS = {"S": 10, "M": 20, "L": 40}
CLASS_MIX = ("S", "S", "M", "S", "L", "M")  # repeated: half S, a third M, a sixth L
PROMPTS = (
    "a red fox in fresh snow", "a lighthouse at dusk", "a bowl of ramen, studio light",
    "a tiny robot reading a book", "mountains over a calm lake", "a cat wearing a scarf",
    "a city street in the rain", "a field of sunflowers", "an owl on a mossy branch",
    "a sailboat on a stormy sea", "a cozy cabin in the woods", "a neon koi pond",
)


@dataclass(frozen=True)
class DemoRequest:
    request_id: str
    request_class: str
    prompt: str
    steps: int
    seed: int
    at_s: float  # submit time, seconds after the first


def mixed_workload(n: int, mean_gap_s: float, seed: int = 0) -> list[DemoRequest]:
    """`n` requests of mixed classes with exponential gaps of mean `mean_gap_s`."""
    rng = random.Random(seed)
    at, out = 0.0, []
    for i in range(n):
        cls = CLASS_MIX[i % len(CLASS_MIX)]
        out.append(DemoRequest(f"demo-{i:02d}-{cls}", cls, PROMPTS[i % len(PROMPTS)], CLASS_STEPS[cls], 1000 + i, at))
        at += rng.expovariate(1.0 / mean_gap_s) if mean_gap_s > 0 else 0.0
    return out


def broken_edit(text: str) -> str:
    """The policy plus a rule with a misspelt field and a width outside `widths`."""
    return text.rstrip("\n") + "\n\n# a hasty edit\nwidth denoise when req.dedline < now = 3\n"


def good_edit(text: str, chunk: int = 2) -> str:
    """The policy with `param chunk = <chunk>` (added after the `policy` line if absent)."""
    pattern = re.compile(r"^(param\s+chunk\s*=\s*)[^\s#]+", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda m: f"{m.group(1)}{chunk}", text, count=1)
    return re.sub(r"^(policy\s+\S+.*)$", lambda m: f"{m.group(1)}\nparam chunk = {chunk}", text, count=1,
                  flags=re.MULTILINE)
