"""Several hosts: the messages between the head and its node agents (`gfdit worker --head`).

The handshake proves the shared node token both ways, bound to two fresh nonces
(see `gfdit.workers.node_auth`):

    agent -> head   NodeHello(node_rank, nonce=Na)       asks to join (proves nothing yet)
    head  -> agent  NodeChallenge(nonce=Nh)              the head's fresh challenge
    agent -> head   NodeProof(node_rank, proof)          HMAC(token, "node-proof|R|identity|Na|Nh")
    head  -> agent  NodeWelcome(..., seq, mac)           sealed with the session key

The session key is HMAC(token, "node-session|R|identity|Na|Nh"). Every message
after the proof, either way (`NodeWelcome`, `NodeStop`, `NodeLost`), is sealed:
``mac = HMAC(key, sender | msgpack(message with mac=""))`` and `seq` rises by one
per message from that sender. A message whose MAC does not check (forged, or from
another session) or whose `seq` is not new (replayed) is dropped and logged.
Nonces are 64 hex digits, MACs at most 64: anything else fails decoding
(`ProtocolError`), so a peer cannot park large strings in the head's memory.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from gfdit.protocol import Message

Nonce = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Digest = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{0,64}$")]  # "" before sealing
Seq = Annotated[int, msgspec.Meta(ge=0)]
HostName = Annotated[str, msgspec.Meta(max_length=256)]


class NodeHello(Message, tag="node_hello"):
    """A node agent asks to join; `nonce` is the agent's fresh challenge to the head."""

    node_rank: int
    nonce: Nonce
    host: HostName = ""


class NodeChallenge(Message, tag="node_challenge"):
    """The head's answer to any `NodeHello`: its own fresh nonce, which the agent's proof must cover."""

    nonce: Nonce


class NodeProof(Message, tag="node_proof"):
    """The agent proves the token over both nonces and its connection (see the module doc)."""

    node_rank: int
    proof: Digest


class NodeWelcome(Message, tag="node_welcome"):
    """The head's answer to a proven `NodeProof`: what to start and how to join the world.

    The node starts ranks ``slot * nproc_per_node ...`` (+nproc_per_node); their
    worker-plane secret is HMAC-SHA256(token, nonce): it never crosses the wire.
    Sealed (`seq`, `mac`): it proves the head knows the token, for this session only."""

    node_rank: int
    slot: int
    nproc_per_node: int
    world_size: int
    model: str
    init_method: str
    nonce: str
    backend: str = "p2p"
    device: str = "cpu"
    dtype: str = "float32"
    adapter: str = ""
    emulate: bool = False
    heartbeat_s: float = 1.0
    timeout_s: float = 120.0
    seq: Seq = 0
    mac: Digest = ""


class NodeLost(Message, tag="node_lost"):
    """A node agent saw one of its workers exit (sealed by the agent)."""

    node_rank: int
    rank: int
    reason: str
    seq: Seq = 0
    mac: Digest = ""


class NodeStop(Message, tag="node_stop"):
    """The head stops a node's workers: `rejoin` asks the agent to say hello again
    (the world is being re-formed), else the agent exits. Sealed by the head; the
    refusal of a proven agent (not expected, already joined) is one too."""

    reason: str = ""
    rejoin: bool = False
    seq: Seq = 0
    mac: Digest = ""
