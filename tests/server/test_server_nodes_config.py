"""Several hosts in the configuration: nnodes x nproc_per_node ranks, a fixed tcp:// worker
address, a token; each mistake one clear error before any worker starts."""

from __future__ import annotations

import pytest

from gfdit.server.config import ConfigError, ServerConfig
from gfdit.server.config_file import build_config


def test_nnodes_sets_the_world():
    config = build_config(overrides={"nnodes": 2, "nproc_per_node": 3, "worker_address": "tcp://10.0.0.1:7700"})
    assert (config.num_gpus, config.nproc_per_node) == (6, 3)
    even = build_config(overrides={"nnodes": 2, "num_gpus": 4, "worker_address": "tcp://10.0.0.1:7700"})
    assert (even.num_gpus, even.nproc_per_node) == (4, 2)
    assert build_config().nproc_per_node is None  # one host: one node


@pytest.mark.parametrize("overrides, message", [
    ({"nnodes": 2}, "worker_address: a worker address for several hosts must be tcp://HOST:PORT"),
    ({"nnodes": 2, "worker_address": "ipc:///tmp/x"}, "must be tcp://HOST:PORT"),
    ({"nnodes": 2, "worker_address": "tcp://10.0.0.1:0"}, "need a fixed port"),
    ({"nnodes": 2, "worker_address": "tcp://0.0.0.0:7700"}, "address that the other hosts reach, not 0.0.0.0"),
    ({"nnodes": 2, "num_gpus": 3, "worker_address": "tcp://10.0.0.1:7700"}, "not a multiple of nnodes 2"),
])
def test_bad_node_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(overrides=overrides)


def test_several_hosts_need_a_token():
    from gfdit.server import Server

    config = ServerConfig(nnodes=2, nproc_per_node=1, worker_address="tcp://127.0.0.1:7700")
    with pytest.raises(ConfigError, match="nnodes > 1 needs a token"):
        Server(config)
