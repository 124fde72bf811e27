"""A candidate policy beside the live one, then promoted (real processes: an emulated server, its
worker processes, ZeroMQ clients)."""

from __future__ import annotations

import time

from conftest import NARROW, WIDE


def widths(handle) -> set[int]:
    return {e.width for e in handle.progress(timeout=120) if getattr(e, "state", "") == "running"}


def wait_for(check, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (value := check()) is not None:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_shadow_counts_differences_then_promote_swaps_it_in(server_factory, tmp_path):
    from gfdit.client import Client

    server = server_factory(NARROW, time_scale=0.02)
    candidate = tmp_path / "wide.gfp"
    candidate.write_text(WIDE)
    with Client(server.address, timeout=60) as client:
        live = client.status()["revision"]
        reply = client.shadow_policy(candidate)
        assert reply.ok and "wide" in reply.message and reply.revision == live  # the live one keeps running
        handles = [client.submit(f"p{i}", steps=6, request_id=f"s{i}") for i in range(4)]
        assert all(widths(h) == {1} for h in handles)  # the candidate's width 2 was never applied
        shadow = client.status()["shadow"]
        assert shadow["policy"] == "wide" and shadow["rounds"] > 0 and shadow["differ"] > 0
        assert shadow["arrivals"] == 4
        text = client.metrics()["prometheus"]
        assert f'gfdit_shadow_rounds_total{{result="differ"}} {float(shadow["differ"])}' in text
        assert "gfdit_shadow_round_seconds_count" in text
        predicted = wait_for(lambda: client.status()["shadow"]["predicted"])
        assert predicted["requests"] == 4 and predicted["completed"] == 4
        assert predicted["took_s"] >= 0  # the simulation's time, which spaces the next one
        assert predicted["live"]["completed"] == 4  # the live policy on the same arrivals, side by side
        assert predicted["mean_latency_s"] != predicted["live"]["mean_latency_s"]  # (width 2 vs 1: other times)
        stale = client.promote(if_revision="000000000000")
        assert not stale.ok and "running revision is" in stale.message
        assert client.status()["revision"] == live and client.status()["shadow"] is not None
        promoted = client.promote(if_revision=live)
        assert promoted.ok and promoted.previous_revision == live and promoted.revision == shadow["revision"]
        status = client.status()
        assert status["revision"] == shadow["revision"] and status["shadow"] is None
        client.ping()  # the engine swaps at its next round (a loop iteration): the name follows
        wait_for(lambda: True if client.status()["policy"] == "wide" else None)
        assert 2 in widths(client.submit("after", steps=6))  # later decisions are the candidate's
        assert "no candidate" in _error(lambda: client.promote())


def test_a_candidate_equal_to_the_live_policy_never_differs_and_bad_ones_are_refused(server_factory, tmp_path):
    from gfdit.client import Client

    server = server_factory(NARROW, time_scale=0.02)
    with Client(server.address, timeout=60) as client:
        assert client.shadow_policy(NARROW.replace("policy narrow", "policy same")).ok
        for h in [client.submit(f"p{i}", steps=6) for i in range(4)]:
            h.result(timeout=120)
        shadow = client.status()["shadow"]
        assert shadow["rounds"] > 0 and shadow["differ"] == 0
        bad = client.shadow_policy("policy bad\norder by req.dedline\nwidth * = 1\n")
        assert not bad.ok and bad.diagnostics and client.status()["shadow"]["policy"] == "same"  # kept
        cleared = client.shadow_policy(None)
        assert cleared["cleared"]["policy"] == "same" and client.status()["shadow"] is None


def _error(call) -> str:
    from gfdit.client import GfditError

    try:
        call()
    except GfditError as exc:
        return str(exc)
    raise AssertionError("no error")
