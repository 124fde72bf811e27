"""One torch.distributed world per worker pool, and the collectives on top of it.

`init_world` creates the world once (gloo on CPU, NCCL with `device_id` on CUDA)
and returns a `Comm`. Any subset of ranks is then a group (`Comm.group`), formed
locally at no cost; its members call the collectives below. Collectives of one
group must be issued by all its members in the same order; collectives of
disjoint groups may run at the same time.
"""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import torch
import torch.distributed as dist

from gfdit.comm.errors import CommError, NotAMember
from gfdit.comm.group import Group
from gfdit.comm.transfer import DTYPE_NAMES, Transfer, dtype_code

# backend name -> (module, class); imported only when chosen.
BACKENDS: dict[str, tuple[str, str]] = {
    "p2p": ("gfdit.comm.p2p", "P2PBackend"),
    "shm": ("gfdit.comm.shm", "ShmBackend"),
    "newgroup": ("gfdit.comm.newgroup", "NewGroupBackend"),
}


def init_world(
    rank: int,
    world_size: int,
    *,
    init_method: str,
    backend: str = "p2p",
    device: str = "cpu",
    timeout_s: float = 60.0,
    backend_options: dict | None = None,
) -> "Comm":
    """Join the pool's one world and return its collectives with `backend`.

    Called once per process by every rank. `timeout_s` bounds every wait (world
    set-up and each collective). On CUDA the world is NCCL with `device_id`, so
    point-to-point never creates per-pair communicators. `backend_options` go to
    the backend (shm: `arena_bytes`).
    """
    if dist.is_initialized():
        raise CommError("this process already joined a world; call init_world once")
    dev = torch.device(device)
    options = dict(
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev, **options)
    else:
        dist.init_process_group("gloo", **options)
    dist.barrier()  # every rank takes part in the world's first collective
    comm = Comm(open_backend(backend, dev, timeout_s, **(backend_options or {})),
                rank, world_size, dev)
    comm._owns_world = True
    return comm


