"""Group-free collectives: one world per pool, any subset of ranks is a group.

Public API::

    from gfdit.comm import init_world, Group, Comm, CommError
    comm = init_world(rank, world_size, init_method="tcp://127.0.0.1:PORT", backend="p2p")
    g = comm.group((3, 1))                 # local, no messages
    y = comm.all_to_all(g, x, scatter_dim=2, gather_dim=1)

Backends: "p2p" (default, CPU and GPU), "shm" (one host, CPU), "newgroup"
(`dist.new_group` per rank set; baseline for benchmarks and tests only).
`gfdit.comm.launch.LocalPool` spawns local gloo processes for tests and benches.
See docs/comm.md.
"""

from gfdit.comm.errors import CommError, CommTimeout, NotAMember, PeerFailure, SizeMismatch
from gfdit.comm.group import Group

__all__ = [
    "Comm",
    "CommError",
    "CommTimeout",
    "Group",
    "NotAMember",
    "PeerFailure",
    "SizeMismatch",
    "init_world",
]


def __getattr__(name: str):
    # torch is imported only when the collectives themselves are used.
    if name in ("Comm", "init_world"):
        from gfdit.comm import world

        return getattr(world, name)
    raise AttributeError(name)
