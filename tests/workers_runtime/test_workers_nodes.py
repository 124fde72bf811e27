"""The head's side of several hosts, with emulated workers: a node agent that proves the
token joins and its ranks run tasks; a hello with a wrong proof gets no answer and is counted;
a restart after the node's worker dies re-forms the world on the head alone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from gfdit.comm.launch import free_port
from gfdit.protocol_nodes import NodeChallenge, NodeHello, NodeProof
from gfdit.workers import transport
from gfdit.workers.node_auth import NodeSession, new_nonce
from gfdit.workers.nodes import NodeSpec, pool_secret
from gfdit.workers.pool import WorkerPool

from test_workers_emulated import cost_model, task

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _agent(address: str, token: str, join_timeout: int, capture: bool = False) -> subprocess.Popen:
    """`gfdit worker` for node 1 of a 2-node world, its token from the environment (output kept if `capture`)."""
    out = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) if capture else \
        dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "gfdit", "worker", "--head", address, "--node-rank", "1",
                             "--join-timeout", str(join_timeout)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT), GFDIT_TOKEN=token), **out)


def _stop(agent: subprocess.Popen) -> None:
    if agent.poll() is None:
        agent.terminate()
        agent.wait(timeout=30)


def _head(address: str, token: str, **options) -> WorkerPool:
    """The head's pool: rank 0 here, rank 1 on the node agent, emulated workers."""
    return WorkerPool(2, "tiny", emulate=cost_model(), address=address, nodes=NodeSpec(2, 1, token), **options)


def _slow_to_stop(pool: WorkerPool, seconds: float) -> threading.Timer:
    """The head's own worker (rank 0) stopped for `seconds` (as one freeing a GPU can take): the head's
    stop for the node agent (sent after its own workers are gone) comes that much after the `Shutdown`
    its worker on the node acts on at once."""
    pid = pool.pids[0]
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(seconds, _resume, (pid,))
    resume.start()
    return resume


def _resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass  # killed at the end of the close's grace already