def open_backend(name: str, device: torch.device, timeout_s: float, **options):
    """Construct backend `name` on the current world (every rank must call it)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown comm backend {name!r}; known: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)(device, timeout_s, **options)


class Comm:
    """The collectives for any group this rank belongs to, over one backend.

    One thread per process issues collectives (the worker's loop); a Comm is not
    safe to share between threads.
    """

    def __init__(self, backend, rank: int, world_size: int, device: torch.device) -> None:
        self.rank = rank
        self.world_size = world_size
        self.device = device
        self.backend = backend
        self._native = getattr(backend, "native_ops", {})
        self._owns_world = False

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def using(self, backend: str, **options) -> "Comm":
        """Another backend on the same world; every rank must call it, in the same order."""
        return Comm(open_backend(backend, self.device, self.backend.timeout_s, **options),
                    self.rank, self.world_size, self.device)

    def group(self, ranks) -> Group:
        """Form a group locally (no messages); ranks must be in [0, world_size)."""
        g = Group.form(ranks, self.rank)
        bad = [r for r in g.ranks if r >= self.world_size]
        if bad:
            raise ValueError(f"{g}: ranks {bad} are outside the world of {self.world_size}")
        return g

    # -- collectives -----------------------------------------------------------------

    def all_to_all(self, group: Group, x: torch.Tensor, scatter_dim: int,
                   gather_dim: int, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """Split x in group.size chunks along scatter_dim, send chunk j to member j,
        and concatenate the chunks received along gather_dim, in group order (Ulysses).
        `out` (optional, contiguous, the result's shape and dtype) is filled and returned."""
        g = self._member(group, "all_to_all", x)
        k, me = g.size, g.index
        sd, gd = _dim(x, scatter_dim), _dim(x, gather_dim)
        if x.shape[sd] % k:
            raise ValueError(f"all_to_all on {g}: dim {sd} of size {x.shape[sd]} "
                             f"does not divide by the group size {k}")
        chunks = [c.contiguous() for c in x.chunk(k, sd)] if k > 1 else [x.contiguous()]
        out_shape = list(chunks[0].shape)
        out_shape[gd] *= k
        _check_out(out, out_shape, x, g, "all_to_all")
        if "all_to_all" in self._native:
            return _into(out, self._native["all_to_all"](g, chunks, gd, out_shape))
        out, slots = _gather_target(out_shape, gd, k, x, out, g, "all_to_all")
        sends = [(j, chunks[j]) for j in range(k) if j != me]
        recvs = [(i, slots[i]) for i in range(k) if i != me]
        local = [(chunks[me], slots[me])]
        self.backend.exchange(g, Transfer("all_to_all", sends, recvs, local=local))
        return _finish_gather(out, slots, gd)

    def all_gather(self, group: Group, x: torch.Tensor, dim: int, *,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """Concatenate every member's x along dim, in group order. `out` (optional,
        contiguous, the result's shape and dtype) is filled and returned."""
        g = self._member(group, "all_gather", x)
        k, me, d = g.size, g.index, _dim(x, dim)
        xc = x.contiguous()
        out_shape = list(x.shape)
        out_shape[d] *= k
        _check_out(out, out_shape, x, g, "all_gather")
        if "all_gather" in self._native:
            return _into(out, self._native["all_gather"](g, xc, d, out_shape))
        out, slots = _gather_target(out_shape, d, k, x, out, g, "all_gather")
        sends = [(j, xc) for j in range(k) if j != me]
        recvs = [(i, slots[i]) for i in range(k) if i != me]
        self.backend.exchange(g, Transfer("all_gather", sends, recvs, local=[(xc, slots[me])]))
        return _finish_gather(out, slots, d)

    def broadcast(self, group: Group, x: torch.Tensor, src_index: int) -> torch.Tensor:
        """Member src_index's x, on every member: non-sources pass a tensor of the
        same shape and dtype, which is filled in place and returned."""
        g = self._member(group, "broadcast", x)
        _check_index(g, src_index, "broadcast", "src_index")
        if "broadcast" in self._native:
            return self._native["broadcast"](g, x, src_index)
        if g.index == src_index:
            xc = x.contiguous()
            sends = [(j, xc) for j in range(g.size) if j != src_index]
            self.backend.exchange(g, Transfer("broadcast", sends=sends))
            return x
        buf = x if x.is_contiguous() else torch.empty_like(x, memory_format=torch.contiguous_format)
        self.backend.exchange(g, Transfer("broadcast", recvs=[(src_index, buf)]))
        if buf is not x:
            x.copy_(buf)
        return x

    def send(self, group: Group, x: torch.Tensor, dst_index: int) -> None:
        """Send x to member dst_index, which calls recv with the same shape and dtype."""
        g = self._member(group, "send", x)
        _check_peer(g, dst_index, "send", "dst_index")
        self.backend.exchange(g, Transfer("send", sends=[(dst_index, x.contiguous())]))

    def recv(self, group: Group, shape, dtype: torch.dtype, src_index: int) -> torch.Tensor:
        """Receive a tensor of exactly `shape` and `dtype` from member src_index."""
        g = self._member(group, "recv")
        _check_peer(g, src_index, "recv", "src_index")
        dtype_code(dtype)
        buf = torch.empty(tuple(shape), dtype=dtype, device=self.device)
        self.backend.exchange(g, Transfer("send", recvs=[(src_index, buf)]))
        return buf

    def send_tensors(self, group: Group, tensors: dict[str, torch.Tensor], dst_index: int) -> None:
        """Migration: send named tensors (a header of names, shapes and dtypes,
        then the exact buffers) to member dst_index, which calls recv_tensors."""
        g = self._member(group, "send_tensors")
        _check_peer(g, dst_index, "send_tensors", "dst_index")
        items = [(str(n), self._checked(t, g, "send_tensors").contiguous())
                 for n, t in tensors.items()]
        header = json.dumps([[n, str(t.dtype).removeprefix("torch."), list(t.shape)]
                             for n, t in items]).encode()
        head = torch.frombuffer(bytearray(header), dtype=torch.uint8).to(self.device)
        size = torch.tensor([head.numel()], dtype=torch.int64, device=self.device)
        self.backend.exchange(g, Transfer("tensors", sends=[(dst_index, size)]))
        self.backend.exchange(g, Transfer("tensors", sends=[(dst_index, head)]))
        payload = [(dst_index, t) for _, t in items]
        self.backend.exchange(g, Transfer("tensors", sends=payload, peers=(dst_index,)))

    def recv_tensors(self, group: Group, src_index: int) -> dict[str, torch.Tensor]:
        """Migration: receive the named tensors member src_index sends with send_tensors."""
        g = self._member(group, "recv_tensors")
        _check_peer(g, src_index, "recv_tensors", "src_index")
        size = torch.empty(1, dtype=torch.int64, device=self.device)
        self.backend.exchange(g, Transfer("tensors", recvs=[(src_index, size)]))
        head = torch.empty(int(size.item()), dtype=torch.uint8, device=self.device)
        self.backend.exchange(g, Transfer("tensors", recvs=[(src_index, head)]))
        try:
            spec = json.loads(head.cpu().numpy().tobytes().decode())
            out = {n: torch.empty(shape, dtype=DTYPE_NAMES[dt], device=self.device)
                   for n, dt, shape in spec}
        except (ValueError, KeyError, TypeError) as e:
            raise CommError(f"recv_tensors on {g}: the header from rank "
                            f"{g.ranks[src_index]} is not a tensor list ({e})") from e
        payload = [(src_index, t) for t in out.values()]
        self.backend.exchange(g, Transfer("tensors", recvs=payload, peers=(src_index,)))
        return out

    def barrier(self, group: Group) -> None:
        """Return once every member of the group has entered the barrier."""
        g = self._member(group, "barrier")
        if "barrier" in self._native:
            return self._native["barrier"](g)
        peers = tuple(i for i in range(g.size) if i != g.index)
        if peers:
            self.backend.exchange(g, Transfer("barrier", peers=peers))

    def close(self) -> None:
        """Release the backend (and the world, for the Comm that created it)."""
        self.backend.close()
        if self._owns_world and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_world = False

    # -- checks ----------------------------------------------------------------------

    def _member(self, group: Group, op: str, x: torch.Tensor | None = None) -> Group:
        if group.rank != self.rank:
            group = self.group(group.ranks)
        if group.index < 0:
            raise NotAMember(f"{op} on {group}: rank {self.rank} is not a member")
        if max(group.ranks) >= self.world_size:
            raise ValueError(f"{op} on {group}: ranks outside the world of {self.world_size}")
        if x is not None:
            self._checked(x, group, op)
        return group

    def _checked(self, x: torch.Tensor, group: Group, op: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{op} on {group}: expected a tensor, got {type(x).__name__}")
        if x.device != self.device:
            raise ValueError(f"{op} on {group}: tensor on {x.device}, comm on {self.device}")
        dtype_code(x.dtype)
        return x


def _dim(x: torch.Tensor, dim: int) -> int:
    if not -x.dim() <= dim < max(x.dim(), 1):
        raise ValueError(f"dim {dim} is out of range for a tensor of shape {tuple(x.shape)}")
    return dim % max(x.dim(), 1)


def _check_index(g: Group, index: int, op: str, name: str) -> None:
    if type(index) is not int or not 0 <= index < g.size:
        raise ValueError(f"{op} on {g}: {name}={index!r} is not a member index (0..{g.size - 1})")


def _check_peer(g: Group, index: int, op: str, name: str) -> None:
    _check_index(g, index, op, name)
    if index == g.index:
        raise ValueError(f"{op} on {g}: {name}={index} is this rank's own index")


def _check_out(out, shape, x, g, op) -> None:
    if out is not None and (list(out.shape) != list(shape) or out.dtype != x.dtype
                            or out.device != x.device or not out.is_contiguous()):
        raise ValueError(f"{op} on {g}: out must be a contiguous {x.dtype} tensor of shape "
                         f"{tuple(shape)} on {x.device}, got {out.dtype}{tuple(out.shape)} "
                         f"on {out.device}")


def _gather_target(shape, dim, k, x, out, g, op):
    """The output and one receive slot per member; slots are views when contiguous."""
    _check_out(out, shape, x, g, op)
    if out is None:
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
    n = shape[dim] // k
    views = [out.narrow(dim, i * n, n) for i in range(k)]
    if all(v.is_contiguous() for v in views):
        return out, views
    return out, [torch.empty_like(v, memory_format=torch.contiguous_format) for v in views]


def _into(out, result):
    if out is None:
        return result
    return out.copy_(result)


def _finish_gather(out, slots, dim):
    n = slots[0].shape[dim]
    for i, s in enumerate(slots):
        view = out.narrow(dim, i * n, n)
        if s.data_ptr() != view.data_ptr() or not view.is_contiguous():
            view.copy_(s)
    return out
