"""Review fixes: calls that must neither hang, fail spuriously, nor stop the server."""

from __future__ import annotations

import time

import pytest

from gfdit.client import Client, ServerError

pytestmark = pytest.mark.slow


def test_a_call_after_an_idle_spell_longer_than_gone_after_succeeds(emulated_server):
    with Client(emulated_server.address, timeout=10, gone_after_s=1.0) as c:
        c.ping()
        time.sleep(1.5)  # nothing awaited: this silence is not the server's
        assert c.status()["executor"] == "emulated"


def test_a_reload_path_with_a_nul_byte_is_refused_and_the_server_goes_on(client):
    reply = client.reload_policy("bad\x00path.gfp", server_path=True)
    assert not reply.ok and "cannot contain NUL" in " ".join(reply.diagnostics)
    assert client.ping() > 0


def test_a_handler_that_fails_answers_internal_and_the_server_goes_on(client, monkeypatch):
    from gfdit.server import report

    def broken(loop):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "server_status", broken)
    with pytest.raises(ServerError) as err:
        client.status()
    assert err.value.code == "internal" and "boom" in str(err.value)
    monkeypatch.undo()
    assert client.ping() > 0 and client.status()["executor"] == "emulated"


class FakePool:
    """Just enough of a WorkerPool for the executor's recovery paths (no processes)."""

    num_workers = 4

    def __init__(self, events, restart_error=None):
        self.events, self.restart_error = list(events), restart_error
        self.dead_ranks: set[int] = set()
        self.restarts = 0
        self.dropped: list[str] = []

    def poll(self, timeout):
        events, self.events = self.events, []
        return events

    def restart(self):
        self.restarts += 1
        time.sleep(0.1)
        if self.restart_error:
            raise RuntimeError(self.restart_error)

    def drop(self, request_id):
        if self.restarts and self.restart_error:
            raise AttributeError("'NoneType' object has no attribute 'send_multipart'")  # a closed pool
        self.dropped.append(request_id)

    def close(self):
        pass


def _poll_until(executor, kind, timeout=5.0):
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not any(isinstance(e, kind) for e in events):
        events += executor.poll(0.0, 0.01)
    return events


def test_several_members_reported_dead_at_once_restart_the_world_once():
    from gfdit.engine.executor import RanksBack, RanksLost
    from gfdit.server.executor import ProcessExecutor
    from gfdit.workers.pool import WorkerDead

    pool = FakePool([WorkerDead(0, "killed", ()), WorkerDead(2, "collective failed", ())])
    ex = ProcessExecutor(pool, cost_model=None, emulated=False)
    first = ex.poll(0.0)
    assert [type(e) for e in first] == [RanksLost]
    assert isinstance(_poll_until(ex, RanksBack)[-1], RanksBack)
    assert pool.restarts == 1 and ex.restarts == 1


def test_requests_ending_after_the_pool_is_gone_do_not_touch_it():
    from gfdit.engine.executor import ExecutorGone as PoolGone
    from gfdit.server.executor import ProcessExecutor
    from gfdit.workers.pool import WorkerDead

    pool = FakePool([WorkerDead(1, "killed", ())], restart_error="no devices")
    ex = ProcessExecutor(pool, cost_model=None, emulated=False)
    ex.poll(0.0)
    assert isinstance(_poll_until(ex, PoolGone)[-1], PoolGone) and ex.gone
    ex.drop("r1")  # the engine loop drops every request it fails: must not raise
    assert pool.dropped == []


def test_every_request_live_at_stop_gets_its_end_even_past_the_grace(server_factory, monkeypatch):
    from gfdit.client import RequestCancelled
    from gfdit.server import loop

    monkeypatch.setattr(loop, "STOP_GRACE_S", 0.0)  # the loop ends at once: nothing may be left unanswered
    server = server_factory(gpus=1, time_scale=1.0)
    with Client(server.address, timeout=10, gone_after_s=5.0) as c:
        running = c.submit("long", height=1024, width=1024, steps=20)
        queued = c.submit("waits", height=1024, width=1024, steps=20)
        for event in running.progress(timeout=10):
            if event.state == "running":
                break
        server.stop(30)
        for handle in (running, queued):
            with pytest.raises(RequestCancelled) as err:
                handle.result(timeout=10)
            assert "server stop" in err.value.reason


