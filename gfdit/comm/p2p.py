"""The `p2p` backend: point-to-point messages on the one world group.

Every collective is one `batch_isend_irecv` of envelopes (to check that both
sides agree on sizes) followed by one of payloads. After a time-out or a peer
failure the world is aborted here, so that members still blocked on this rank
fail at once rather than at their own time-out. Nothing but the world is
ever created: on NCCL with `device_id`, batched point-to-point runs on the
world communicator; on gloo every pair already has a connection.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from gfdit.comm.errors import CommError, SizeMismatch
from gfdit.comm.group import Group
from gfdit.comm.transfer import ENVELOPE_LEN, Transfer, check_envelope, envelope, wire_bytes
from gfdit.comm.wire import RECV, SEND, TagCounter, classify, wait_all


class P2PBackend:
    """Group-free collectives over point-to-point messages on the world group."""

    name = "p2p"

    def __init__(self, device: torch.device, timeout_s: float) -> None:
        self.device = device
        self.timeout_s = timeout_s
        self._tags = TagCounter()
        self._broken = ""

    def exchange(self, group: Group, transfer: Transfer) -> None:
        """Move `transfer`'s messages; raise CommError kinds on mismatch, death, time-out."""
        transfer.copy_local()
        if not transfer.peers:
            return
        if self._broken:
            raise CommError(f"{transfer.op} on {group}: the world was closed after an "
                            f"earlier failure ({self._broken})")
        deadline = time.monotonic() + self.timeout_s
        what = f"{transfer.op} on {group} at rank {group.rank}"
        peer_ranks = tuple(group.ranks[p] for p in transfer.peers)
        try:
            self._move(group, transfer, deadline, what, peer_ranks)
        except SizeMismatch:
            raise
        except CommError as e:
            self._broken = str(e)
            self._abandon_world()
            raise

    def _abandon_world(self) -> None:
        """After a failure the world is unusable: close it here, so that peers
        blocked on this rank fail at once instead of at their time-out."""
        if not dist.is_initialized():
            return
        try:
            dist.group.WORLD.abort()  # closes the pairs even while work is pending
        except RuntimeError:
            pass
        dist.destroy_process_group()

    def _move(self, group, transfer, deadline, what, peer_ranks) -> None:
        problems = self._check_envelopes(group, transfer, deadline, what, peer_ranks)
        # A pair that disagrees moves no payload (both ends see the mismatch); the
        # other pairs complete, so no member is left waiting on a payload that
        # never comes, and no later message lands in a receive of the wrong size.
        # receives first: a dead peer shows at once, not after a send times out
        ops = [self._op(dist.irecv, group, RECV, i, t) for i, t in transfer.recvs if i not in problems]
        ops += [self._op(dist.isend, group, SEND, i, t) for i, t in transfer.sends if i not in problems]
        ops = [op for op in ops if op.tensor.numel() > 0]
        if ops:
            _post_and_wait(ops, deadline, what, peer_ranks)
        if problems:
            raise next(iter(problems.values()))

    def _check_envelopes(self, group, transfer, deadline, what, peer_ranks) -> dict[int, SizeMismatch]:
        """Exchange envelopes with every peer: the peers whose plan disagrees, with the error."""
        outgoing = {
            p: torch.tensor(envelope(transfer, group, p), dtype=torch.int64, device=self.device)
            for p in transfer.peers
        }
        incoming = {
            p: torch.empty(ENVELOPE_LEN, dtype=torch.int64, device=self.device)
            for p in transfer.peers
        }
        ops = [self._op(dist.irecv, group, RECV, p, t) for p, t in incoming.items()]
        ops += [self._op(dist.isend, group, SEND, p, t) for p, t in outgoing.items()]
        _post_and_wait(ops, deadline, what, peer_ranks)
        problems = {}
        for p, t in incoming.items():
            try:
                check_envelope(transfer, group, p, t.tolist())
            except SizeMismatch as e:
                problems[p] = e
        return problems

    def _op(self, fn, group: Group, direction: int, index: int, t: torch.Tensor) -> dist.P2POp:
        peer = group.ranks[index]
        tag = self._tags.next(group.id, direction, peer)
        return dist.P2POp(fn, wire_bytes(t), peer, group=self.process_group(group), tag=tag)

    def process_group(self, group: Group):
        """The torch process group messages travel on: always the world (None)."""
        return None

    def close(self) -> None:
        self._tags = TagCounter()


def _post_and_wait(ops, deadline: float, what: str, peer_ranks: tuple[int, ...]) -> None:
    """Post `ops` and wait for them. Posting on a pair gloo already knows to be
    closed raises at once: that is a peer failure too, not a bare RuntimeError."""
    try:
        works = dist.batch_isend_irecv(ops)
    except RuntimeError as e:
        raise classify(e, what, peer_ranks) from e
    wait_all(works, deadline, what, peer_ranks)
