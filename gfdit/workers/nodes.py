"""Several hosts: what the head and a node agent agree on.

A server started with ``--nnodes N --nproc-per-node K`` runs ranks ``0..K-1`` on
its own host (node 0, the head) and waits for N-1 node agents (``gfdit worker
--head tcp://HOST:PORT --node-rank R``). The head and each agent prove the
shared node token to each other (`gfdit.workers.node_auth`: a challenge each
way, then sealed messages); the agent receives a `NodeWelcome`: the model, the
world size, the rendezvous (a TCPStore the head hosts: ``tcp://HOST:PORT2``)
and a fresh nonce. Every worker's worker-plane secret is ``HMAC(token, nonce)``:
the agent derives it, so the secret itself never crosses the network, and a new
nonce at every (re)start makes an old secret useless.

The collectives pick their network interface by address (`interface_for`):
gloo's ``GLOO_SOCKET_IFNAME`` is set to the interface that holds the address
this host uses to reach the head, unless the environment sets it already.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from gfdit.workers.node_auth import mac


@dataclass(frozen=True)
class NodeSpec:
    """The head's view of a multi-host pool: N nodes of K ranks, one shared token."""

    nnodes: int
    nproc_per_node: int
    token: str

    def __post_init__(self) -> None:
        if self.nnodes < 1 or self.nproc_per_node < 1:
            raise ValueError(f"nnodes and nproc_per_node must be positive, got {self.nnodes}, "
                             f"{self.nproc_per_node}")
        if self.nnodes > 1 and not self.token:
            raise ValueError("several nodes need a shared token (--token-file or $GFDIT_TOKEN on every host)")


def pool_secret(token: str, nonce: str) -> str:
    """The worker-plane secret of one world (hex, as `auth.new_secret`)."""
    return mac(token, f"pool|{nonce}")


def tcp_host_port(address: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (HOST, PORT); anything else is a ValueError."""
    parts = urlsplit(address)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"a worker address for several hosts must be tcp://HOST:PORT, got {address!r}")
    return parts.hostname, parts.port


def address_towards(host: str, port: int) -> str:
    """This host's own address on the route to `host` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return probe.getsockname()[0]


def interface_for(address: str) -> str | None:
    """The name of the interface holding IPv4 `address` (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import fcntl

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            if socket.inet_ntoa(packed[20:24]) == address:
                return name
    return None


def gloo_env(environ: dict[str, str], host: str, port: int) -> dict[str, str]:
    """GLOO_SOCKET_IFNAME for the interface towards `host` (kept if already set)."""
    if "GLOO_SOCKET_IFNAME" in environ:
        return {}
    name = interface_for(address_towards(host, port))
    return {"GLOO_SOCKET_IFNAME": name} if name else {}


def worker_argv(python: str, plan, rank: int, controller: str) -> list[str]:
    """The command line of one worker process (`gfdit.workers.process`) for world `plan`
    (a `NodeWelcome`, or the head's own, from `WorkerPool._welcome`)."""
    args = [python, "-m", "gfdit.workers.process", "--rank", str(rank), "--world-size", str(plan.world_size),
            "--controller", controller, "--init-method", plan.init_method, "--backend", plan.backend,
            "--model", plan.model, "--device", plan.device, "--dtype", plan.dtype,
            "--heartbeat-s", str(plan.heartbeat_s), "--timeout-s", str(plan.timeout_s)]
    if plan.adapter:
        args += ["--adapter", plan.adapter]
    if plan.emulate:
        args.append("--emulate")
    return args