def test_the_loop_waits_on_the_pool_and_the_inbox_instead_of_polling_in_slices(server_factory, monkeypatch):
    server = server_factory(gpus=1, time_scale=1.0)
    executor, calls = server.loop.executor, []
    real_poll = executor.poll

    def counted(now, timeout=0.0, wake=None):
        calls.append(timeout)
        return real_poll(now, timeout, wake=wake)

    monkeypatch.setattr(executor, "poll", counted)
    with Client(server.address, timeout=10) as c:
        handle = c.submit("long", height=1024, width=1024, steps=40)
        for event in handle.progress(timeout=10):
            if event.state == "running":
                break
        calls.clear()
        time.sleep(1.0)
        polls = len(calls)
        t0 = time.perf_counter()
        for _ in range(20):
            c.ping()
        ping_s = (time.perf_counter() - t0) / 20
        handle.cancel()
    assert polls < 100, f"{polls} executor polls in 1 s of one running task"  # 2 ms slices: ~500
    assert ping_s < 0.05  # an inbox item wakes the wait at once


def test_a_drop_the_pool_cannot_deliver_does_not_raise_into_the_loop():
    from gfdit.server.executor import ProcessExecutor
    from gfdit.workers.pool import PoolError

    class Unreachable(FakePool):
        def drop(self, request_id):  # ROUTER_MANDATORY: a killed worker's peer is gone before poll sees it
            raise PoolError("cannot reach worker 3: Host unreachable")

    ProcessExecutor(Unreachable([]), cost_model=None, emulated=False).drop("r1")


def test_the_demo_records_a_request_whose_server_went_away_instead_of_losing_it(tmp_path):
    from types import SimpleNamespace

    from gfdit.cli.demo import follow
    from gfdit.client import ServerGone

    class GoneHandle:
        _final = None

        def progress(self):
            raise ServerGone("server at tcp://127.0.0.1:1 silent for 15.0s")
            yield  # a generator, like RequestHandle.progress

    rows, said = [], []
    req = SimpleNamespace(request_id="d1", request_class="S")
    follow(GoneHandle(), req, tmp_path, said.append, True, rows, {})
    assert [(r.request_class, r.state) for r in rows] == [("S", "lost")] and "silent" in said[-1]


def test_a_server_side_reload_path_must_be_a_policy_file(client, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password = hunter2\n")
    reply = client.reload_policy(str(secret), server_path=True)
    assert not reply.ok and ".gfp" in reply.message
    assert "hunter2" not in reply.message + "".join(reply.diagnostics)  # diagnostics quote source lines


def test_a_server_chosen_id_never_collides_with_a_client_chosen_one(server_factory):
    from gfdit.protocol import Accepted, GenParams, Rejected, Submit

    server = server_factory()
    params = GenParams(prompt="p", height=64, width=64, steps=2, seed=0)
    with Client(server.address, timeout=10) as c:
        for rid in ("r000002", ""):  # the second submit lets the server choose: not r000002
            reply = c._call(Submit(params=params, request_id=rid, subscribe=False), expect=(Accepted, Rejected))
            assert isinstance(reply, Accepted), reply
        assert reply.request_id != "r000002"


def test_stop_closes_a_server_that_was_started_but_never_served(tmp_path, policy_texts):
    from pathlib import Path

    from gfdit.server import Server, ServerConfig

    policy = tmp_path / "p.gfp"
    policy.write_text(policy_texts[0])
    qwen = Path(__file__).resolve().parents[2] / "gfdit" / "data" / "costmodels" / "qwen-h20"
    server = Server(ServerConfig(executor="emulated", num_gpus=2, cost_model=str(qwen), policy=str(policy),
                                 address="tcp://127.0.0.1:0")).start()
    pids = list(server.worker_pids.values())
    assert pids and all(_alive(pid) for pid in pids)
    server.stop()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
