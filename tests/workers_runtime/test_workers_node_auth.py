"""The head and a node agent prove the node token to each other, with real processes and sockets.

* a fake head (a ROUTER in this test) that does not know the token cannot get an agent
  to start workers: its welcomes (unsealed, sealed with another token, sealed for an
  earlier session) and its NodeStop are refused and logged; the agent exits 1;
* a forged or replayed NodeStop reaching a serving agent is dropped: it keeps serving;
* a hello and proof recorded in an earlier session do not join a new head.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest
import zmq

from gfdit.comm.launch import free_port
from gfdit.protocol import WorkerHello
from gfdit.protocol_nodes import NodeChallenge, NodeHello, NodeLost, NodeProof, NodeStop, NodeWelcome
from gfdit.workers import transport
from gfdit.workers.node_auth import NodeSession, new_nonce
from gfdit.workers.remote import NodesMissing

from test_workers_emulated import task
from test_workers_nodes import _agent, _head, _stop

pytestmark = pytest.mark.slow
TOKEN = "the-node-token"


def _children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]


def _receive(sock: zmq.Socket, kind: type, seconds: float = 60.0):
    """The next message of `kind` on a ROUTER (others, such as repeated hellos, are skipped)."""
    deadline = time.monotonic() + seconds
    while sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
        identity, *frames = sock.recv_multipart()
        msg, _ = transport.decode(frames, transport.TO_CONTROLLER)
        if isinstance(msg, kind):
            return identity, msg
    raise AssertionError(f"no {kind.__name__} within {seconds} s")


def _fake_head(address: str):
    """A ROUTER that answers the agent's hello with a challenge; (socket, identity, hello, head nonce)."""
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(address)
    identity, hello = _receive(sock, NodeHello)
    nonce = new_nonce()
    sock.send_multipart([identity, *transport.encode(NodeChallenge(nonce=nonce))])
    assert _receive(sock, NodeProof)[0] == identity
    return sock, identity, hello, nonce


def _welcome() -> NodeWelcome:
    return NodeWelcome(node_rank=1, slot=1, nproc_per_node=1, world_size=2, model="tiny",
                       init_method="tcp://127.0.0.1:1", nonce="n", emulate=True, timeout_s=5.0)


def test_an_agent_refuses_a_head_that_does_not_prove_the_token():
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, TOKEN, join_timeout=10, capture=True)
    sock, identity, hello, nonce = _fake_head(address)
    try:
        earlier = NodeSession(TOKEN, 1, identity, new_nonce(), nonce, "head")  # right token, another agent nonce
        for forged in (_welcome(),  # no MAC at all
                       NodeSession("a-wrong-token", 1, identity, hello.nonce, nonce, "head").seal(_welcome()),
                       earlier.seal(_welcome()),  # what a welcome recorded in an earlier session looks like
                       NodeStop(reason="forged", rejoin=False)):  # would end the join with exit 2
            sock.send_multipart([identity, *transport.encode(forged)])
        time.sleep(1.0)
        assert agent.poll() is None and _children(agent.pid) == []  # still waiting; no worker started
        assert agent.wait(timeout=60) == 1
        out = agent.stdout.read()
        assert "joined" not in out, out
        assert out.count("refused a NodeWelcome") == 3 and out.count("refused a NodeStop") == 1, out
        assert "refused 4 message(s) that did not prove the token" in out, out
    finally:
        sock.close(linger=0)
        _stop(agent)


