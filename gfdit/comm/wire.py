"""Waiting on torch.distributed work with a deadline, and tags for messages.

gloo matches point-to-point messages on (peer, tag). Each message carries a tag
built from its group's id and a counter per (group, direction, peer): every
member issues a group's collectives in the same order, so both ends of a pair
count the same messages, and messages of different groups never match.
"""

from __future__ import annotations

import time
from datetime import timedelta

from gfdit.comm.errors import CommError, CommTimeout, PeerFailure

_PEER_GONE = ("closed", "reset", "broken pipe", "connection", "eof", "terminated")


class TagCounter:
    """Per-(group, direction, peer) message counters, turned into gloo tags below 2**30.

    Tags in [2**30, 2**31) are left to the workers' migration transfers
    (`gfdit.workers.migration.MIGRATION_TAG_BASE`), so the two never match.
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[int, int, int], int] = {}

    def next(self, group_id: int, direction: int, peer_rank: int) -> int:
        key = (group_id, direction, peer_rank)
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return ((group_id & 0x7FFF) << 15) | (n & 0x7FFF)


SEND, RECV = 0, 1


def wait_all(works, deadline: float, what: str, peers: tuple[int, ...]) -> None:
    """Wait for every work item until `deadline` (time.monotonic); raise CommError kinds."""
    for work in works:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CommTimeout(f"{what}: timed out waiting for ranks {list(peers)}")
        try:
            work.wait(timeout=timedelta(seconds=left))
        except RuntimeError as e:
            raise classify(e, what, peers) from e


def classify(e: BaseException, what: str, peers: tuple[int, ...]) -> CommError:
    text = str(e)
    low = text.lower()
    if "timed out" in low or "timeout" in low:
        return CommTimeout(f"{what}: timed out waiting for ranks {list(peers)} ({_first_line(text)})")
    if any(word in low for word in _PEER_GONE):
        return PeerFailure(f"{what}: a peer among ranks {list(peers)} failed ({_first_line(text)})")
    return CommError(f"{what}: {_first_line(text)}")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no detail"
    return line[:300]
