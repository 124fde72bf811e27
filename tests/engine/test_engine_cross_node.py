"""Several hosts in the engine: which rank is on which node, a group kept inside one node
when one can take it, and a group or a state move across nodes priced separately."""

from __future__ import annotations

import json

import pytest

from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel, CostModelError
from gfdit.engine.crossnode import CROSS_NODE_FILE, CrossNode
from gfdit.engine.engine import Engine
from gfdit.engine.policy import Why

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0, 4: 400.0}))


def wants(table):
    return lambda view, r: (table[r.id], Why("test.width", {}))


def test_cluster_knows_nodes():
    two = Cluster(4, 2)
    assert [two.node_of(r) for r in range(4)] == [0, 0, 1, 1]
    assert two.spans_nodes((1, 2)) and not two.spans_nodes((2, 3))
    assert two.reaches_new_node((0, 2), holders=(0,))  # rank 2's node holds no copy
    assert not two.reaches_new_node((0, 1), holders=(0,))
    assert not two.reaches_new_node((2, 3), holders=(2,))
    one = Cluster(4)
    assert not one.spans_nodes((0, 3)) and not one.reaches_new_node((0, 3), holders=(0,))


def test_placement_keeps_a_group_inside_one_node_when_it_can(cm):
    policy = TestPolicy(widths=(1, 2), width_fn=wants({"A": 1, "B": 2}), placement=("compact",))
    engine = Engine(policy, cm, Cluster(4, 2))
    engine.submit(req("A", 0, 5), 0)
    assert engine.schedule(0)[0].group == (0,)
    engine.submit(req("B", 0.1, 5), 0.1)
    (b,) = engine.schedule(0.1)
    assert b.group == (2, 3)  # the lowest free ranks (1, 2) would cross nodes


def test_a_group_across_nodes_costs_the_group_factor(cm):
    policy = TestPolicy(widths=(1, 2, 4), width_fn=wants({"A": 4}), placement=("lowest",))
    plain = Engine(policy, cm, Cluster(4))
    plain.submit(req("A", 0, 5), 0)
    across = Engine(policy, cm, Cluster(4, 2))
    across.submit(req("A", 0, 5), 0)
    (d_plain,), (d_across,) = plain.schedule(0), across.schedule(0)
    assert d_plain.group == d_across.group == (0, 1, 2, 3)
    assert d_across.duration_est == pytest.approx(d_plain.duration_est * CrossNode().group_factor)


def test_a_move_to_another_node_is_priced_at_the_cross_node_rates(tmp_path):
    directory = write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0})
    (directory / CROSS_NODE_FILE).write_text(json.dumps({"bandwidth_Bps": 1e9, "fixed_s": 0.5}))
    cm = CostModel.load(directory)
    assert cm.cross_node == CrossNode(group_factor=1.3, bandwidth_Bps=1e9, fixed_s=0.5)
    moves = {}
    for name, (per_node, width) in {"same": (2, 2), "other": (1, 2)}.items():
        # A runs its first chunk on rank 0, then grows to 2 ranks: rank 1 is on rank 0's node
        # with 2 ranks per node, on another node with 1
        policy = TestPolicy(widths=(1, 2), width_fn=lambda v, r, w=[1, width]: (w.pop(0) if len(w) > 1 else w[0],
                                                                                  Why("t", {})),
                            placement=("sticky", "lowest"))
        engine = Engine(policy, cm, Cluster(2, per_node))
        engine.submit(req("A", 0, 5), 0)
        (first,) = engine.schedule(0)
        engine.task_done(first.task_id, 1.0)
        (second,) = engine.schedule(1.0)
        assert second.group == (0, 1) and second.state_ranks == (0,)
        moves[name] = second.migration_s
    nbytes = cm.migration.state_bytes(req("A", 0, 5).shape)
    assert moves["same"] == pytest.approx(cm.migration.seconds(nbytes, 1, 1))
    assert moves["other"] == pytest.approx(0.5 + nbytes / 1e9)


def test_a_bad_cross_node_file_is_a_located_error(tmp_path):
    directory = write_cost_model(tmp_path / "cm", {1: 1000.0})
    (directory / CROSS_NODE_FILE).write_text(json.dumps({"group_factr": 2}))
    with pytest.raises(CostModelError, match=r"cross_node.json: bad cross-node costs \(unknown fields \['group_factr'\]"):
        CostModel.load(directory)
    (directory / CROSS_NODE_FILE).write_text(json.dumps({"group_factor": 0.5}))
    with pytest.raises(CostModelError, match="group_factor >= 1"):
        CostModel.load(directory)
