"""A node agent: `gfdit worker --head tcp://HOST:PORT --node-rank R` on a host other than the head's.

It connects to the head's worker plane, and the two prove the shared token to
each other (`gfdit.workers.node_auth`: hello with the agent's nonce, the head's
challenge, the agent's proof, then a welcome sealed with the session key). It
starts the worker processes only for a welcome that opens with that key (model,
world size, rendezvous and the nonce come from the head; nothing else is
configured here); a welcome that does not is refused and logged, and the agent
exits 1 at `join_timeout_s` if no proven one came. Every later message from the
head must open too: a forged or replayed `NodeStop` is dropped and logged. Then
it watches its workers:
  * a worker exits with an error: the agent reports `NodeLost` (the head
    re-forms the world without this node), stops the others and exits 1 once
    the head answers `NodeStop` (or after `lost_wait_s`);
  * a worker exits 0: the head shut it down (`Shutdown`, on the worker's own
    connection) and its `NodeStop` for the agent follows on the agent's, in no
    fixed order with it (the head sends it once its own workers are gone): the
    agent waits for that `NodeStop` (a loss only after `lost_wait_s` without one);
  * `NodeStop(rejoin=True)`: the head re-forms the world with this node; the
    agent stops its workers and says hello again;
  * `NodeStop(rejoin=False)`: it stops its workers and exits 0;
  * the connection to the head drops (the head died without a word: ZMTP
    heartbeats time out after `HEAD_SILENCE_MS`): it stops its workers and says
    hello again until `join_timeout_s`, so a restarted head takes it back (a
    `NodeStop` the head sent before it went is read first, and followed);
  * SIGTERM / Ctrl-C: it stops its workers and exits 0 (the head sees them go).
Worker logs go to a private temporary directory; a lost worker's last lines are
in the `NodeLost` reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import zmq

from gfdit.protocol import ProtocolError
from gfdit.protocol_nodes import NodeChallenge, NodeHello, NodeLost, NodeProof, NodeStop, NodeWelcome
from gfdit.workers import auth, transport
from gfdit.workers.node_auth import NodeSession, new_nonce
from gfdit.workers.nodes import gloo_env, pool_secret, tcp_host_port, worker_argv

log = logging.getLogger("gfdit.worker")
HELLO_EVERY_S = 2.0
HEAD_SILENCE_MS = 5000  # the connection to the head is dropped after this long without a ZMTP pong


class NodeAgent:
    """One host's workers, on behalf of the head; see the module doc."""

    def __init__(self, head: str, node_rank: int, token: str, *, join_timeout_s: float = 600.0,
                 lost_wait_s: float = 30.0, adapter: str = "") -> None:
        self.head, self.node_rank, self.token = head, node_rank, token
        self.adapter = adapter  # this host's choice (module:callable), never the welcome's (see docs/server.md)
        self.host, self.port = tcp_host_port(head)
        self.join_timeout_s, self.lost_wait_s = join_timeout_s, lost_wait_s
        self.stopping = threading.Event()  # set by a signal handler
        self.context = zmq.Context()
        self.dir = Path(tempfile.mkdtemp(prefix="gfdit-node-"))
        self.children: dict[int, subprocess.Popen] = {}
        self.session: NodeSession | None = None  # this connection's handshake with the head

    def run(self) -> int:
        """Join, serve, rejoin when asked; the exit code of the command."""
        try:
            while not self.stopping.is_set():
                socket = self._dealer()
                try:
                    welcome = self._join(socket)
                    if not isinstance(welcome, NodeWelcome):
                        return welcome  # an exit code: refused, or the head never answered
                    self._start(welcome)
                    outcome = self._watch(socket)
                finally:
                    self._stop_children()
                    socket.disable_monitor()
                    self.monitor.close(linger=0)
                    socket.close(linger=1000)
                if outcome is not None:
                    return outcome
            return 0
        finally:
            self.context.term()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _dealer(self) -> zmq.Socket:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.IDENTITY, auth.new_identity(self.node_rank, "node"))
        socket.setsockopt(zmq.HEARTBEAT_IVL, 1000)  # ZMTP pings: a head that died without a word is noticed
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEAD_SILENCE_MS)
        self.monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        socket.connect(self.head)
        return socket

    def _send(self, socket: zmq.Socket, msg) -> None:
        socket.send_multipart(transport.encode(msg))

    def _join(self, socket: zmq.Socket) -> NodeWelcome | int:
        """Say hello (again every `HELLO_EVERY_S`: a hello sent while the head re-binds is lost),
        answer the head's challenge, and wait for a welcome that proves the token."""
        deadline = time.monotonic() + self.join_timeout_s
        nonce, next_hello, refused = new_nonce(), 0.0, 0
        self.session = None
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if time.monotonic() >= next_hello:
                self._send(socket, NodeHello(node_rank=self.node_rank, nonce=nonce, host=os.uname().nodename[:256]))
                next_hello = time.monotonic() + HELLO_EVERY_S
            msg = self._receive(socket, 0.5)
            if isinstance(msg, NodeChallenge):
                while self.monitor.poll(0):  # a disconnect before this answer was the previous head's, not this one's
                    self.monitor.recv_multipart()
                if self.session is None or self.session.head_nonce != msg.nonce:
                    self.session = NodeSession(self.token, self.node_rank, socket.getsockopt(zmq.IDENTITY),
                                               nonce, msg.nonce, "node")
                self._send(socket, NodeProof(node_rank=self.node_rank, proof=self.session.proof))
            elif isinstance(msg, (NodeWelcome, NodeStop)):
                if not self._proven(msg, "during the handshake"):
                    refused += 1
                elif isinstance(msg, NodeWelcome):
                    log.info("node %d joined %s as ranks %d..%d of %d (%s)", self.node_rank, self.head,
                             msg.slot * msg.nproc_per_node, (msg.slot + 1) * msg.nproc_per_node - 1,
                             msg.world_size, msg.model)
                    return msg
                else:
                    log.error("the head refused node %d: %s", self.node_rank, msg.reason)
                    return 2
        if self.stopping.is_set():
            return 0
        if refused:
            log.error("no proven welcome from %s within %.0f s: refused %d message(s) that did not prove the "
                      "token (the head has another node token, or this is not the head)",
                      self.head, self.join_timeout_s, refused)
        else:
            log.error("no answer from %s within %.0f s (wrong address or node token? the head drops a wrong "
                      "proof without a word)", self.head, self.join_timeout_s)
        return 1

    def _proven(self, msg, when: str) -> bool:
        """True if `msg` opens with this session's key and is new; else it is logged and dropped."""
        why = "no challenge answered yet" if self.session is None else self.session.opens(msg)
        if why is not None:
            log.error("node %d refused a %s from %s %s: %s; ignored", self.node_rank, type(msg).__name__,
                      self.head, when, why)
        return why is None

    def _start(self, welcome: NodeWelcome) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TORCHELASTIC_USE_AGENT_STORE="True")
        for name in ("GFDIT_TOKEN", "GFDIT_NODE_TOKEN"):  # the workers need only their world's secret
            env.pop(name, None)
        env[auth.SECRET_ENV] = pool_secret(self.token, welcome.nonce)
        env.update(gloo_env(env, self.host, self.port))
        if welcome.adapter != self.adapter:
            log.warning("the head names adapter %r; this node imports only its own (--adapter %r)",
                        welcome.adapter[:200], self.adapter)
        plan = msgspec.structs.replace(welcome, adapter=self.adapter)
        first = welcome.slot * welcome.nproc_per_node
        for rank in range(first, first + welcome.nproc_per_node):
            with open(self.dir / f"worker-{rank}.log", "wb") as out:
                self.children[rank] = subprocess.Popen(
                    worker_argv(sys.executable, plan, rank, self.head), env=env, stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _watch(self, socket: zmq.Socket) -> int | None:
        """Until the head says stop (None: rejoin) or a worker is lost (exit code)."""
        shut_down: dict[int, float] = {}  # rank -> when it exited 0
        while not self.stopping.is_set():
            dropped = bool(self.monitor.poll(0))  # first: what the head sent before it went is queued by now
            msg = self._receive(socket, 0.0 if dropped else 0.2)
            if isinstance(msg, NodeStop) and self._proven(msg, "while serving"):
                log.info("the head stops node %d: %s", self.node_rank, msg.reason)
                return None if msg.rejoin else 0
            if dropped and msg is None:  # its last words read, none of them a stop
                self.monitor.recv_multipart()
                log.warning("node %d lost its connection to the head; stopping its workers and saying hello "
                            "again (a restarted head takes it back)", self.node_rank)
                return None
            if not dropped and (gone := self._gone(shut_down)) is not None:
                return self._lost(socket, *gone)
        return 0

    def _gone(self, shut_down: dict[int, float]) -> tuple[int, int] | None:
        """(rank, exit code) of a lost worker: one that exited with an error, or exited 0 (the head's
        `Shutdown`, whose `NodeStop` comes on this connection, in no fixed order with it) and no
        `NodeStop` followed within `lost_wait_s`; else None. `shut_down` keeps when each exited 0."""
        now = time.monotonic()
        for rank, child in self.children.items():
            code = child.poll()
            if code == 0 and now - shut_down.setdefault(rank, now) < self.lost_wait_s:
                continue  # shut down by the head: its NodeStop says whether to rejoin or exit
            if code is not None:
                return rank, code
        return None

    def _lost(self, socket: zmq.Socket, rank: int, code: int) -> int:
        reason = f"worker {rank} exited with code {code}: {self._tail(rank)}"
        log.error("node %d: %s", self.node_rank, reason)
        self._send(socket, self.session.seal(NodeLost(node_rank=self.node_rank, rank=rank, reason=reason)))
        self._stop_children()
        deadline = time.monotonic() + self.lost_wait_s
        while not self.stopping.is_set() and time.monotonic() < deadline:
            msg = self._receive(socket, 0.2)
            if isinstance(msg, NodeStop) and self._proven(msg, "after a loss"):
                break
        return 1

    def _receive(self, socket: zmq.Socket, timeout_s: float):
        if not socket.poll(int(timeout_s * 1000)):
            return None
        try:
            msg, _ = transport.decode(socket.recv_multipart(), transport.TO_NODE)
        except ProtocolError as exc:
            log.warning("ignored a malformed message from the head: %s", exc)
            return None
        return msg

    def _stop_children(self, grace_s: float = 5.0) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + grace_s
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children = {}

    def _tail(self, rank: int, lines: int = 5) -> str:
        try:
            text = (self.dir / f"worker-{rank}.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"
