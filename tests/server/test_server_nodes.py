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
    with pytest.raises(ConfigError, match="nnodes > 1 needs a node token"):
        Server(config)


def test_emulated_workers_charge_a_group_across_hosts_as_the_engine_prices_it():
    from gfdit.engine.cluster import Cluster
    from gfdit.engine.costmodel import CostModel
    from gfdit.engine.request import Request
    from gfdit.engine.task import Dispatch
    from gfdit.resources import cost_model_dir
    from gfdit.server.executor import ProcessExecutor

    cm = CostModel.load(cost_model_dir("qwen-h20"))
    request = Request(id="r", arrival=0.0, height=1024, width=1024, steps=4)
    seconds = {}
    for name, group in {"one host": (0, 1), "two hosts": (1, 2)}.items():
        dispatch = Dispatch("t", "r", "denoise", ("denoise",), (1, 3), group, group, 0, 0.0, 0.0, request)
        executor = ProcessExecutor(None, cm, emulated=True, spans_nodes=Cluster(4, 2).spans_nodes)
        seconds[name] = executor._emulate_s(dispatch, request, "denoise", first=True)
    assert seconds["two hosts"] == pytest.approx(seconds["one host"] * cm.cross_node.group_factor)
