"""Errors raised by the collectives layer.

Every error names the group (its ranks) and what went wrong. After any of them
the world is considered broken: a timed-out or failed gloo pair is closed by gloo
itself, so the caller (a worker) must report the failure and the pool restarts.
"""

from __future__ import annotations


class CommError(RuntimeError):
    """A collective failed; the message names the group and the cause."""


class CommTimeout(CommError):
    """A wait ran past the time-out (a peer is stuck, gone, or out of sequence)."""


class PeerFailure(CommError):
    """A peer of the group died or closed its connection mid-collective."""


class SizeMismatch(CommError):
    """Two members disagree on what a collective moves (op, dtype, sizes)."""


class NotAMember(CommError):
    """This rank called a collective of a group it does not belong to."""


class PoolError(RuntimeError):
    """A pool of local processes cannot do what was asked: start-up failed, a member died, or a
    call on it failed. The one name for that, whichever pool: `gfdit.comm.launch.LocalPool`
    raises its subclass `RanksFailed`, `gfdit.workers.pool.WorkerPool` raises it directly.
    Not a `CommError`: a pool can fail with its collectives intact."""