def _attack(address: str, token_guess: str) -> bool:
    """A hello for node 1, its challenge answered with the wrong token; True if anything but the
    challenge came back within 8 s."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    identity = b"attacker"
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(address)
    try:
        nonce = new_nonce()
        sock.send_multipart(transport.encode(NodeHello(node_rank=1, nonce=nonce)))
        assert sock.poll(60000), "no challenge"  # the hello waits in ZeroMQ until the pool binds and reads
        challenge, _ = transport.decode(sock.recv_multipart(), transport.TO_NODE)
        assert isinstance(challenge, NodeChallenge)
        session = NodeSession(token_guess, 1, identity, nonce, challenge.nonce, "node")
        sock.send_multipart(transport.encode(NodeProof(node_rank=1, proof=session.proof)))
        return bool(sock.poll(8000))
    finally:
        sock.close(linger=0)
        ctx.term()


def test_a_proven_node_joins_a_wrong_proof_is_dropped_and_a_lost_node_leaves(tmp_path):
    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    answered = []
    attacker = threading.Thread(target=lambda: answered.append(_attack(address, "a-wrong-guess")))
    attacker.start()  # its hello waits in ZeroMQ until the pool binds the port
    agent = _agent(address, token, join_timeout=60, capture=True)
    pool = _head(address, token, heartbeat_timeout_s=10, start_timeout_s=60)
    try:
        while attacker.is_alive():
            pool.poll(0.2)  # the pool reads its socket when polled: the attacker's hello, then its proof
        assert answered == [False]  # no answer to a wrong proof, and node 1 still joined
        assert pool.status()["refused_messages"] >= 1
        assert pool.status()["nodes"][1]
        assert pool._peers.secret == pool_secret(token, pool._nonce)  # derived, never sent
        done = pool.run(task("encode", (0, 1), emulate_s=0.01), timeout=30)
        assert done.ok and done.ranks == (0, 1)
        (worker,) = [int(c) for t in Path(f"/proc/{agent.pid}/task").iterdir()
                     for c in (t / "children").read_text().split()]
        os.kill(worker, 9)  # the second host's only worker
        deadline = time.monotonic() + 20
        while not pool.dead_ranks and time.monotonic() < deadline:
            pool.poll(0.2)
        assert pool.dead_ranks == {1}
        pool.restart()
        assert pool.num_workers == 1  # re-formed on the head alone
        assert pool.run(task("encode", (0,), emulate_s=0.01, task_id=2), timeout=30).ok
        assert agent.wait(timeout=30) == 1  # told its node is out
    finally:
        pool.close()
        _stop(agent)


def test_a_killed_node_agent_is_noticed_without_waiting_for_heartbeats(tmp_path):
    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, token, join_timeout=60)
    pool = _head(address, token, heartbeat_timeout_s=120, start_timeout_s=60)
    try:
        agent.kill()  # the whole node agent: its worker sees its parent gone
        agent.wait(timeout=10)
        deadline = time.monotonic() + 20
        events = []
        while not pool.dead_ranks and time.monotonic() < deadline:
            events += pool.poll(0.2)
        assert pool.dead_ranks == {1}, events  # well before the 120 s heartbeat time-out
        assert "parent process" in next(e.reason for e in events if hasattr(e, "reason"))
    finally:
        pool.close()


def test_a_head_that_dies_without_a_word_gets_the_node_back_when_it_restarts(tmp_path):
    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, token, join_timeout=60)
    try:
        first = _head(address, token, start_timeout_s=60)
        first._router.close(linger=0)  # the head's socket goes away with no NodeStop, as in a crash
        first._router = None
        first.close(grace_s=0)
        second = _head(address, token, start_timeout_s=60)  # the agent notices, stops its worker and joins again
        try:
            assert second.run(task("encode", (0, 1), emulate_s=0.01), timeout=30).ok
        finally:
            second.close()
        assert agent.wait(timeout=30) == 0  # the second head's close told it to stop
    finally:
        _stop(agent)


def test_a_head_whose_own_worker_is_slow_to_stop_still_lets_its_node_agent_exit_0(tmp_path):
    """The node's worker exits 0 on the head's `Shutdown` before the head's `NodeStop` comes (they travel on two
    connections, and the head sends the stop once its own workers are gone): that is no lost worker."""
    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, token, join_timeout=60, capture=True)
    pool = _head(address, token, start_timeout_s=60)
    try:
        assert pool.run(task("encode", (0, 1), emulate_s=0.01), timeout=30).ok
        resume = _slow_to_stop(pool, 3.0)
        pool.close()
        resume.join()
        assert agent.wait(timeout=30) == 0, agent.stdout.read()
    finally:
        pool.close()
        _stop(agent)


def test_a_restart_whose_own_worker_is_slow_to_stop_keeps_the_healthy_node(tmp_path):
    """The same order in a restart: the agent must rejoin (its worker's clean exit is not a loss), so the
    new world has both nodes instead of dropping a healthy host."""
    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, token, join_timeout=120, capture=True)
    pool = _head(address, token, heartbeat_timeout_s=30, start_timeout_s=60)
    try:
        assert pool.run(task("encode", (0, 1), emulate_s=0.01), timeout=30).ok
        resume = _slow_to_stop(pool, 3.0)
        pool.restart()
        resume.join()
        assert pool.num_workers == 2 and agent.poll() is None, pool.status()
        assert pool.run(task("encode", (0, 1), emulate_s=0.01, task_id=2), timeout=30).ok
    finally:
        pool.close()
        _stop(agent)


def test_a_worker_shut_down_without_a_node_stop_is_lost_after_the_wait(tmp_path):
    """A clean exit waits for the head's NodeStop only `lost_wait_s`: then the worker is reported lost."""
    from gfdit.protocol import Shutdown
    from gfdit.workers.node_agent import NodeAgent

    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = NodeAgent(address, 1, token, join_timeout_s=60, lost_wait_s=2.0)
    codes = []
    thread = threading.Thread(target=lambda: codes.append(agent.run()))
    thread.start()
    pool = _head(address, token, heartbeat_timeout_s=120, start_timeout_s=60)
    try:
        pool._send(1, Shutdown(reason="no NodeStop follows"))  # its worker exits 0; the head says nothing more
        deadline = time.monotonic() + 30
        events = []
        while not pool.dead_ranks and time.monotonic() < deadline:
            events += pool.poll(0.2)
        assert pool.dead_ranks == {1}, events
        assert "exited with code 0" in next(e.reason for e in events if hasattr(e, "reason"))
    finally:
        pool.close()
        agent.stopping.set()
        thread.join(timeout=60)
    assert codes == [1]


def test_a_stop_that_comes_with_the_heads_drop_is_followed(tmp_path):
    """The head's last `NodeStop` and its connection's drop can both come while the agent is not looking:
    the stop counts (exit 0), not the drop (which would have it say hello again until its join time-out)."""
    from gfdit.workers.node_agent import NodeAgent

    class LooksAway(NodeAgent):
        """Once armed, one poll for the head's messages ends just before the head sends its stop and goes."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.armed, self.looked_away, self.head_gone = threading.Event(), threading.Event(), threading.Event()

        def _receive(self, socket, timeout_s):
            msg = super()._receive(socket, timeout_s)
            if msg is None and self.children and self.armed.is_set() and not self.looked_away.is_set():
                self.looked_away.set()  # the head may go now
                self.head_gone.wait(60)
                self.monitor.poll(10000)  # the drop is there to see (not read)
            return msg

    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = LooksAway(address, 1, token, join_timeout_s=60)
    codes = []
    thread = threading.Thread(target=lambda: codes.append(agent.run()))
    thread.start()
    pool = _head(address, token, start_timeout_s=60)
    try:
        agent.join_timeout_s = 3  # a join after the drop finds no head: it gives up soon
        agent.armed.set()
        assert agent.looked_away.wait(30)
    finally:
        pool.close()  # its NodeStop, then its socket goes
        agent.head_gone.set()
        thread.join(timeout=60)
    assert codes == [0]


def test_a_restart_after_a_failed_re_form_forms_the_world_again_with_the_waiting_agents(tmp_path):
    """A re-form that failed closed the pool with rejoin (its router gone, the agents told to wait):
    the next try must re-form, not crash on the closed socket (the server then lost its workers for good)."""
    token = "the-right-token"
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, token, join_timeout=120)
    pool = _head(address, token, heartbeat_timeout_s=120, start_timeout_s=120)
    try:
        pool.close(rejoin=True)  # what a failed start inside restart leaves behind
        pool.restart()
        assert pool.num_workers == 2 and agent.poll() is None, pool.status()  # node 1 came back
        assert pool.run(task("encode", (0, 1), emulate_s=0.01, task_id=3), timeout=30).ok
    finally:
        pool.close()
        _stop(agent)


def test_the_agent_never_imports_the_adapter_a_welcome_names(tmp_path):
    """Anyone who can pose as the head could send a welcome naming `module:callable`: the agent's
    workers load only the adapter the agent was started with."""
    from gfdit.protocol_nodes import NodeWelcome
    from gfdit.workers.node_agent import NodeAgent

    agent = NodeAgent(f"tcp://127.0.0.1:{free_port()}", 1, "a-token", join_timeout_s=5)
    welcome = NodeWelcome(node_rank=1, slot=1, nproc_per_node=1, world_size=2, model="tiny",
                          init_method="tcp://127.0.0.1:1", nonce="n", adapter="os:system", emulate=True)
    try:
        agent._start(welcome)
        (child,) = agent.children.values()
        argv = list(child.args)  # the command line it was started with (it may have exited since)
        assert "os:system" not in argv and "--adapter" not in argv
        assert "--rank" in argv and "--emulate" in argv  # the rest of the plan is the welcome's
    finally:
        agent._stop_children(grace_s=1.0)
        agent.context.term()
        shutil.rmtree(agent.dir, ignore_errors=True)
