"""The `shm` backend: collectives through per-rank shared-memory arenas (one host, CPU).

The CPU twin of symmetric memory. At start every rank maps every rank's arena
(`arena.py`); nothing is created afterwards. A collective is a few *rounds* per
direction: the writer copies a chunk into a lane of its own arena, fills the
descriptor of the peer's sub-slot and raises that pair's epoch flag; the reader
waits for the flag, copies the chunk out and raises its ack flag. Each stream
has two lanes, so the writer fills round t+1 while readers copy round t.

Round 0 of every pair also carries the envelope (`transfer.py`): both sides check
it and a mismatch raises SizeMismatch on both, after round 0 has completed, so
the epochs stay in step. Waits poll with back-off, watch the deadline and the
peers' pids, and raise CommTimeout or PeerFailure; a rank with nothing to do
sleeps on its doorbell, which peers ring after raising a flag (`poll.py`).
"""

from __future__ import annotations

import secrets

import torch
import torch.distributed as dist

from gfdit.comm import cma
from gfdit.comm.arena import ACK, ADDRESS, DATA_ADDRESS, DIRECT, ENV, ERR, LANE, MODE, NBYTES
from gfdit.comm.arena import OFFSET, READY, SUB0, SUB_WORDS, Arena, shm_path, track, untrack
from gfdit.comm.errors import CommError, PeerFailure, SizeMismatch
from gfdit.comm.group import Group
from gfdit.comm.poll import Doorbell, Waiter
from gfdit.comm.transfer import Transfer, check_envelope, envelope, wire_bytes

DEFAULT_ARENA_BYTES = 32 << 20
DEFAULT_LANE_BYTES = 1 << 20  # chunks small enough to stay in cache between copies
DEFAULT_DIRECT_BYTES = 256 << 10  # single messages from this size are read across processes
LANE_ALIGN = 64


