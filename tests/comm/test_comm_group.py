"""Group descriptors and argument checks: in one process, no world needed."""

from __future__ import annotations

import pytest
import torch

from gfdit.comm import Group, NotAMember
from gfdit.comm.group import group_id
from gfdit.comm.p2p import P2PBackend
from gfdit.comm.world import Comm, open_backend


def test_comm_group_is_an_ordered_rank_tuple():
    g = Group.form([3, 1], rank=1)
    assert g.ranks == (3, 1) and g.size == 2 and g.index == 1 and g.is_member
    assert Group.form((1, 3), 1).id != g.id  # order matters
    assert Group.form((3, 1), 3).id == g.id  # same id seen from every member
    assert Group.form((3, 1), 0).index == -1
    assert group_id((0, 2, 3)) == group_id((0, 2, 3))
    assert len({group_id(tuple(range(n))) for n in range(1, 65)}) == 64


@pytest.mark.parametrize("bad", [(), (1, 1), (-1, 0), (0.5,), ("a",)])
def test_comm_group_rejects_bad_ranks(bad):
    with pytest.raises(ValueError):
        Group.form(bad, 0)


def _offline_comm(rank=0, world_size=4):
    """A Comm whose argument checks run before any message: no world needed."""
    return Comm(P2PBackend(torch.device("cpu"), 1.0), rank, world_size, torch.device("cpu"))


def test_comm_collectives_check_their_arguments_before_any_message():
    comm = _offline_comm()
    with pytest.raises(NotAMember, match=r"group\(3, 1\).*rank 0 is not a member"):
        comm.all_gather(comm.group((3, 1)), torch.ones(2), 0)
    with pytest.raises(ValueError, match="outside the world"):
        comm.group((0, 4))
    with pytest.raises(ValueError, match="does not divide by the group size 3"):
        comm.all_to_all(comm.group((0, 1, 2)), torch.ones(4, 2), 0, 1)
    with pytest.raises(ValueError, match="own index"):
        comm.send(comm.group((0, 1)), torch.ones(2), 0)
    with pytest.raises(ValueError, match="not a member index"):
        comm.broadcast(comm.group((0, 1)), torch.ones(2), 2)
    with pytest.raises(TypeError, match="not supported"):
        comm.all_gather(comm.group((0, 1)), torch.ones(2, dtype=torch.uint16), 0)
    with pytest.raises(ValueError, match="out of range"):
        comm.all_gather(comm.group((0, 1)), torch.ones(2), 1)


def test_comm_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: p2p, shm, newgroup"):
        open_backend("nccl2", torch.device("cpu"), 1.0)


def test_comm_group_of_one_needs_no_messages():
    comm = _offline_comm(rank=2)
    g = comm.group((2,))
    x = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(comm.all_gather(g, x, 1), x)
    assert torch.equal(comm.all_to_all(g, x, 0, 1), x)
    assert torch.equal(comm.broadcast(g, x.clone(), 0), x)
    comm.barrier(g)