def test_an_agent_starts_only_for_a_proven_welcome_and_drops_a_forged_or_replayed_stop():
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, TOKEN, join_timeout=60, capture=True)
    sock, identity, hello, nonce = _fake_head(address)
    try:
        head = NodeSession(TOKEN, 1, identity, hello.nonce, nonce, "head")
        welcome = head.seal(_welcome())
        sock.send_multipart([identity, *transport.encode(welcome)])  # proven: the agent starts its worker
        deadline = time.monotonic() + 30
        while not _children(agent.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _children(agent.pid)
        proven_stop = head.seal(NodeStop(reason="proven", rejoin=False))
        for forged in (NodeStop(reason="forged", rejoin=False),
                       NodeSession("a-wrong-token", 1, identity, hello.nonce, nonce, "head").seal(NodeStop()),
                       msgspec.structs.replace(proven_stop, rejoin=True),  # tampered after sealing
                       msgspec.structs.replace(proven_stop, seq=welcome.seq)):  # an old sequence number
            sock.send_multipart([identity, *transport.encode(forged)])
        sock.send_multipart([identity, b"node_stop", b"\xc1 not msgpack"])  # malformed: dropped, logged
        time.sleep(2.0)
        assert agent.poll() is None  # the worker ran on: nothing stopped it
        sock.send_multipart([identity, *transport.encode(proven_stop)])
        assert agent.wait(timeout=30) == 0
        out = agent.stdout.read()
        assert out.count("refused a NodeStop") == 4 and "ignored a malformed message" in out, out
        assert "the head stops node 1: proven" in out, out
    finally:
        sock.close(linger=0)
        _stop(agent)


def test_a_forged_or_replayed_stop_leaves_a_serving_agent_serving():
    """A real head and agent; the NodeStop the head sent before a restart, replayed into the new
    session, and stops made without the session key, do not stop the agent."""
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, TOKEN, join_timeout=120, capture=True)
    pool = _head(address, TOKEN, heartbeat_timeout_s=120, start_timeout_s=120)
    sent = []
    real_send = pool._remote._send
    pool._remote._send = lambda router, identity, msg: (sent.append(msg), real_send(router, identity, msg))
    try:
        pool.close(rejoin=True)  # the head stops the node's workers and asks it to rejoin: a sealed NodeStop
        (old_stop,) = [m for m in sent if isinstance(m, NodeStop)]
        assert old_stop.rejoin and old_stop.mac
        pool.restart()
        assert pool.num_workers == 2, pool.status()
        identity = pool._remote.links[1].identity
        for forged in (msgspec.structs.replace(old_stop, rejoin=False),
                       old_stop,  # replayed from the earlier session
                       NodeStop(reason="forged", rejoin=False)):
            pool._router.send_multipart([identity, *transport.encode(forged)])
        refused = pool.status()["refused_messages"]
        _rogue(pool.address, identity)
        deadline = time.monotonic() + 10
        while pool.status()["refused_messages"] < refused + 5 and time.monotonic() < deadline:
            pool.poll(0.2)  # the pool reads (and drops) the rogue's messages; none of them crashes it
        assert pool.status()["refused_messages"] == refused + 5, pool.status()
        done = pool.run(task("encode", (0, 1), emulate_s=0.01, task_id=5), timeout=30)
        assert done.ok and done.ranks == (0, 1)
        assert agent.poll() is None and pool.dead_ranks == set()
        pool.close()  # the proven stop: the agent exits 0
        assert agent.wait(timeout=30) == 0
        out = agent.stdout.read()
        assert out.count("refused a NodeStop") == 3 and "lost its connection" not in out, out
    finally:
        pool.close()
        _stop(agent)