class ShmBackend:
    """Group-free collectives through shared-memory arenas; every rank on one host."""

    name = "shm"

    def __init__(self, device: torch.device, timeout_s: float, *,
                 arena_bytes: int = DEFAULT_ARENA_BYTES,
                 lane_bytes: int = DEFAULT_LANE_BYTES,
                 direct_bytes: int | None = DEFAULT_DIRECT_BYTES) -> None:
        if device.type != "cpu":
            raise CommError(f"the shm backend runs on CPU only, not on {device}")
        if arena_bytes < 4 * LANE_ALIGN:
            raise ValueError(f"arena_bytes={arena_bytes} is too small")
        self.device = device
        self.timeout_s = timeout_s
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.arena_bytes = arena_bytes // LANE_ALIGN * LANE_ALIGN
        self.lane_bytes = max(LANE_ALIGN, lane_bytes)
        self._out_epoch = [0] * self.world_size  # rounds posted to each peer
        self._in_epoch = [0] * self.world_size  # rounds consumed from each peer
        self._broken = ""
        self._unacked: set[int] = set()  # peers that may not have acked our last post
        self._map_arenas()
        self.direct_bytes = direct_bytes if direct_bytes is not None and self._probe_cma() else None

    def _map_arenas(self) -> None:
        token = torch.tensor([secrets.randbits(62) if self.rank == 0 else 0])
        dist.broadcast(token, 0)
        tag = f"{int(token):x}"
        own = shm_path(tag, self.rank)
        track(own)
        try:
            self.own = Arena(own, self.world_size, self.arena_bytes, create=True)
            dist.barrier()
            self.peers: list[Arena] = []
            for r in range(self.world_size):
                if r == self.rank:
                    self.peers.append(self.own)
                    continue
                try:
                    self.peers.append(Arena(shm_path(tag, r), self.world_size,
                                            self.arena_bytes, create=False))
                except FileNotFoundError:
                    raise CommError(f"shm: rank {r}'s arena is not on this host; "
                                    "the shm backend needs every rank on one host") from None
            dist.barrier()
            self.bells = [Doorbell(a) for a in self.peers]
        finally:
            _unlink(own)
            untrack(own)

    def _probe_cma(self) -> bool:
        """Can every rank read every peer's memory directly? (a world collective)"""
        ok = all(cma.can_read(a.pid, a.words[DATA_ADDRESS])
                 for r, a in enumerate(self.peers) if r != self.rank)
        flag = torch.tensor([1 if ok else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def exchange(self, group: Group, transfer: Transfer) -> None:
        """Move `transfer`'s messages through the arenas (see the module docstring)."""
        if not transfer.peers:
            transfer.copy_local()
            return
        if self._broken:
            raise CommError(f"{transfer.op} on {group}: the shm comm is broken by an earlier "
                            f"failure ({self._broken})")
        what = f"{transfer.op} on {group} at rank {self.rank}"
        peer_ranks = [group.ranks[p] for p in transfer.peers]
        waiter = Waiter(what, self.timeout_s, {r: self.peers[r].pid for r in peer_ranks},
                        self.bells[self.rank])
        streams: list[_Stream] = []
        try:
            self._settle(what)
            streams = self._plan_streams(group, transfer)
            _attach_local_copies(streams, transfer.local)
            incoming = [_Incoming(self, group, transfer, p) for p in transfer.peers]
            problems = self._round_zero(streams, incoming, waiter, what)
            self._drive(streams, incoming, waiter)
            if problems:
                raise SizeMismatch(problems[0])
        except SizeMismatch:
            for s in streams:
                self._unacked.update(s.envs)
            raise
        except CommError as e:
            self._broken = str(e)
            raise
        for s in streams:
            self._unacked.update(s.envs)

    def _settle(self, what: str) -> None:
        """Wait for the acks a previous exchange left outstanding (its last lane
        rounds are acked lazily, so a collective returns without a last round trip;
        the arena is reused only after they arrive)."""
        late = [r for r in self._unacked
                if self.peers[r].words[self.peers[r].slot(self.rank) + ACK] < self._out_epoch[r]]
        if late:
            waiter = Waiter(f"{what} (acks of the previous collective)", self.timeout_s,
                            {r: self.peers[r].pid for r in late}, self.bells[self.rank])
            while True:
                seen = waiter.doorbell.value()
                late = [r for r in late if self.peers[r].words[
                    self.peers[r].slot(self.rank) + ACK] < self._out_epoch[r]]
                if not late:
                    break
                waiter.pause(seen)
        self._unacked.clear()

    def _plan_streams(self, group: Group, transfer: Transfer) -> list["_Stream"]:
        by_peer: dict[int, list[torch.Tensor]] = {p: [] for p in transfer.peers}
        for index, t in transfer.sends:
            if t.numel():  # empty messages carry no bytes (the envelope still counts them)
                by_peer[index].append(wire_bytes(t))
        shared: dict[tuple, list[int]] = {}
        for p, msgs in by_peer.items():
            key = tuple((m.data_ptr(), m.numel()) for m in msgs)
            shared.setdefault(key, []).append(p)
        direct = {key: self.direct_bytes is not None and len(key) == 1
                  and key[0][1] >= self.direct_bytes for key in shared}
        with_data = sum(1 for key in shared if key and not direct[key])
        lane = max(LANE_ALIGN, min(self.lane_bytes, self.arena_bytes // (2 * max(1, with_data))))
        lane = lane // LANE_ALIGN * LANE_ALIGN
        if 2 * with_data * lane > self.arena_bytes:
            raise CommError(f"{transfer.op} on {group}: {with_data} distinct streams need "
                            f"{2 * with_data * lane} arena bytes, the arena has "
                            f"{self.arena_bytes}; raise arena_bytes")
        streams, slot = [], 0
        for key, peers in shared.items():
            in_lane = bool(key) and not direct[key]
            base = slot * 2 * lane if in_lane else 0
            slot += 1 if in_lane else 0
            envs = {group.ranks[p]: envelope(transfer, group, p) for p in peers}
            streams.append(_Stream(self, by_peer[peers[0]], envs, (base, base + lane),
                                   lane if in_lane else max(lane, 1 << 62), direct[key]))
        return streams

    def _round_zero(self, streams, incoming, waiter, what) -> list[str]:
        """Post and consume round 0 everywhere; return the envelope mismatches.

        Both ends of a pair that disagrees see it in round 0 and move nothing more
        between them; the other pairs go on (`_drive`), so a member that agrees
        with everyone is served instead of waiting for rounds that never come."""
        for s in streams:
            s.post()
        pending = list(incoming)
        while pending or not all(s.acked() for s in streams if s.direct or s.rounds > 1):
            seen = waiter.doorbell.value()
            progressed = False
            for inc in list(pending):
                if inc.consume():
                    pending.remove(inc)
                    progressed = True
            if not progressed:
                waiter.pause(seen)
        problems = [inc.mismatch for inc in incoming if inc.mismatch]
        problems += [s.rejection() for s in streams if s.rejection()]
        if problems:
            bad = {inc.peer for inc in incoming if inc.mismatch}
            for s in streams:
                dropped = bad | s.rejected()
                self._unacked.update(r for r in dropped if r in s.envs)  # round 0's acks
                s.drop(dropped)
        return problems

    def _drive(self, streams, incoming, waiter) -> None:
        """The remaining rounds, double-buffered, until every peer has acked."""
        while True:
            seen = waiter.doorbell.value()
            progressed = False
            for s in streams:
                progressed |= s.step()
            for inc in incoming:
                progressed |= inc.consume()
            if all(s.finished() for s in streams) and all(i.finished() for i in incoming):
                return
            if not progressed:
                waiter.pause(seen)

    def close(self) -> None:
        for arena in getattr(self, "peers", []):
            arena.close()
        self.peers = []


class _Stream:
    """Bytes this rank sends (one copy, even when several peers read them)."""

    def __init__(self, backend: ShmBackend, msgs, envs: dict[int, list[int]],
                 lanes: tuple[int, int], lane: int, direct: bool) -> None:
        self.b = backend
        self.msgs = msgs
        self.nbytes = sum(m.numel() for m in msgs)
        self.envs = envs  # peer rank -> envelope
        self.lanes = lanes
        self.lane = lane
        self.rounds = max(1, -(-self.nbytes // lane))
        self.posted = 0
        self.first = {r: backend._out_epoch[r] + 1 for r in envs}
        self.mirror: torch.Tensor | None = None  # this rank's own copy, filled from the lane
        self.direct = direct  # readers copy straight from msgs[0] (one round)

    def post(self) -> None:
        """Copy round `posted` into its lane and raise every reader's flag."""
        t = self.posted
        start, end = t * self.lane, min(self.nbytes, (t + 1) * self.lane)
        offset = self.lanes[t % 2]
        if not self.direct:
            _copy_out(self.msgs, start, end, self.b.own.data, offset)
        if self.mirror is not None:  # the lane is still in cache: cheaper than the source
            self.mirror[start:end].copy_(self.b.own.data[offset: offset + end - start])
        words, own = self.b.own.words, self.b.own
        for r, env in self.envs.items():
            epoch = self.first[r] + t
            sub = own.slot(r) + SUB0 + (epoch % 2) * SUB_WORDS
            words[sub + OFFSET] = offset
            words[sub + NBYTES] = end - start
            words[sub + MODE] = DIRECT if self.direct else LANE
            words[sub + ADDRESS] = self.msgs[0].data_ptr() if self.direct else 0
            if t == 0:
                words[sub + ENV: sub + ENV + 9] = memoryview(_pack(env)).cast("q")
            words[sub + READY] = epoch
            self.b._out_epoch[r] = epoch
            self.b.bells[r].ring()
        self.posted += 1

    def acked(self, rounds_back: int = 0) -> bool:
        """Has every reader acked round posted-1-rounds_back?"""
        t = self.posted - 1 - rounds_back
        if t < 0:
            return True
        return all(self._ack(r) >= self.first[r] + t for r in self.envs)

    def _ack(self, r: int) -> int:
        peer = self.b.peers[r]
        return peer.words[peer.slot(self.b.rank) + ACK]

    def rejected(self) -> set[int]:
        """Readers that refused this stream's envelope in round 0."""
        return {r for r in self.envs
                if self.b.peers[r].words[self.b.peers[r].slot(self.b.rank) + ERR] == self.first[r]}

    def rejection(self) -> str:
        for r in sorted(self.rejected()):
            return f"rank {r} rejected what rank {self.b.rank} sent (see rank {r}'s error)"
        return ""

    def drop(self, ranks: set[int]) -> None:
        """Stop serving `ranks` after round 0 (their envelopes disagreed)."""
        for r in ranks:
            self.envs.pop(r, None)
            self.first.pop(r, None)

    def step(self) -> bool:
        if self.posted < self.rounds and self.acked(rounds_back=1):
            self.post()
            return True
        return False

    def finished(self) -> bool:
        """All rounds posted; a direct stream also needs every ack (readers copy from
        the caller's tensor), a lane stream's last acks are awaited lazily (_settle)."""
        return self.posted == self.rounds and (not self.direct or self.acked())


class _Incoming:
    """Bytes this rank receives from one peer, into exact buffers."""

    def __init__(self, backend: ShmBackend, group: Group, transfer: Transfer, index: int) -> None:
        self.b, self.group, self.transfer, self.index = backend, group, transfer, index
        self.peer = group.ranks[index]
        self.bufs = [wire_bytes(t) for t in transfer.from_(index)]
        self.nbytes = sum(m.numel() for m in self.bufs)
        self.received = 0
        self.rounds = 0
        self.mismatch = ""

    def finished(self) -> bool:
        return self.rounds > 0 and (self.received == self.nbytes or bool(self.mismatch))

    def _read_direct(self, src: Arena, address: int, n: int) -> None:
        try:
            cma.read_into(src.pid, address, n, self.bufs, self.received)
        except OSError as e:
            raise PeerFailure(f"{self.transfer.op} on {self.group}: reading rank {self.peer}'s "
                              f"memory failed ({e})") from e

    def consume(self) -> bool:
        """Copy the next round out if its flag is up; ack it. True if it did."""
        if self.finished():
            return False
        epoch = self.b._in_epoch[self.peer] + 1
        src = self.b.peers[self.peer]
        sub = src.slot(self.b.rank) + SUB0 + (epoch % 2) * SUB_WORDS
        if src.words[sub + READY] != epoch:
            return False
        own = self.b.own
        if self.rounds == 0:
            theirs = list(src.words[sub + ENV: sub + ENV + 9])
            try:
                check_envelope(self.transfer, self.group, self.index, theirs)
            except SizeMismatch as e:
                self.mismatch = str(e)
                own.words[own.slot(self.peer) + ERR] = epoch
        if not self.mismatch:
            n = src.words[sub + NBYTES]
            if self.received + n > self.nbytes:
                raise SizeMismatch(f"{self.transfer.op} on {self.group}: rank {self.peer} "
                                   f"sent more than the {self.nbytes} bytes expected")
            if src.words[sub + MODE] == DIRECT:
                self._read_direct(src, src.words[sub + ADDRESS], n)
            else:
                _copy_in(src.data, src.words[sub + OFFSET], n, self.bufs, self.received)
            self.received += n
        self.rounds += 1
        self.b._in_epoch[self.peer] = epoch
        own.words[own.slot(self.peer) + ACK] = epoch
        self.b.bells[self.peer].ring()
        return True


def _attach_local_copies(streams, local) -> None:
    """A local copy whose source is a stream's only message is made from the lane
    as each round is posted; any other is made now."""
    for src, dst in local:
        if src.data_ptr() == dst.data_ptr():  # in place
            continue
        sb = wire_bytes(src)
        match = [s for s in streams if len(s.msgs) == 1 and s.mirror is None and not s.direct
                 and s.msgs[0].data_ptr() == sb.data_ptr() and s.msgs[0].numel() == sb.numel()]
        if match and sb.numel() == dst.numel() * dst.element_size():
            match[0].mirror = wire_bytes(dst)
        else:
            dst.copy_(src)


def _pack(values: list[int]) -> bytes:
    return b"".join(int(v).to_bytes(8, "little", signed=True) for v in values)


def _copy_out(msgs, start: int, end: int, arena: torch.Tensor, offset: int) -> None:
    """Copy bytes [start, end) of the concatenated messages into arena[offset:]."""
    pos = 0
    for m in msgs:
        lo, hi = max(start, pos), min(end, pos + m.numel())
        if lo < hi:
            arena[offset + lo - start: offset + hi - start].copy_(m[lo - pos: hi - pos])
        pos += m.numel()


def _copy_in(arena: torch.Tensor, offset: int, n: int, bufs, at: int) -> None:
    """Copy arena[offset:offset+n] into the concatenated buffers from byte `at`."""
    pos = 0
    for b in bufs:
        lo, hi = max(at, pos), min(at + n, pos + b.numel())
        if lo < hi:
            b[lo - pos: hi - pos].copy_(arena[offset + lo - at: offset + hi - at])
        pos += b.numel()


def _unlink(path: str) -> None:
    import os

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
