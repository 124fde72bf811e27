"""The serving system end to end with emulated workers: real processes, real sockets.

Emulated workers sleep for the cost model's time (qwen-h20, scaled by 0.02), so
these tests exercise the whole control plane — frontend, engine loop, executor,
worker pool, progress, cancel, hot reload — in seconds.
"""

from __future__ import annotations

import threading
import time

import pytest

from gfdit.client import Client, RequestCancelled
from gfdit.protocol import Progress, Result

pytestmark = pytest.mark.slow
BIG = dict(height=1024, width=1024)


def states(events):
    return [e.state for e in events]


def test_concurrent_requests_complete_with_progress_in_order(client):
    handles = [client.submit("a fox", steps=10, seed=i, request_class="S", **BIG) for i in range(6)]
    streams = [list(h.progress(timeout=60)) for h in handles]
    for events in streams:
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert isinstance(events[-1], Result) and events[-1].state == "completed"
        names = states(events[:-1])
        assert names[0] == "queued" and "encoding" in names and names[-1] == "decoding"
        assert names.index("encoding") < names.index("running") < names.index("decoding")
        steps = [e.step for e in events if isinstance(e, Progress) and e.state == "running"]
        assert steps == sorted(steps) and steps[-1] == 10
    results = [h.result() for h in handles]
    assert all(r.latency_s > 0 and r.deadline_s > 0 and r.slo_met is not None for r in results)


def test_cancel_running_frees_ranks_within_one_chunk(client, emulated_server):
    handle = client.submit("long", steps=400, **BIG)  # 400 x 12 ms: seconds of work, chunks of 2 steps
    events = handle.progress(timeout=30)
    for event in events:
        if event.state == "running" and event.step >= 4:
            break
    assert handle.cancel() in ("cancelling", "cancelled")  # "cancelled" when it lands between two chunks
    after = list(events)
    assert isinstance(after[-1], Result) and after[-1].state == "cancelled"
    assert len([e for e in after if getattr(e, "state", "") == "running"]) <= 1  # the chunk in flight, at most
    assert max((e.step for e in after[:-1] if e.state == "running"), default=0) < 400  # none: between chunks
    status = client.status()
    assert status["free_ranks"] == [0, 1, 2, 3] and status["running"] == 0
    with pytest.raises(RequestCancelled):
        handle.result()


def test_cancel_queued_removes_it_before_it_runs(client):
    blockers = [client.submit("block", steps=150, **BIG) for _ in range(4)]  # width 1 each: all 4 ranks
    for b in blockers:
        next(e for e in b.progress(timeout=30) if e.state == "encoding")
    queued = client.submit("waiting", steps=10, **BIG)
    assert client.status(queued.request_id)["request"]["state"] == "queued"
    assert queued.cancel() == "cancelled"
    events = list(queued.progress(timeout=30))
    assert states(events) == ["queued", "cancelled"]
    for b in blockers:
        b.cancel()
        with pytest.raises(RequestCancelled):
            b.result(timeout=30)


def test_hot_reload_during_load(client, emulated_server, policy_texts):
    NARROW, WIDE = policy_texts
    policy_file = emulated_server.policy_file
    before = client.status()["revision"]
    handles = [client.submit("load", steps=30, seed=i, **BIG) for i in range(4)]
    time.sleep(0.1)
    broken = client.reload_policy(WIDE + "width denoise when req.dedline < 1 = 3\n")
    assert not broken.ok and broken.revision == before
    rendered = "\n".join(broken.diagnostics)
    assert "dedline" in rendered and "did you mean 'deadline'" in rendered and "^" in rendered
    assert ":" in broken.diagnostics[0].splitlines()[0]  # file:line:col
    good = client.reload_policy(WIDE)
    assert good.ok and good.revision != before and good.previous_revision == before
    late = client.submit("after the swap", steps=10, **BIG)
    late_events = list(late.progress(timeout=60))
    assert {e.width for e in late_events if e.state == "running"} == {2}  # the new rule decides
    running_widths = [[e.width for e in h.progress(timeout=60) if e.state == "running"] for h in handles]
    assert all(r.state == "completed" for r in [late_events[-1]])
    for h in handles:
        assert h.result().latency_s > 0  # every accepted request completes
    assert any(2 in widths for widths in running_widths)  # in-flight requests move at their next boundary
    # a file edit goes through the watcher; a broken one leaves the running revision alone
    policy_file.write_text(NARROW.replace("width * = 1", "width * = 1\nwidth encode = oops"))
    deadline = time.monotonic() + 10
    while client.status()["reloads"]["refused"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = client.status()
    assert status["reloads"]["refused"] == 2 and status["revision"] == good.revision
    assert status["reloads"]["last"]["diagnostics"]
    policy_file.write_text(NARROW)
    while client.status()["revision"] == good.revision and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    assert client.status()["revision"] == before  # same text, same revision
    stale = client.reload_policy(WIDE, if_revision="not-the-running-one")
    assert not stale.ok and "running revision" in stale.message


def test_status_metrics_and_prometheus_endpoint(client, emulated_server):
    import urllib.request

    client.submit("m", steps=4, request_class="S", **BIG).result(timeout=30)
    metrics = client.metrics()
    assert metrics["overall"]["completed"] >= 1 and "S" in metrics["classes"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{emulated_server.metrics_port}/metrics", timeout=10).read()
    text = body.decode()
    for name in ("gfdit_queue_seconds", "gfdit_stage_seconds", "gfdit_task_width", "gfdit_migrations_total",
                 "gfdit_slo_total", "gfdit_policy_revision", "gfdit_policy_reload_failures_total"):
        assert f"# TYPE {name}" in text
    assert 'gfdit_slo_total{outcome="met",request_class="S"}' in text or \
        'gfdit_slo_total{outcome="missed",request_class="S"}' in text


def test_rejections_are_typed_and_lose_nothing(client):
    from gfdit.client import RequestRejected

    with pytest.raises(RequestRejected, match="multiples of 8"):
        client.submit("x", height=63, width=64, steps=2)
    ok = client.submit("x", steps=2, request_id="dup-1", **BIG)
    with pytest.raises(RequestRejected, match="duplicate"):
        client.submit("x", steps=2, request_id="dup-1", **BIG)
    assert ok.result(timeout=30).latency_s > 0


def test_a_second_client_can_follow_a_request(emulated_server, client):
    handle = client.submit("shared", steps=20, **BIG)
    with Client(emulated_server.address) as other:
        follower = other.follow(handle.request_id)
        seen = list(follower.progress(timeout=30))
    assert seen[-1].state == "completed"
    assert handle.result(timeout=30).latency_s > 0


def test_clients_on_many_threads_share_one_connection(client):
    results, errors = [], []

    def one(i):
        try:
            results.append(client.submit(f"t{i}", steps=4, seed=i, **BIG).result(timeout=60))
        except Exception as exc:  # noqa: BLE001 -- collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8


def test_a_reload_whose_rule_fails_on_the_cost_model_is_refused(client, policy_texts):
    _, wide = policy_texts
    before = client.status()["revision"]
    refused = client.reload_policy(wide + "hold * when slack(max(req.width, 1) * 3) < 0s\n")
    assert not refused.ok and client.status()["revision"] == before
    rendered = "\n".join(refused.diagnostics)
    assert "error[E308]" in rendered and "no layout of width 3" in rendered
