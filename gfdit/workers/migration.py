"""Moving a request's state between groups: the plan (torch-free) and the transfer.

Layout: a request's state is replicated on every rank of the group that last ran
it (`state_ranks`, called A). When its next task runs on group B:

  * ranks in A ∩ B keep their copy; nothing moves to them;
  * each rank in B \\ A receives the whole state from one member of A; the
    senders are spread over A, members of A ∩ B first (they take part in the task
    anyway), then the rest of A, so each sender serves ceil(|B \\ A| / |A|) ranks;
  * ranks in A \\ B drop the state once their sends are posted.

`plan_migration` is pure Python; the server imports it to learn which ranks
outside the group must also receive the `RunTask` (as senders).

Transfer (torch.distributed point-to-point on the one world, gloo or NCCL):

    sender  -> receiver:  [status, header_len, n_tensors] int64   tag T
                          header (msgpack: meta + tensor specs)   tag T+1
                          tensor i as raw bytes                   tag T+2+i

T = MIGRATION_TAG_BASE + (task_id mod 2**20) * TAG_SPAN, so transfers of
different tasks between the same pair never match each other. Every receive
buffer is allocated exactly from the header: a size mismatch is an error, never a
silent truncation. A sender that lacks the state sends status 0 and a message,
so its receivers fail the task cleanly instead of waiting forever.

Sends are NON-BLOCKING (`isend`, completed later by `PendingSends.reap`): a
sender outside the group may be given another task in the same round (for
example X moves 0 -> 1 while Y moves 1 -> 0), and must not wait for its receiver
before starting it. Receives block: a receiver needs the state to compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import msgspec

MIGRATION_TAG_BASE = 1 << 30  # gloo tags are int32; comm's collectives use small tags
TAG_SPAN = 1024
MAX_STATE_TENSORS = TAG_SPAN - 2
STATUS_OK, STATUS_MISSING = 1, 0


class MigrationError(RuntimeError):
    """A transfer could not happen (state missing at the sender, bad header)."""


def plan_migration(group: Sequence[int], state_ranks: Sequence[int]) -> dict[int, int]:
    """Receiver -> sender for every rank of `group` that lacks the state.

    Empty when nothing moves (no state yet, or every member holds it).
    """
    if len(set(group)) != len(group):
        raise ValueError(f"group {tuple(group)} repeats a rank")
    holders = set(state_ranks)
    receivers = [r for r in group if r not in holders]
    if not receivers or not holders:
        return {}
    in_group = set(group)
    senders = sorted(holders & in_group) + sorted(holders - in_group)
    return {r: senders[i % len(senders)] for i, r in enumerate(receivers)}


def senders_outside(group: Sequence[int], state_ranks: Sequence[int]) -> tuple[int, ...]:
    """Ranks not in `group` that must send state for a task on `group`."""
    return tuple(sorted(set(plan_migration(group, state_ranks).values()) - set(group)))


def task_ranks(group: Sequence[int], state_ranks: Sequence[int]) -> tuple[int, ...]:
    """Every rank that must receive the task: the group, then the outside senders."""
    return tuple(group) + senders_outside(group, state_ranks)


def tag_base(task_id: int) -> int:
    return MIGRATION_TAG_BASE + (task_id % (1 << 20)) * TAG_SPAN


# ---------------------------------------------------------------------------
# Transfer (torch imported lazily: the plan above stays torch-free).
# ---------------------------------------------------------------------------


class _Header(msgspec.Struct, frozen=True):
    meta: Any
    tensors: list[tuple[str, str, tuple[int, ...], bool]]  # name, dtype name, shape, lives on CPU
    message: str = ""


_DTYPE_NAMES = (
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
)


def _dtype(name: str):
    import torch

    if name not in _DTYPE_NAMES:
        raise MigrationError(f"unsupported state dtype {name!r}; known: {', '.join(_DTYPE_NAMES)}")
    return getattr(torch, name)


def _as_bytes(tensor):
    import torch

    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


@dataclass
class PendingSends:
    """Posted sends not yet completed; holds their buffers alive until they are."""

    works: list[tuple[Any, list[Any]]] = field(default_factory=list)

    def add(self, works: list[Any], buffers: list[Any]) -> None:
        self.works.append((works, buffers))

    def reap(self) -> int:
        """Forget completed sends; return how many are still in flight."""
        self.works = [(w, b) for w, b in self.works if not all(x.is_completed() for x in w)]
        return len(self.works)

    def wait_all(self, timeout_s: float | None = None) -> bool:
        """Wait for every posted send; False if some did not complete in `timeout_s`."""
        from datetime import timedelta

        ok = True
        for works, _ in self.works:
            for work in works:
                if timeout_s is None:
                    work.wait()
                    continue
                try:
                    work.wait(timeout=timedelta(seconds=timeout_s))
                except RuntimeError:
                    ok = False
        self.works.clear()
        return ok


def post_send(
    dst: int, task_id: int, tensors: dict[str, Any] | None, meta: Any, pending: PendingSends,
    missing_reason: str = "", device: str = "cpu",
) -> tuple[int, list[Any]]:
    """Post the state's transfer to global rank `dst`: (bytes posted, its works).

    `tensors=None` means this rank lacks the state: the receiver is told so.
    Tensors already on the world's `device` are sent from their own memory (no
    copy): a caller that goes on to modify them must first wait for the returned
    works. Others (a CUDA worker's CPU generator state) travel through a copy on
    `device` (NCCL moves device memory only) and land on the CPU again.
    """
    import torch
    import torch.distributed as dist

    base = tag_base(task_id)
    if tensors is None:
        header = msgspec.msgpack.encode(_Header(meta=None, tensors=[], message=missing_reason))
        status, payload = STATUS_MISSING, []
    else:
        if len(tensors) > MAX_STATE_TENSORS:
            raise MigrationError(f"state has {len(tensors)} tensors; at most {MAX_STATE_TENSORS}")
        specs = [(name, str(t.dtype).removeprefix("torch."), tuple(t.shape), t.device.type == "cpu")
                 for name, t in tensors.items()]
        for spec in specs:
            _dtype(spec[1])
        header = msgspec.msgpack.encode(_Header(meta=meta, tensors=specs))
        status = STATUS_OK
        payload = [_as_bytes(t.to(device)) for t in tensors.values()]
    head = torch.tensor([status, len(header), len(payload)], dtype=torch.int64, device=device)
    header_t = torch.frombuffer(bytearray(header), dtype=torch.uint8).to(device)
    buffers = [head, header_t, *payload]
    works = [dist.isend(buf, dst, tag=base + i) for i, buf in enumerate(buffers) if buf.numel() > 0]
    pending.add(works, buffers)
    return sum(int(b.numel() * b.element_size()) for b in buffers), works


def receive(src: int, task_id: int, device: str = "cpu") -> tuple[dict[str, Any], Any, float]:
    """Receive a state from global rank `src` (blocking): (tensors, meta, seconds
    spent waiting for the sender to start)."""
    import time

    import torch
    import torch.distributed as dist

    base = tag_base(task_id)
    head = torch.zeros(3, dtype=torch.int64, device=device)
    start = time.perf_counter()
    dist.recv(head, src, tag=base)
    waited = time.perf_counter() - start
    status, header_len, n_tensors = (int(x) for x in head)
    header_t = torch.empty(header_len, dtype=torch.uint8, device=device)
    if header_len:
        dist.recv(header_t, src, tag=base + 1)
    try:
        header = msgspec.msgpack.decode(header_t.cpu().numpy().tobytes(), type=_Header)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MigrationError(f"bad state header from rank {src}: {exc}") from exc
    if status != STATUS_OK:
        raise MigrationError(f"rank {src} could not send the state: {header.message}")
    if n_tensors != len(header.tensors):
        raise MigrationError(f"rank {src} announced {n_tensors} tensors, header lists {len(header.tensors)}")
    tensors, works = {}, []
    for i, (name, dtype, shape, _) in enumerate(header.tensors):
        tensor = torch.empty(shape, dtype=_dtype(dtype), device=device)
        view = _as_bytes(tensor)
        if view.numel():
            works.append(dist.irecv(view, src, tag=base + 2 + i))  # all posted at once: pipelined
        tensors[name] = tensor
    for work in works:
        work.wait()
    for name, _, _, on_cpu in header.tensors:
        if on_cpu:
            tensors[name] = tensors[name].cpu()
    return tensors, header.meta, waited