def _rogue(address: str, node_identity: bytes) -> None:
    """Malformed and unproven messages to the head from another connection (each one is dropped)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(address)
    try:
        for frames in ([b"node_hello", msgspec.msgpack.encode({"kind": "node_hello", "node_rank": 1, "nonce": "x"})],
                       [b"node_proof", msgspec.msgpack.encode({"kind": "node_proof", "node_rank": 1, "proof": "\u00e9"})],
                       transport.encode(NodeProof(node_rank=1, proof="ab" * 32)),  # no challenge was asked for
                       transport.encode(NodeLost(node_rank=1, rank=1, reason="forged")),  # not node 1's connection
                       transport.encode(WorkerHello(rank=0, channel="main", proof="\u00e9"))):  # non-ASCII proof
            sock.send_multipart(frames)
    finally:
        sock.close(linger=1000)


def test_a_sealed_message_opens_once_on_the_other_side_only():
    head = NodeSession(TOKEN, 1, b"id", "a" * 64, "b" * 64, "head")
    node = NodeSession(TOKEN, 1, b"id", "a" * 64, "b" * 64, "node")
    stop = head.seal(NodeStop(reason="r"))
    assert node.opens(stop) is None
    assert "replay" in node.opens(stop)  # the same message again
    assert "MAC" in head.opens(stop)  # reflected back to its sender
    lost = node.seal(NodeLost(node_rank=1, rank=1, reason="x"))
    assert head.opens(lost) is None and "replay" in head.opens(lost)
    assert node.proof == head.proof and head.proven(node.proof) and not head.proven("\u00e9")


def test_a_hello_and_proof_recorded_in_an_earlier_session_do_not_join_a_new_head():
    address = f"tcp://127.0.0.1:{free_port()}"
    agent = _agent(address, TOKEN, join_timeout=60)
    pool = _head(address, TOKEN, heartbeat_timeout_s=120, start_timeout_s=60)
    recorded = []
    real_handle = pool._remote.handle
    try:
        pool._remote.handle = lambda router, identity, msg: (recorded.append((identity, msg)),
                                                             real_handle(router, identity, msg))[1]
        pool.close(rejoin=True)  # the agent says hello again: record its hello and proof
        pool.restart()
        assert pool.num_workers == 2, pool.status()
    finally:
        pool.close()
        _stop(agent)
    identity, hello = next((i, m) for i, m in recorded if isinstance(m, NodeHello))
    proof = next(m for i, m in recorded if isinstance(m, NodeProof) and i == identity)
    replies, done = [], threading.Event()
    replayer = threading.Thread(target=_replay, args=(address, identity, hello, proof, replies, done))
    replayer.start()
    try:
        with pytest.raises(NodesMissing):  # the new head never counts node 1 as joined
            _head(address, TOKEN, start_timeout_s=8).close()
    finally:
        done.set()
        replayer.join()
    assert replies and all(isinstance(m, NodeChallenge) for m in replies), replies  # never a welcome


def _replay(address: str, identity: bytes, hello: NodeHello, proof: NodeProof, replies: list,
            done: threading.Event) -> None:
    """Replay a recorded hello, and the recorded proof to every challenge, on the recorded identity."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(address)
    try:
        sock.send_multipart(transport.encode(hello))
        while not done.is_set():
            if not sock.poll(200):
                continue
            msg, _ = transport.decode(sock.recv_multipart(), transport.TO_NODE)
            replies.append(msg)
            if isinstance(msg, NodeChallenge):
                sock.send_multipart(transport.encode(proof))
    finally:
        sock.close(linger=0)


def test_a_flood_of_hellos_keeps_the_challenge_table_bounded_and_a_real_agent_still_joins():
    """Hellos from many connections (anyone can send one) hold at most MAX_CHALLENGES challenges."""
    from gfdit.workers.nodes import NodeSpec
    from gfdit.workers.remote import MAX_CHALLENGES, RemoteNodes

    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    head = RemoteNodes(NodeSpec(2, 1, TOKEN), lambda node, slot: _welcome())
    sockets = []

    def dealer(identity: bytes) -> zmq.Socket:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sockets.append(sock)
        return sock

    def serve(count: int) -> None:
        for _ in range(count):
            assert router.poll(10000)
            identity, *frames = router.recv_multipart()
            head.handle(router, identity, transport.decode(frames, transport.TO_CONTROLLER)[0])

    try:
        for i in range(MAX_CHALLENGES + 10):
            dealer(b"rogue%d" % i).send_multipart(transport.encode(NodeHello(node_rank=1, nonce=new_nonce())))
        serve(MAX_CHALLENGES + 10)
        assert len(head._challenges) == MAX_CHALLENGES
        agent, nonce = dealer(b"agent"), new_nonce()
        agent.send_multipart(transport.encode(NodeHello(node_rank=1, nonce=nonce)))
        serve(1)
        challenge, _ = transport.decode(agent.recv_multipart(), transport.TO_NODE)
        session = NodeSession(TOKEN, 1, b"agent", nonce, challenge.nonce, "node")
        agent.send_multipart(transport.encode(NodeProof(node_rank=1, proof=session.proof)))
        serve(1)
        welcome, _ = transport.decode(agent.recv_multipart(), transport.TO_NODE)
        assert isinstance(welcome, NodeWelcome) and session.opens(welcome) is None
        assert len(head._challenges) == MAX_CHALLENGES - 1 and 1 in head.links
    finally:
        for sock in [*sockets, router]:
            sock.close(linger=0)
        context.term()
