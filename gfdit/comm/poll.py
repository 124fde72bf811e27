"""Waiting on shared-memory flags: back-off, a deadline, and a watch on peers' pids."""

from __future__ import annotations

import os
import time

from gfdit.comm.errors import CommTimeout, PeerFailure

BUSY = 200  # polls without yielding first (tens of microseconds: the peer is running)
SPINS = 400  # then polls with sched_yield, then short sleeps
MAX_SLEEP_S = 2e-4
CHECK_EVERY_S = 0.01  # how often the deadline and the peers' liveness are checked


class Waiter:
    """One wait: call pause() whenever a poll made no progress."""

    __slots__ = ("what", "deadline", "pids", "idle", "next_check")

    def __init__(self, what: str, timeout_s: float, pids: dict[int, int]) -> None:
        self.what = what
        now = time.monotonic()
        self.deadline = now + timeout_s
        self.pids = pids  # peer rank -> pid
        self.idle = 0
        self.next_check = now + CHECK_EVERY_S

    def pause(self) -> None:
        self.idle += 1
        if self.idle < BUSY:
            pass
        elif self.idle < SPINS:
            os.sched_yield()
        else:
            time.sleep(min(MAX_SLEEP_S, 1e-6 * self.idle))
        if self.idle & 31:
            return
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + CHECK_EVERY_S
            self._check(now)

    def _check(self, now: float) -> None:
        for rank, pid in self.pids.items():
            if not _alive(pid):
                raise PeerFailure(f"{self.what}: rank {rank} (pid {pid}) died")
        if now >= self.deadline:
            raise CommTimeout(f"{self.what}: timed out waiting for ranks {sorted(self.pids)}")


def _alive(pid: int) -> bool:
    """True unless the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True  # no /proc: assume alive and rely on the deadline
    state = stat[stat.rfind(b")") + 2: stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")
