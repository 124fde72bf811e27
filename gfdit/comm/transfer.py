"""What one collective step moves, and the check that both sides agree on it.

Every collective is lowered to a `Transfer`: exact messages to and from other
members of the group. Before any payload moves, each pair of members compares
an `Envelope` (op, group id, and the count, bytes and dtype/size signature of
the messages in each direction). A disagreement raises `SizeMismatch` on both
sides, naming the group and the sizes, so gloo never sees a buffer of the wrong
size (it aborts the process on an oversized message and quietly accepts a short
one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gfdit.comm.errors import SizeMismatch
from gfdit.comm.group import Group

DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 1,
    torch.float64: 2,
    torch.float16: 3,
    torch.bfloat16: 4,
    torch.uint8: 5,
    torch.int8: 6,
    torch.int16: 7,
    torch.int32: 8,
    torch.int64: 9,
    torch.bool: 10,
    torch.complex64: 11,
    torch.complex128: 12,
}
DTYPE_NAMES: dict[str, torch.dtype] = {str(d).removeprefix("torch."): d for d in DTYPE_CODES}

OP_CODES: dict[str, int] = {
    "all_to_all": 1,
    "all_gather": 2,
    "broadcast": 3,
    "send": 4,
    "barrier": 5,
    "tensors": 6,
}
OP_NAMES: dict[int, str] = {v: k for k, v in OP_CODES.items()}

ENVELOPE_LEN = 9
MAGIC = 0x6766646974  # "gfdit"
_MASK62 = (1 << 62) - 1


def dtype_code(dtype: torch.dtype) -> int:
    try:
        return DTYPE_CODES[dtype]
    except KeyError:
        known = ", ".join(DTYPE_NAMES)
        raise TypeError(f"dtype {dtype} is not supported by gfdit.comm; known: {known}") from None


def wire_bytes(t: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor seen as flat bytes (the wire format of every message)."""
    return t.reshape(-1).view(torch.uint8)


@dataclass(slots=True)
class Transfer:
    """One collective step as exact point-to-point messages.

    `sends` and `recvs` hold (member index, contiguous tensor); several messages
    to one peer go in list order. `peers` are the member indices this rank must
    synchronise with (by default every index in sends and recvs). `local` holds
    (source, destination) copies of this rank's own part, done by the backend
    (the shm backend copies from its arena, where the bytes are still in cache).
    """

    op: str
    sends: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    recvs: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    peers: tuple[int, ...] = ()
    local: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.peers:
            self.peers = tuple(sorted({i for i, _ in self.sends} | {i for i, _ in self.recvs}))

    def copy_local(self) -> None:
        for src, dst in self.local:
            if dst.data_ptr() != src.data_ptr():  # in place (x is out's own slot): nothing to do
                dst.copy_(src)

    def to(self, peer: int) -> list[torch.Tensor]:
        return [t for i, t in self.sends if i == peer]

    def from_(self, peer: int) -> list[torch.Tensor]:
        return [t for i, t in self.recvs if i == peer]


def _signature(tensors: list[torch.Tensor]) -> tuple[int, int, int]:
    """(message count, total bytes, hash of each message's dtype and size)."""
    h, total = 17, 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        total += nbytes
        h = (h * 1000003 + dtype_code(t.dtype) * 7919 + t.numel()) & _MASK62
    return len(tensors), total, h


def envelope(transfer: Transfer, group: Group, peer: int) -> list[int]:
    """What this rank will send to and expects from member `peer`."""
    out = _signature(transfer.to(peer))
    inn = _signature(transfer.from_(peer))
    return [MAGIC, OP_CODES[transfer.op], group.id, *out, *inn]


def check_envelope(transfer: Transfer, group: Group, peer: int, theirs: list[int]) -> None:
    """Raise SizeMismatch unless `theirs` (from `peer`) mirrors this rank's plan."""
    mine = envelope(transfer, group, peer)
    me, them = group.rank, group.ranks[peer]
    where = f"{transfer.op} on {group}"
    if theirs[0] != MAGIC:
        raise SizeMismatch(f"{where}: rank {them} sent a corrupt envelope to rank {me}")
    if theirs[1] != mine[1] or theirs[2] != mine[2]:
        other = OP_NAMES.get(theirs[1], f"op#{theirs[1]}")
        raise SizeMismatch(
            f"{where}: rank {me} is out of sequence with rank {them}, which runs "
            f"{other} on a group with id {theirs[2]} (this group's id is {group.id})"
        )
    checks = (
        (mine[6:9], theirs[3:6], f"rank {me} expects from rank {them}", f"rank {them} sends"),
        (mine[3:6], theirs[6:9], f"rank {me} sends to rank {them}", f"rank {them} expects"),
    )
    for a, b, this_side, other_side in checks:
        if list(a) != list(b):
            note = " (same bytes, different dtype or element count)" if a[:2] == b[:2] else ""
            raise SizeMismatch(
                f"{where}: {this_side} {_describe(a)}, but {other_side} {_describe(b)}{note}"
            )


def _describe(sig) -> str:
    return f"{sig[0]} message(s) of {sig[1]} bytes in all"
