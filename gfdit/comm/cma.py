"""Cross-memory attach: copy bytes straight out of a peer process (`process_vm_readv`).

The `shm` backend uses it for large single-message streams: the writer
publishes the address of its source tensor and the reader copies from there in
one step, instead of the writer copying into its arena and the reader out of it.
It needs ptrace permission on the peer (same user; Yama ptrace_scope 0, or
CAP_SYS_PTRACE); the backend probes every pair at start and falls back to the
arenas where any pair is refused.
"""

from __future__ import annotations

import ctypes
import os

import torch


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


try:
    _readv = ctypes.CDLL(None, use_errno=True).process_vm_readv
    _readv.restype = ctypes.c_ssize_t
    _readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p,
                       ctypes.c_ulong, ctypes.c_ulong]
except (OSError, AttributeError):  # no libc symbol: the arenas are used
    _readv = None


def read_into(pid: int, address: int, nbytes: int, bufs: list[torch.Tensor], at: int) -> None:
    """Copy `nbytes` from `address` in process `pid` into the concatenated byte
    tensors `bufs`, starting at byte `at` of them. Raises OSError on failure."""
    done = 0
    while done < nbytes:
        local = _local_iovecs(bufs, at + done, nbytes - done)
        n = len(local)
        remote = _Iovec(address + done, nbytes - done)
        got = _readv(pid, ctypes.byref((_Iovec * n)(*local)), n, ctypes.byref(remote), 1, 0)
        if got <= 0:
            err = ctypes.get_errno()
            raise OSError(err, f"process_vm_readv from pid {pid}: {os.strerror(err)}")
        done += got


def _local_iovecs(bufs, at: int, n: int) -> list[_Iovec]:
    out, pos = [], 0
    for b in bufs:
        lo, hi = max(at, pos), min(at + n, pos + b.numel())
        if lo < hi:
            out.append(_Iovec(b.data_ptr() + lo - pos, hi - lo))
        pos += b.numel()
    return out


def can_read(pid: int, address: int) -> bool:
    """Can this process read 8 bytes at `address` of process `pid`?"""
    if _readv is None:
        return False
    probe = torch.empty(8, dtype=torch.uint8)
    try:
        read_into(pid, address, 8, [probe], 0)
    except OSError:
        return False
    return True
