"""Hot reload, the one implementation: compile off the loop (ReloadService), then on the loop
the compare-and-swap, the engine's check and the swap at the next round (PolicySwap).

Real compiler, real reload thread, real engine; only the reply socket is a list.
(These are the behaviours the language's former `PolicyHolder` tests pinned.)
"""

from __future__ import annotations

import queue
from functools import partial

import pytest

from gfdit.dsl.load import compile_policy as compile_gfp
from gfdit.engine import CostModel, Engine, Request
from gfdit.engine.cluster import Cluster
from gfdit.engine.workload import shipped_cost_model
from gfdit.protocol import ReloadReply
from gfdit.server.prometheus import ServerMetrics
from gfdit.server.reload import ReloadService, ReplyTo, compile_policy
from gfdit.server.swap import PolicySwap

FIFO = "policy fifo\norder by req.arrival\nwidth * = 1\n"
WIDE = "policy wide\norder by req.arrival\nwidth encode, decode = 1\nwidth denoise = 4\n"


class Reloads:
    """A reload thread feeding a swap, as the server wires them (the inbox is a queue)."""

    def __init__(self, engine: Engine, params: dict[str, str] | None = None):
        self.inbox: queue.Queue = queue.Queue()
        self.replies: list[ReloadReply] = []
        self.swap = PolicySwap(engine, ServerMetrics(), lambda peer, msg: self.replies.append(msg))
        runs_on = (engine.cost_model, engine.cluster.gpus)
        self.service = ReloadService(self.inbox.put, params or {}, partial(compile_policy, runs_on=runs_on))
        self.service.start()
        self._calls = 0

    def propose(self, text: str, if_revision: str | None = None) -> ReloadReply:
        """One proposal, applied by the 'loop' (this thread) when compiled; returns its reply."""
        self._calls += 1
        self.service.propose(text, "p.gfp", if_revision, ReplyTo(b"peer", self._calls))
        self.swap.on_compiled(self.inbox.get(timeout=30))
        return self.replies[-1]


@pytest.fixture()
def engine():
    return Engine(compile_gfp(FIFO, "fifo.gfp"), CostModel.load(shipped_cost_model("qwen-h20")), Cluster(4))


@pytest.fixture()
def reloads(engine):
    r = Reloads(engine)
    yield r
    r.service.close()


def test_good_text_is_swapped_in_at_the_next_round_only(engine, reloads):
    old = engine.policy
    reply = reloads.propose(WIDE, if_revision=old.revision)
    assert reply.ok and reply.revision != old.revision and reply.previous_revision == old.revision
    assert engine.policy is old  # nothing swapped before the round
    engine.schedule(0.0)
    assert engine.policy.name == "wide" and engine.policy.revision == reply.revision == reloads.swap.revision


def test_bad_text_keeps_the_old_policy_and_returns_every_diagnostic(engine, reloads):
    before = reloads.swap.revision
    reply = reloads.propose("policy broken\norder by req.dedline\nwidth * = 3\n")
    assert not reply.ok and reply.revision == before
    assert "E104" in "".join(reply.diagnostics) and "E302" in "".join(reply.diagnostics)
    engine.schedule(0.0)
    assert engine.policy.revision == before and reloads.swap.reloads["refused"] == 1


def test_compare_and_swap_refuses_a_stale_revision(engine, reloads):
    stale = reloads.swap.revision
    assert reloads.propose(WIDE).ok
    refused = reloads.propose(FIFO.replace("fifo", "other"), if_revision=stale)
    assert not refused.ok and "running revision" in refused.message and "not " + stale in refused.message
    engine.schedule(0.0)
    assert engine.policy.name == "wide"


def test_the_same_text_is_a_no_op(engine, reloads):
    reply = reloads.propose(FIFO)
    assert reply.ok and "unchanged" in reply.message and reply.revision == engine.policy.revision
    assert reloads.swap.reloads["ok"] == 0


def test_params_are_kept_across_reloads(engine):
    text = 'policy p\nparam cap = 10\nadmit when count(waiting) < cap else "full"\norder by req.arrival\nwidth * = 1\n'
    r = Reloads(engine, {"cap": "3"})
    try:
        assert r.propose(text).ok
        engine.schedule(0.0)
        assert engine.policy.name == "p"
        reasons = [engine.submit(Request(f"r{i}", 0.0, 1024, 1024, 20), 0.0) for i in range(4)]
        assert reasons == [None, None, None, "full"]  # cap = 3 from the server's params, not 10
    finally:
        r.service.close()


def test_proposals_are_applied_one_at_a_time_in_order(engine, reloads):
    texts = [FIFO.replace("fifo", f"p{i}") for i in range(8)]
    for text in texts:
        reloads.service.propose(text, "p.gfp", None, ReplyTo(b"peer", 0))
    for _ in texts:
        reloads.swap.on_compiled(reloads.inbox.get(timeout=30))
    engine.schedule(0.0)
    assert engine.policy.name == "p7" and reloads.swap.reloads["ok"] == 8
    assert reloads.swap.revision == engine.policy.revision


def test_the_engine_runs_the_new_widths_from_the_next_round(engine, reloads):
    engine.submit(Request("a", 0.0, 1024, 1024, 20), 0.0)
    (first,) = engine.schedule(0.0)
    assert len(first.group) == 1
    assert reloads.propose(WIDE).ok
    engine.task_done(first.task_id, 1.0)
    engine.submit(Request("b", 1.0, 1024, 1024, 20), 1.0)
    widths = {d.stage: len(d.group) for d in engine.schedule(1.0)}
    assert widths.get("denoise") == 4


def test_a_policy_with_no_width_this_cluster_can_run_is_refused(engine, reloads):
    before = reloads.swap.revision
    reply = reloads.propose("policy fifo\nparam widths = {8}\norder by req.arrival\nwidth * = 8\n")
    assert not reply.ok and reply.revision == before
    assert "no layout for widths [8]" in reply.message + "".join(reply.diagnostics)
    engine.schedule(0.0)
    assert engine.policy.revision == before
    assert reloads.propose(WIDE).ok


def test_a_reload_is_fitted_to_the_cluster_like_a_start(engine, reloads):
    """Widths the 4-GPU cluster cannot hold are dropped with a note, as `gfdit serve` does at start."""
    reply = reloads.propose(FIFO.replace("policy fifo", "policy fifo\nparam widths = {1, 2, 8}"))
    assert reply.ok, reply.message
    assert any("widths [8] dropped" in d and "using [1, 2]" in d for d in reply.diagnostics)
    engine.schedule(0.0)
    assert tuple(engine.policy.widths) == (1, 2)


