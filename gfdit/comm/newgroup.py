"""The `newgroup` backend: a cached `dist.new_group` per rank set.

The static baseline, for benchmarks and tests only: communicators are created
up front by `prepare` (a collective of the whole world, as in a static server),
since `dist.new_group` needs every rank of the world to take part (the local-sync
variant names groups by a per-process count, so lazy creation by members only
diverges).
gloo's own collectives (all_gather, all_to_all, broadcast, barrier) run on the
cached group; send/recv go through the checked point-to-point path on it. This
is the only place in gfdit allowed to call `dist.new_group`.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

from gfdit.comm.errors import CommError
from gfdit.comm.group import Group
from gfdit.comm.p2p import P2PBackend
from gfdit.comm.transfer import wire_bytes
from gfdit.comm.wire import classify


class NewGroupBackend(P2PBackend):
    """Collectives on one `dist.new_group` per distinct (sorted) rank set."""

    name = "newgroup"

    def __init__(self, device: torch.device, timeout_s: float) -> None:
        super().__init__(device, timeout_s)
        self._groups: dict[tuple[int, ...], object] = {}
        self.native_ops = {
            "all_gather": self._all_gather,
            "all_to_all": self._all_to_all,
            "broadcast": self._broadcast,
            "barrier": self._barrier,
        }

    def prepare(self, rank_sets) -> None:
        """Create the communicators of `rank_sets` (a collective of the whole world:
        every rank calls it with the same list). A static server does this at start."""
        for ranks in rank_sets:
            key = tuple(sorted(ranks))
            if key not in self._groups:
                self._groups[key] = dist.new_group(
                    list(key), timeout=timedelta(seconds=self.timeout_s))

    def process_group(self, group: Group):
        pg = self._groups.get(tuple(sorted(group.ranks)))
        if pg is None:
            raise CommError(
                f"newgroup: {group} has no communicator; dist.new_group needs every rank "
                "of the world, so call prepare(rank_sets) on all ranks first")
        return pg

    def _native(self, group: Group, op: str, fn):
        try:
            return fn(self.process_group(group))
        except RuntimeError as e:
            raise classify(e, f"{op} on {group} at rank {group.rank}", group.ranks) from e

    def _all_gather(self, g: Group, x, dim, out_shape):
        def run(pg):
            xb = wire_bytes(x)
            parts = [torch.empty_like(xb) for _ in g.ranks]
            dist.all_gather(parts, xb, group=pg)
            by_rank = dict(zip(sorted(g.ranks), parts, strict=True))
            return torch.cat([by_rank[r].view(x.dtype).view(x.shape) for r in g.ranks], dim)
        return self._native(g, "all_gather", run)

    def _all_to_all(self, g: Group, chunks, dim, out_shape):
        def run(pg):
            order = sorted(range(g.size), key=lambda i: g.ranks[i])
            send = torch.cat([wire_bytes(chunks[i]) for i in order])
            recv = torch.empty_like(send)
            dist.all_to_all_single(recv, send, group=pg)
            parts = dict(zip(order, recv.chunk(g.size), strict=True))
            shape = chunks[0].shape
            dtype = chunks[0].dtype
            return torch.cat([parts[i].view(dtype).view(shape) for i in range(g.size)], dim)
        return self._native(g, "all_to_all", run)

    def _broadcast(self, g: Group, x, src_index):
        def run(pg):
            buf = x.contiguous()
            dist.broadcast(wire_bytes(buf), src=g.ranks[src_index], group=pg)
            if buf is not x:
                x.copy_(buf)
            return x
        return self._native(g, "broadcast", run)

    def _barrier(self, g: Group):
        return self._native(g, "barrier", lambda pg: dist.barrier(group=pg))

    def close(self) -> None:
        if dist.is_initialized():  # the world may have been aborted after a failure
            for pg in self._groups.values():
                dist.destroy_process_group(pg)
        self._groups.clear()
        super().close()
