"""Shared-memory arenas: one per rank, mapped by every rank of the host, set up once.

An arena is a header of int64 words (the owner's pid, a doorbell, then one slot
per peer with epoch flags and message descriptors) followed by a data region.
Only the owner writes its arena, except the doorbell, which peers bump after
raising a flag the owner may be sleeping on (`poll.py`). The files are unlinked as soon as every
rank has mapped every arena, so nothing is left in /dev/shm when a process
exits or is killed (the memory goes away with the last mapping). A process that
dies during set-up is covered by multiprocessing's resource tracker.

Memory ordering: a writer fills data and descriptors before it stores the epoch
flag, and a reader loads the flag before the data. x86-64 keeps stores in order
(TSO) and loads in order, which these plain stores rely on.
"""

from __future__ import annotations

import mmap
import os
from multiprocessing import resource_tracker

import torch

MAGIC = 0x67664172656E61  # "gfArena"
GLOBAL_WORDS = 8  # magic, pid, world_size, data_bytes, doorbell, data address
DOORBELL = 4  # the one word peers write: bumped (then futex-woken) after each flag they raise
DATA_ADDRESS = 5  # where the owner sees its data region (for the cross-memory probe)
SLOT_WORDS = 40  # per peer: ack, err, then two sub-slots of SUB_WORDS
SUB_WORDS = 16  # ready, offset, nbytes, envelope (9 words), mode, address
ACK, ERR, SUB0 = 0, 1, 8
READY, OFFSET, NBYTES, ENV, MODE, ADDRESS = 0, 1, 2, 3, 12, 13
LANE, DIRECT = 0, 1  # MODE: bytes in the arena's lane at OFFSET, or at ADDRESS in the writer
ALIGN = 4096


def header_bytes(world_size: int) -> int:
    raw = (GLOBAL_WORDS + world_size * SLOT_WORDS) * 8
    return (raw + ALIGN - 1) // ALIGN * ALIGN


class Arena:
    """One rank's mapping of an arena file (its own, or a peer's)."""

    def __init__(self, path: str, world_size: int, data_bytes: int, *, create: bool) -> None:
        self.path = path
        self.size = header_bytes(world_size) + data_bytes
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, self.size)
            elif os.fstat(fd).st_size != self.size:
                raise ValueError(f"arena {path} has {os.fstat(fd).st_size} bytes, "
                                 f"expected {self.size}")
            self.map = mmap.mmap(fd, self.size)
        finally:
            os.close(fd)
        self.words = memoryview(self.map)[: header_bytes(world_size)].cast("q")
        self.data = torch.frombuffer(self.map, dtype=torch.uint8,
                                     offset=header_bytes(world_size), count=data_bytes)
        self.doorbell_address = self.data.data_ptr() - header_bytes(world_size) + DOORBELL * 8
        if create:
            self.words[1] = os.getpid()
            self.words[2] = world_size
            self.words[3] = data_bytes
            self.words[DATA_ADDRESS] = self.data.data_ptr()
            self.words[0] = MAGIC

    @property
    def pid(self) -> int:
        return self.words[1]

    def slot(self, peer: int) -> int:
        """Index of the first word of `peer`'s slot."""
        return GLOBAL_WORDS + peer * SLOT_WORDS

    def close(self) -> None:
        self.data = None
        self.words.release()
        try:
            self.map.close()
        except BufferError:  # a tensor view still exported: the GC unmaps it later
            pass


def shm_path(token: str, rank: int) -> str:
    return f"/dev/shm/gfdit-{token}-r{rank}"


def track(path: str) -> None:
    """Let the resource tracker unlink `path` if this process dies before `untrack`."""
    resource_tracker.register("/" + os.path.basename(path), "shared_memory")


def untrack(path: str) -> None:
    resource_tracker.unregister("/" + os.path.basename(path), "shared_memory")
