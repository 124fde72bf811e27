"""Who may speak on the worker plane: a per-pool secret, proven once per connection.

The pool draws a fresh 32-byte secret at every start and hands it to its workers
in the environment (`SECRET_ENV`), never on the command line, so `ps` does not
show it; a worker removes it from its own environment at once. Every DEALER a
worker opens (its main socket, its heartbeat socket, the one that reports a fatal
start-up error) takes a random ZMQ identity and sends `WorkerHello` first, with
``proof = HMAC-SHA256(secret, "rank|channel|identity")``. The pool binds that
identity to that rank when the proof checks out; any other message is accepted
only from a bound identity and only when the rank it claims is the bound one.
Everything else is dropped, counted and logged (`PeerBook.refused`).

The control socket is also an ``ipc://`` socket inside the pool's 0700
temporary directory by default, so other users cannot even connect to it; the
proof is what stops a process of the same user that has no access to the
workers' environment (see docs/server.md, "Security").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets

log = logging.getLogger("gfdit.workers.auth")
SECRET_ENV = "GFDIT_WORKER_SECRET"
LOGGED_REFUSALS = 20  # then one line per thousand, so a flood cannot flood the log


def new_secret() -> str:
    return secrets.token_hex(32)


def take_secret() -> str:
    """The worker's secret, removed from this process's environment (children do not inherit it)."""
    return os.environ.pop(SECRET_ENV, "")


def new_identity(rank: int, channel: str) -> bytes:
    """A ZMQ identity nobody can guess (so nobody can take it first)."""
    return f"w{rank}.{channel}.{secrets.token_hex(8)}".encode()


def same_digest(expected: str, given: str) -> bool:
    """Constant-time equality; `given` comes off the wire, so compare bytes (any text, no TypeError)."""
    return hmac.compare_digest(expected.encode(), given.encode())


def proof(secret: str, rank: int, channel: str, identity: bytes) -> str:
    text = f"{rank}|{channel}|{identity.hex()}".encode()
    return hmac.new(bytes.fromhex(secret), text, hashlib.sha256).hexdigest()


class PeerBook:
    """The pool's side: which connection (identity) speaks for which rank."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.ranks: dict[bytes, int] = {}
        self.main: dict[int, bytes] = {}  # rank -> identity of its task socket
        self.refused = 0

    def hello(self, identity: bytes, rank: int, channel: str, given: str) -> bool:
        """Bind `identity` to `rank` if the proof is right; False (refused) otherwise."""
        if identity in self.ranks:
            return self.refuse(identity, "a second hello on a bound connection")
        if not same_digest(proof(self.secret, rank, channel, identity), given):
            return self.refuse(identity, f"hello for rank {rank} with a wrong proof")
        if channel == "main" and rank in self.main:
            return self.refuse(identity, f"rank {rank} already has its task socket")
        self.ranks[identity] = rank
        if channel == "main":
            self.main[rank] = identity
        return True

    def speaks_for(self, identity: bytes, claimed: int) -> bool:
        """True if `identity` passed the hello as `claimed`; else the message is refused."""
        bound = self.ranks.get(identity)
        if bound is None:
            return self.refuse(identity, f"message claiming rank {claimed} on an unauthenticated connection")
        if bound != claimed:
            return self.refuse(identity, f"rank {bound}'s connection claims rank {claimed}")
        return True

    def refuse(self, identity: bytes, why: str) -> bool:
        self.refused += 1
        if self.refused <= LOGGED_REFUSALS or self.refused % 1000 == 0:
            log.warning("worker plane: dropped a message from %r: %s (%d dropped so far)",
                        identity[:40], why, self.refused)
        return False
