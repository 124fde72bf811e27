"""The head's side of the other hosts: node agents joining, their ranks, their losses.

`RemoteNodes` belongs to a `WorkerPool` with a `NodeSpec` of several nodes.
It challenges each node agent's `NodeHello`, answers a proven `NodeProof` with
a sealed `NodeWelcome` (slot, world size, rendezvous, nonce; see
`gfdit.workers.node_auth`) and gives the pool one `RemoteProcess` per rank
that node starts: a stand-in for a process the head cannot see, alive until
the agent reports it gone (`NodeLost`) or its heartbeats stop. A node whose
worker died is out: it is told to stop and the world is re-formed without it
(see docs/workers.md, "Several hosts"); the others are told to rejoin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import zmq

from gfdit.comm.errors import PoolError
from gfdit.protocol_nodes import NodeChallenge, NodeHello, NodeLost, NodeProof, NodeStop, NodeWelcome
from gfdit.workers import transport
from gfdit.workers.auth import LOGGED_REFUSALS
from gfdit.workers.node_auth import NodeSession, new_nonce
from gfdit.workers.nodes import NodeSpec

log = logging.getLogger("gfdit.workers.remote")
MAX_CHALLENGES = 64  # hellos waiting for their proof; a flood evicts the oldest (its agent says hello again)


class NodesMissing(PoolError):
    """Expected nodes did not join in time: the world is re-formed without them."""

    def __init__(self, nodes: list[int], seconds: float) -> None:
        self.nodes = nodes
        super().__init__(f"nodes {nodes} did not join within {seconds:.0f} s")


class RemoteProcess:
    """A worker on another host, as far as the head can tell (the `Popen` calls the pool makes)."""

    def __init__(self, node_rank: int) -> None:
        self.node_rank = node_rank
        self.pid = None
        self.returncode: int | None = None
        self.reason = ""

    def poll(self) -> int | None:
        return self.returncode

    def exited(self, code: int, reason: str) -> None:
        if self.returncode is None:
            self.returncode, self.reason = code, reason

    def kill(self) -> None:
        self.exited(-9, "stopped by the head")  # its node agent is told to stop it

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


@dataclass
class _Link:
    identity: bytes
    slot: int
    host: str
    session: NodeSession


@dataclass
class _Challenge:
    hello: NodeHello
    nonce: str  # the head's


class RemoteNodes:
    """Which node agents are expected, joined, lost; see the module doc."""

    def __init__(self, spec: NodeSpec, welcome: Callable[[int, int], NodeWelcome]) -> None:
        self.spec = spec
        self.expected: list[int] = list(range(1, spec.nnodes))  # node ranks that (re)join the next world
        self.links: dict[int, _Link] = {}
        self.processes: dict[int, RemoteProcess] = {}  # world rank -> stand-in
        self.refused = 0
        self._welcome = welcome  # (node_rank, slot) -> the NodeWelcome to send
        self._challenges: dict[bytes, _Challenge] = {}  # identity -> the hello it answers

    @property
    def world_size(self) -> int:
        return self.spec.nproc_per_node * (1 + len(self.expected))

    def slot_of(self, node_rank: int) -> int:
        return 1 + sorted(self.expected).index(node_rank)

    def hosts(self) -> dict[int, str]:
        return {node: link.host for node, link in self.links.items()}

    def handle(self, router: zmq.Socket, identity: bytes, msg) -> list[tuple[int, RemoteProcess]]:
        """A node message; returns the (rank, stand-in) pairs of a node just welcomed."""
        if isinstance(msg, NodeHello):
            self._challenge(router, identity, msg)
        elif isinstance(msg, NodeProof):
            return self._proof(router, identity, msg)
        elif isinstance(msg, NodeLost):
            self._lost(identity, msg)
        return []

    def _challenge(self, router: zmq.Socket, identity: bytes, msg: NodeHello) -> None:
        """Any hello gets a challenge (the same one while its nonce is the same); nothing is decided yet."""
        if self._linked(identity):
            return  # the agent says hello again until it hears back: already welcomed
        waiting = self._challenges.get(identity)
        if waiting is None or waiting.hello != msg:
            if len(self._challenges) >= MAX_CHALLENGES:
                self._challenges.pop(next(iter(self._challenges)))
            waiting = self._challenges[identity] = _Challenge(msg, new_nonce())
        self._send(router, identity, NodeChallenge(nonce=waiting.nonce))

    def _proof(self, router: zmq.Socket, identity: bytes, msg: NodeProof) -> list[tuple[int, RemoteProcess]]:
        waiting = self._challenges.get(identity)
        if waiting is None or waiting.hello.node_rank != msg.node_rank:
            if not self._linked(identity):  # else: a repeat, already answered
                self._refuse(identity, f"proof for node {msg.node_rank} without a challenge for it")
            return []
        hello = waiting.hello
        session = NodeSession(self.spec.token, hello.node_rank, identity, hello.nonce, waiting.nonce, "head")
        if not session.proven(msg.proof):
            self._refuse(identity, f"wrong proof for node {hello.node_rank}")
            return []
        del self._challenges[identity]
        if hello.node_rank not in self.expected or hello.node_rank in self.links:
            why = ("already joined" if hello.node_rank in self.links
                   else f"not expected (expected nodes: {sorted(self.expected) or 'none'})")
            self._send(router, identity, session.seal(NodeStop(reason=f"node {hello.node_rank} {why}")))
            self._refuse(identity, f"node {hello.node_rank} {why}")
            return []
        slot = self.slot_of(hello.node_rank)
        self.links[hello.node_rank] = _Link(identity, slot, hello.host, session)
        self._send(router, identity, session.seal(self._welcome(hello.node_rank, slot)))
        k = self.spec.nproc_per_node
        joined = [(rank, RemoteProcess(hello.node_rank)) for rank in range(slot * k, (slot + 1) * k)]
        self.processes.update(joined)
        log.info("node %d (%s) joined as ranks %d..%d", hello.node_rank, hello.host, slot * k, slot * k + k - 1)
        return joined

    def _linked(self, identity: bytes) -> bool:
        return any(link.identity == identity for link in self.links.values())

    def _lost(self, identity: bytes, msg: NodeLost) -> None:
        link = self.links.get(msg.node_rank)
        if link is None or link.identity != identity:
            self._refuse(identity, f"NodeLost for node {msg.node_rank} from another connection")
        elif (why := link.session.opens(msg)) is not None:
            self._refuse(identity, f"NodeLost for node {msg.node_rank}: {why}")
        elif msg.rank in self.processes and self.processes[msg.rank].node_rank == msg.node_rank:
            self.processes[msg.rank].exited(1, f"on node {msg.node_rank} ({link.host}): {msg.reason}")

    def check_joined(self, seconds: float) -> None:
        missing = sorted(set(self.expected) - set(self.links))
        if missing:
            raise NodesMissing(missing, seconds)

    def drop(self, nodes: list[int]) -> None:
        for node in nodes:
            if node in self.expected:
                self.expected.remove(node)
                log.warning("node %d is out: it did not rejoin; the world is re-formed without it", node)

    def lose(self, rank: int) -> None:
        """The node running `rank` is out of the next world."""
        process = self.processes.get(rank)
        if process is not None and process.node_rank in self.expected:
            self.expected.remove(process.node_rank)
            log.warning("node %d is out: the world is re-formed without it", process.node_rank)

    def stop_all(self, router: zmq.Socket, reason: str, rejoin: bool) -> None:
        """Tell every joined agent to stop its workers: to rejoin (`rejoin` and still
        expected) or to exit."""
        for node, link in self.links.items():
            again = rejoin and node in self.expected
            stop = NodeStop(reason=reason if again else f"{reason}; node {node} is out", rejoin=again)
            self._send(router, link.identity, link.session.seal(stop))
        self.links, self.processes, self._challenges = {}, {}, {}

    def _send(self, router: zmq.Socket, identity: bytes, msg) -> None:
        try:
            router.send_multipart([identity, *transport.encode(msg)])
        except zmq.ZMQError as exc:
            log.warning("cannot reach a node agent: %s", exc)

    def _refuse(self, identity: bytes, why: str) -> None:
        self.refused += 1
        if self.refused <= LOGGED_REFUSALS or self.refused % 1000 == 0:  # a flood cannot flood the log
            log.warning("worker plane: dropped a node message from %r: %s (%d dropped so far)",
                        identity[:40], why, self.refused)


def rendezvous_store(host: str, timeout_s: float):
    """The world's TCPStore on the head, on a port the kernel picks (held for the
    world's life); workers on every host join it as clients (torch's agent-store mode)."""
    from datetime import timedelta

    import torch.distributed as dist

    return dist.TCPStore(host, 0, 1, is_master=True, timeout=timedelta(seconds=timeout_s),
                         wait_for_workers=False)

