"""The policy holder: compile off the loop, swap only at a round boundary, only if it compiles."""

import threading
from pathlib import Path

from gfdit.dsl.reload import PolicyHolder
from gfdit.engine import CostModel, Engine, Request
from gfdit.engine.cluster import Cluster
from gfdit.engine.workload import shipped_cost_model

FIFO = "policy fifo\norder by req.arrival\nwidth * = 1\n"
WIDE = "policy wide\norder by req.arrival\nwidth encode, decode = 1\nwidth denoise = 4\n"


def test_good_text_becomes_pending_and_is_taken_at_the_boundary():
    holder = PolicyHolder.from_text(FIFO, "fifo.gfp")
    old = holder.current
    result = holder.propose(WIDE, if_revision=old.revision)
    assert result.ok and result.revision != old.revision
    assert holder.current is old and holder.has_pending  # nothing swapped yet
    assert holder.revision == result.revision
    new = holder.take_pending()
    assert new is holder.current and new.name == "wide" and new.revision == result.revision
    assert holder.take_pending() is None


def test_bad_text_keeps_the_old_policy_and_returns_every_diagnostic():
    holder = PolicyHolder.from_text(FIFO)
    before = holder.revision
    result = holder.propose("policy broken\norder by req.dedline\nwidth * = 3\n")
    assert not result.ok and result.revision == before
    assert {d.code for d in result.diagnostics} == {"E104", "E302"}
    assert "E104" in result.render() and before in result.message
    assert holder.take_pending() is None and holder.current.revision == before


def test_compare_and_swap_refuses_a_stale_revision():
    holder = PolicyHolder.from_text(FIFO)
    stale = holder.revision
    assert holder.propose(WIDE).ok
    refused = holder.propose(FIFO.replace("fifo", "other"), if_revision=stale)
    assert not refused.ok and "not " + stale in refused.message
    assert holder.take_pending().name == "wide"


def test_same_text_is_a_no_op():
    holder = PolicyHolder.from_text(FIFO)
    result = holder.propose(FIFO)
    assert result.ok and result.revision == holder.current.revision and not holder.has_pending


def test_reload_file_and_params_are_kept(tmp_path: Path):
    path = tmp_path / "p.gfp"
    path.write_text("policy p\nparam cap = 10\nadmit when count(waiting) < cap else \"full\"\n"
                    "order by req.arrival\nwidth * = 1\n")
    holder = PolicyHolder.from_file(path, {"cap": "3"})
    path.write_text(path.read_text().replace("policy p", "policy p2"))
    result = holder.reload_file()
    assert result.ok
    assert holder.take_pending().name == "p2"
    path.unlink()
    missing = holder.reload_file()
    assert not missing.ok and missing.diagnostics[0].code == "E005"


def test_concurrent_proposals_leave_one_consistent_pending_policy():
    holder = PolicyHolder.from_text(FIFO)
    texts = [FIFO.replace("fifo", f"p{i}") for i in range(8)]
    results = []
    threads = [threading.Thread(target=lambda t=t: results.append(holder.propose(t))) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results)
    taken = holder.take_pending()
    assert taken.revision in {r.revision for r in results} and holder.revision == taken.revision


def test_engine_swaps_the_taken_policy_between_rounds():
    cost = CostModel.load(shipped_cost_model("qwen-h20"))
    holder = PolicyHolder.from_text(FIFO)
    engine = Engine(holder.current, cost, Cluster(4))
    engine.submit(Request("a", 0.0, 1024, 1024, 20), 0.0)
    first = engine.schedule(0.0)
    assert [len(d.group) for d in first] == [1]
    assert holder.propose(WIDE).ok
    engine.set_policy(holder.take_pending())
    engine.task_done(first[0].task_id, 1.0)
    engine.submit(Request("b", 1.0, 1024, 1024, 20), 1.0)
    widths = {d.stage: len(d.group) for d in engine.schedule(1.0)}
    assert widths.get("denoise") == 4


def test_the_holder_takes_a_path_text_or_compiled_policy(tmp_path: Path):
    path = tmp_path / "fifo.gfp"
    path.write_text(FIFO)
    assert PolicyHolder(str(path)).current.name == "fifo"
    assert PolicyHolder(path).path == path
    assert PolicyHolder(WIDE).current.name == "wide"
    assert PolicyHolder(PolicyHolder(FIFO).current).current.name == "fifo"


def test_a_policy_that_compiles_but_cannot_run_here_is_refused_by_the_check():
    from gfdit.engine.policy_check import check_policy
    cost_model = CostModel.load(shipped_cost_model("qwen-h20"))  # widths 1, 2, 4
    holder = PolicyHolder.from_text(FIFO, check=lambda p: check_policy(p, cost_model, 4))
    before = holder.revision
    result = holder.propose(FIFO.replace("policy fifo", "policy fifo\nparam widths = {1, 8}"))
    assert not result.ok and result.revision == before
    assert "no layout for widths [8]" in result.message and before in result.message
    assert holder.take_pending() is None and holder.current.revision == before
    assert holder.propose(WIDE).ok and holder.take_pending().name == "wide"
