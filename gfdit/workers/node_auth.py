"""Several hosts: how the head and a node agent prove the shared token to each other.

Both sides draw a fresh nonce per handshake (the agent's in `NodeHello`, the
head's in `NodeChallenge`; see `gfdit.protocol_nodes` for the exchange). The
agent's `NodeProof` covers both nonces and its ZeroMQ identity, so a hello and
proof recorded in an earlier session prove nothing against a new challenge. The
head proves the token back by sealing its `NodeWelcome` with the session key,
which covers the agent's fresh nonce: a welcome recorded earlier, or made
without the token, does not open. Every later message either way is sealed too,
with a per-sender sequence number, so an old or forged `NodeStop` is dropped.
All comparisons are constant-time (`auth.same_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

import msgspec

from gfdit.protocol import Message
from gfdit.workers.auth import new_secret, same_digest

Side = Literal["head", "node"]
_OTHER: dict[str, Side] = {"head": "node", "node": "head"}


def mac(token: str, text: str) -> str:
    return hmac.new(token.encode(), text.encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh handshake nonce: 32 random bytes in hex, made like a world's secret."""
    return new_secret()


class NodeSession:
    """One handshake between the head and node agent `node_rank` on connection `identity`:
    the agent's proof, and the key that seals (`seal`) and checks (`opens`) every later message."""

    def __init__(self, token: str, node_rank: int, identity: bytes, agent_nonce: str, head_nonce: str,
                 side: Side) -> None:
        transcript = f"{node_rank}|{identity.hex()}|{agent_nonce}|{head_nonce}"
        self.head_nonce = head_nonce
        self.proof = mac(token, f"node-proof|{transcript}")
        self._key = bytes.fromhex(mac(token, f"node-session|{transcript}"))
        self.side = side
        self.sent = 0  # the last sequence number this side sealed
        self.seen = 0  # the last one it accepted from the other side

    def proven(self, given: str) -> bool:
        """The head's check of the agent's `NodeProof`."""
        return same_digest(self.proof, given)

    def seal(self, msg: Message) -> Message:
        """`msg` with this side's next sequence number and its MAC."""
        self.sent += 1
        bare = msgspec.structs.replace(msg, seq=self.sent, mac="")
        return msgspec.structs.replace(bare, mac=self._mac(self.side, bare))

    def opens(self, msg: Message) -> str | None:
        """None when `msg` was sealed by the other side of this session and is new; else why it is refused."""
        bare = msgspec.structs.replace(msg, mac="")
        if not same_digest(self._mac(_OTHER[self.side], bare), msg.mac):
            return "its MAC does not check (made without the token, or in another session)"
        if msg.seq <= self.seen:
            return f"a replay (sequence number {msg.seq}, already at {self.seen})"
        self.seen = msg.seq
        return None

    def _mac(self, sender: Side, bare: Message) -> str:
        body = sender.encode() + b"|" + msgspec.msgpack.encode(bare)
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()
