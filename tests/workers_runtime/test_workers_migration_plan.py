"""The migration plan: who sends the state to whom when a request changes group."""

import math

import pytest
from hypothesis import given, strategies as st

from gfdit.workers.migration import plan_migration, senders_outside, tag_base, task_ranks, TAG_SPAN


def test_nothing_moves_before_encode_or_when_every_member_holds_it():
    assert plan_migration((0, 1), ()) == {}
    assert plan_migration((0, 1), (0, 1, 2, 3)) == {}  # shrinking costs nothing
    assert plan_migration((2,), (3, 1, 2)) == {}


def test_growing_one_to_four_sends_from_the_one_holder():
    assert plan_migration((1, 0, 3, 2), (0,)) == {1: 0, 3: 0, 2: 0}


def test_senders_prefer_members_of_both_groups_then_spread():
    # A = {0, 1}, B = {1, 2, 3}: rank 1 is in both, so it sends first; 0 takes the next.
    assert plan_migration((1, 2, 3), (0, 1)) == {2: 1, 3: 0}
    assert senders_outside((1, 2, 3), (0, 1)) == (0,)
    assert task_ranks((1, 2, 3), (0, 1)) == (1, 2, 3, 0)


def test_move_to_disjoint_group_uses_outside_senders():
    assert plan_migration((1, 2), (0,)) == {1: 0, 2: 0}
    assert senders_outside((1, 2), (0,)) == (0,)
    assert task_ranks((2, 3), (0, 1)) == (2, 3, 0, 1)


def test_repeated_rank_is_an_error():
    with pytest.raises(ValueError, match="repeats"):
        plan_migration((1, 1), (0,))


def test_tags_of_different_tasks_do_not_overlap():
    assert tag_base(2) - tag_base(1) == TAG_SPAN
    assert tag_base((1 << 20) - 1) + TAG_SPAN - 1 < 2**31  # gloo tags are int32


def test_collective_tags_stay_clear_of_migration_tags():
    """Collectives and migrations share pairs (a task migrates onto a group, then
    runs its collectives there): their tag ranges must not meet. The ids of
    (0, 1) and (0, 2) have bit 15 set; with 16 id bits their tags reached 2**30."""
    from gfdit.comm.group import group_id
    from gfdit.comm.wire import RECV, SEND, TagCounter
    from gfdit.workers.migration import MIGRATION_TAG_BASE

    assert group_id((0, 1)) & 0x8000 and group_id((0, 2)) & 0x8000
    tags = TagCounter()
    seen = []
    for ranks in [(0, 1), (0, 2), (0, 1, 2), (1, 0), (0, 1, 2, 3)]:
        for direction in (SEND, RECV):
            seen += [tags.next(group_id(ranks), direction, 1) for _ in range(40000)]  # wraps
    assert 0 <= min(seen) and max(seen) < MIGRATION_TAG_BASE == tag_base(0)


groups = st.lists(st.integers(0, 15), min_size=1, max_size=8, unique=True)
holders = st.lists(st.integers(0, 15), min_size=0, max_size=8, unique=True)


@given(groups, holders)
def test_plan_properties(group, state_ranks):
    plan = plan_migration(group, state_ranks)
    lacking = [r for r in group if r not in state_ranks]
    if not state_ranks:
        assert plan == {}
        return
    assert sorted(plan) == sorted(lacking)  # exactly the new members receive
    assert all(sender in state_ranks for sender in plan.values())  # from a holder
    load = {s: list(plan.values()).count(s) for s in set(plan.values())}
    assert not load or max(load.values()) == math.ceil(len(lacking) / len(state_ranks))
    both = set(group) & set(state_ranks)
    if both and plan:
        # a holder outside the group sends only when every holder inside it already does
        outside = set(plan.values()) - set(group)
        assert not outside or all(s in plan.values() for s in both)
