"""Ulysses sequence parallelism: the sharded sequence and the attention exchange.

Layout (see docs/models.md). The latent is replicated on every member of a group
of k ranks. After the patch embedding, each *segment* of the token sequence (the
image tokens, the text tokens of joint attention) is cut into k contiguous shards
of ``L = ceil(S / k)`` tokens; the last shards are padded with zeros to length L,
so every member holds the same shapes. An attention whose tokens are sharded
exchanges q, k, v all-to-all from (B, N, H, D) to (B, k*N, H/k, D), drops the
padded positions, attends over the full sequence for its H/k heads, puts zeros
back at the padded positions and exchanges the output back to (B, N, H, D).
Heads that do not divide by k are padded with zero heads, dropped afterwards.
Before un-patchifying, the shards are all-gathered and the padding cut off.

The full sequence after the exchange is in rank-major order (rank 0's text and
image shards, then rank 1's ...), a permutation of the width-1 order; attention
without a mask is invariant under it, so results equal width 1 up to float
summation order.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from gfdit.workers.adapter import SPContext

AttendFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class SequenceParallelError(RuntimeError):
    """A model call that sequence parallelism cannot shard correctly."""


@dataclass
class ShardedRun:
    """One sharded forward pass of a transformer on a group.

    segments -- name -> full (unpadded) length S, recorded when first split.
    """

    sp: SPContext
    segments: dict[str, int] = field(default_factory=dict)
    _valid: dict[tuple[tuple[str, ...], torch.device], torch.Tensor | None] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.sp.group.size

    @property
    def index(self) -> int:
        return self.sp.group.index

    def shard_len(self, segment: str) -> int:
        return math.ceil(self.segments[segment] / self.size)

    def split(self, x: torch.Tensor, dim: int, segment: str) -> torch.Tensor:
        """This member's shard of ``x`` along ``dim``, zero-padded to L."""
        full = x.shape[dim]
        known = self.segments.setdefault(segment, full)
        if known != full:
            raise SequenceParallelError(f"segment {segment!r} split with length {full}, earlier {known}")
        length = self.shard_len(segment)
        start = min(self.index * length, full)
        shard = x.narrow(dim, start, min(length, full - start))
        return _pad_to(shard, dim, length)

    def gather(self, x: torch.Tensor, dim: int, segment: str) -> torch.Tensor:
        """All shards of ``x`` along ``dim`` in order, padding removed."""
        full = self.sp.comm.all_gather(self.sp.group, x.contiguous(), dim)
        return full.narrow(dim, 0, self.segments[segment])

    def valid_positions(self, layout: tuple[str, ...], device: torch.device) -> torch.Tensor | None:
        """Indices of real (unpadded) tokens in the rank-major exchanged sequence
        whose local part is the concatenation of ``layout``'s segment shards;
        None when nothing is padded."""
        key = (layout, device)
        if key not in self._valid:
            picks, offset = [], 0
            for rank in range(self.size):
                for segment in layout:
                    length = self.shard_len(segment)
                    real = max(0, min(length, self.segments[segment] - rank * length))
                    picks.append(torch.arange(offset, offset + real))
                    offset += length
            valid = torch.cat(picks)
            self._valid[key] = None if len(valid) == offset else valid.to(device)
        return self._valid[key]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: tuple[str, ...], fn: AttendFn) -> torch.Tensor:
        """Ulysses attention: ``fn`` on the full sequence for H/k heads.

        q, k, v: (B, N, H, D) with N the local length of ``layout``; returns (B, N, H, D).
        """
        local = sum(self.shard_len(s) for s in layout)
        if not (q.shape[1] == k.shape[1] == v.shape[1] == local):
            raise SequenceParallelError(
                f"attention over {layout} expects {local} local tokens, got q/k/v {q.shape[1]}/{k.shape[1]}/{v.shape[1]}"
            )
        heads = q.shape[2]
        padded_heads = math.ceil(heads / self.size) * self.size
        qkv = _pad_to(torch.stack((q, k, v), dim=2), 3, padded_heads).contiguous()
        full = self.sp.comm.all_to_all(self.sp.group, qkv, 3, 1)  # (B, k*N, 3, H'/k, D)
        valid = self.valid_positions(layout, full.device)
        real = full if valid is None else full.index_select(1, valid)
        out = fn(real[:, :, 0], real[:, :, 1], real[:, :, 2])
        if valid is None:
            back = out
        else:
            back = out.new_zeros((out.shape[0], full.shape[1], *out.shape[2:]))
            back.index_copy_(1, valid, out)
        local_out = self.sp.comm.all_to_all(self.sp.group, back.contiguous(), 1, 2)  # (B, N, H', D)
        return local_out.narrow(2, 0, heads)


def _pad_to(x: torch.Tensor, dim: int, length: int) -> torch.Tensor:
    missing = length - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat((x, x.new_zeros(shape)), dim=dim)


_ACTIVE: contextvars.ContextVar[ShardedRun | None] = contextvars.ContextVar("gfdit_sharded_run", default=None)


def active_run() -> ShardedRun | None:
    """The sharded forward pass in progress in this context, if any."""
    return _ACTIVE.get()


@contextmanager
def sharded(sp: SPContext | None) -> Iterator[ShardedRun | None]:
    """Run one transformer forward sharded over ``sp.group`` (no-op when ``sp`` is
    None or the group has one member)."""
    run = ShardedRun(sp) if sp is not None and sp.group.size > 1 else None
    token = _ACTIVE.set(run)
    try:
        yield run
    finally:
        _ACTIVE.reset(token)
