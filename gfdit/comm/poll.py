"""Waiting on shared-memory flags: busy polls, then a futex sleep on the arena's
doorbell, with a deadline and a watch on the peers' pids.

A rank that finds nothing to do polls a few hundred times (the peer is usually
running on another core), then sleeps in the kernel on its own doorbell word
(`FUTEX_WAIT`, shared futex, at most 2 ms per sleep). A peer that raises a flag
this rank may wait on bumps the doorbell and wakes it (`FUTEX_WAKE`), so a
sleeping rank wakes at once instead of after a time slice, which is what keeps
latency low on a machine with more processes than cores. Two peers bumping the
doorbell at the same moment can lose one bump; the 2 ms bound covers that rare
case. Where futex is unavailable, short sleeps replace it.
"""

from __future__ import annotations

import ctypes
import platform
import time

from gfdit.comm.arena import DOORBELL, Arena
from gfdit.comm.errors import CommTimeout, PeerFailure

BUSY = 50  # polls before sleeping
MAX_SLEEP_S = 2e-3
CHECK_EVERY_S = 0.01  # how often the deadline and the peers' liveness are checked
FUTEX_WAIT, FUTEX_WAKE = 0, 1
SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
_MASK = 0x7FFFFFFF
_L = ctypes.c_long  # syscall(2) is variadic: every argument must be passed full width


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


try:
    _syscall = ctypes.CDLL(None, use_errno=True).syscall if SYS_FUTEX else None
except OSError:  # no libc symbols to call: fall back to sleeping
    _syscall = None


class Doorbell:
    """A rank's doorbell word, seen from any process that maps its arena."""

    __slots__ = ("words", "address")

    def __init__(self, arena: Arena) -> None:
        self.words = arena.words
        self.address = arena.doorbell_address

    def value(self) -> int:
        return self.words[DOORBELL]

    def ring(self) -> None:
        self.words[DOORBELL] = (self.words[DOORBELL] + 1) & _MASK
        if _syscall is not None:
            _syscall(_L(SYS_FUTEX), ctypes.c_void_p(self.address), _L(FUTEX_WAKE),
                     _L(0x7FFFFFFF), None, None, _L(0))

    def sleep(self, seen: int, seconds: float) -> None:
        """Sleep until the doorbell moves from `seen`, or `seconds` pass."""
        if _syscall is None:
            time.sleep(min(seconds, 2e-4))
            return
        ts = _Timespec(0, int(seconds * 1e9))
        _syscall(_L(SYS_FUTEX), ctypes.c_void_p(self.address), _L(FUTEX_WAIT), _L(seen),
                 ctypes.byref(ts), None, _L(0))


class Waiter:
    """One wait: read `seen = waiter.doorbell.value()` before polling, and call
    pause(seen) whenever a poll made no progress."""

    __slots__ = ("what", "deadline", "pids", "idle", "next_check", "doorbell")

    def __init__(self, what: str, timeout_s: float, pids: dict[int, int],
                 doorbell: Doorbell) -> None:
        self.what = what
        now = time.monotonic()
        self.deadline = now + timeout_s
        self.pids = pids  # peer rank -> pid
        self.idle = 0
        self.next_check = now + CHECK_EVERY_S
        self.doorbell = doorbell

    def pause(self, seen: int) -> None:
        self.idle += 1
        if self.idle < BUSY:
            if self.idle & 31:
                return
        else:
            self.doorbell.sleep(seen, MAX_SLEEP_S)
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
