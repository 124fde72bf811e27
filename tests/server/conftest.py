"""Fixtures for the server tests: real servers (worker processes, ZeroMQ sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QWEN = str(ROOT / "gfdit" / "data" / "costmodels" / "qwen-h20")

NARROW = """\
policy narrow
param chunk = 2
param widths = {1, 2, 4}
class S { slo = 1.5x, priority = 100 }
class default { slo = 4x }
order by req.arrival
width * = 1
place sticky, lowest
"""

WIDE = NARROW.replace("policy narrow", "policy wide").replace(
    "width * = 1", "width encode, decode = 1\nwidth denoise = 2")


def start_emulated(policy_file: Path, gpus: int = 4, time_scale: float = 0.02, **overrides):
    """An emulated server on a free port (qwen-h20 cost model: ~12 ms per 1024^2 step at this scale)."""
    from gfdit.server import Server, ServerConfig

    config = ServerConfig(executor="emulated", num_gpus=gpus, cost_model=QWEN, policy=str(policy_file),
                          address="tcp://127.0.0.1:0", time_scale=time_scale, **overrides)
    return Server(config).start_background()


@pytest.fixture(scope="module")
def emulated_server(tmp_path_factory):
    policy = tmp_path_factory.mktemp("policy") / "narrow.gfp"
    policy.write_text(NARROW)
    server = start_emulated(policy, metrics_port=0)
    server.policy_file = policy
    yield server
    server.stop()


@pytest.fixture
def client(emulated_server):
    from gfdit.client import Client

    with Client(emulated_server.address, timeout=30) as c:
        yield c


@pytest.fixture
def policy_texts():
    """(narrow, wide): width 1 everywhere, or denoise at width 2; both chunk 2."""
    return NARROW, WIDE


@pytest.fixture
def server_factory(tmp_path):
    """start(policy_text, **config) -> a fresh emulated server, stopped at teardown."""
    servers = []

    def start(policy_text: str = NARROW, **overrides):
        policy = tmp_path / f"policy{len(servers)}.gfp"
        policy.write_text(policy_text)
        servers.append(start_emulated(policy, **overrides))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
