"""Recording a server's arrivals and replaying them in the simulator (real processes: an emulated
server, its worker processes, a ZeroMQ client)."""

from __future__ import annotations

import json

import pytest

from gfdit.engine.request import Request
from gfdit.engine.workload import Workload
from gfdit.server.recorder import Recorder

from conftest import NARROW, QWEN


def trace(n: int, gap_s: float) -> Workload:
    reqs = [Request(id=f"q{i:02d}", arrival=i * gap_s, height=1024, width=1024, steps=20,
                    request_class="S" if i % 3 == 0 else "default", priority=i % 2 or None,
                    deadline=i * gap_s + 30.0 if i % 2 else None) for i in range(n)]
    return Workload(reqs)


def test_recorded_run_replays_in_the_simulator(server_factory, tmp_path):
    """Record an emulated run, write its cost model, `gfdit simulate` the recording: same requests,
    same completed count, mean latency within 10% (docs/server.md justifies the bound)."""
    from gfdit.cli import main
    from gfdit.client import Client
    from gfdit.client.replay import replay

    record = tmp_path / "day.json"
    server = server_factory(NARROW, time_scale=0.1, record=str(record))
    workload = trace(12, 4.0)
    with Client(server.address, timeout=60) as client:
        handles = replay(client, workload, time_scale=0.1)
        results = [h.result(timeout=120) for h in handles]
        live = Workload.load(record)  # read while the server runs: valid after every write
        assert [r.id for r in live.requests] == [r.id for r in workload.requests]
        client.cost_model(tmp_path / "cm")
        status = client.status()
    assert status["recording"]["records"] == 12 and status["recording"]["path"] == str(record)
    served = [r.latency_s for r in results]  # result() raises unless completed
    assert len(served) == 12
    recorded = Workload.load(record)
    assert recorded.requests[0].arrival < 0.5  # times from the recording's start, not the server's
    by_id = {r.id: r for r in recorded.requests}
    for req in workload.requests:  # shape, class, priority, deadline kept; arrivals on the engine clock
        got = by_id[req.id]
        assert (got.height, got.width, got.steps, got.request_class, got.priority) == \
            (req.height, req.width, req.steps, req.request_class, req.priority)
        assert (got.deadline is None) == (req.deadline is None)
        if got.deadline is not None:
            assert got.deadline - got.arrival == pytest.approx(30.0, abs=0.01)
        assert got.prompt == ""  # prompts only when asked
    policy = tmp_path / "narrow.gfp"
    policy.write_text(NARROW)
    out = tmp_path / "sim.json"
    main(["simulate", "--policy", str(policy), "--workload", str(record), "--cost-model", str(tmp_path / "cm"),
          "--gpus", "4", "--json", str(out)])
    sim = json.loads(out.read_text())["overall"]
    main(["simulate", "--policy", str(policy), "--workload", str(record), "--cost-model", QWEN,
          "--gpus", "4", "--json", str(tmp_path / "given.json")])
    given = json.loads((tmp_path / "given.json").read_text())["overall"]
    decided = {k: v for k, v in sim.items() if not k.startswith("round")}  # (round_*: wall time of the rounds)
    assert {k: v for k, v in given.items() if not k.startswith("round")} == decided  # written model = served one
    assert sim["completed"] == 12
    mean = sum(served) / len(served)
    print(f"served mean latency {mean:.3f} s, simulated {sim['mean_latency_s']:.3f} s")
    assert abs(sim["mean_latency_s"] - mean) <= 0.10 * mean, (sim["mean_latency_s"], mean)


def test_record_start_stop_by_client_with_prompts(server_factory, tmp_path):
    from gfdit.client import Client

    server = server_factory(NARROW, time_scale=0.02)
    with Client(server.address, timeout=60) as client:
        client.submit("before", steps=2).result(timeout=60)  # not recorded: no recording yet
        reply = client.record(tmp_path / "r.json", prompts=True)
        assert reply["recording"]["path"] == str(tmp_path / "r.json") and reply["stopped"] is None
        client.submit("a cat", steps=2, seed=7, request_id="one").result(timeout=60)
        stopped = client.record(None)
        assert stopped["recording"] is None and stopped["stopped"]["path"] == str(tmp_path / "r.json")
        client.submit("after", steps=2).result(timeout=60)  # not recorded: stopped
        assert client.status()["recording"] is None
    (one,) = Workload.load(tmp_path / "r.json").requests
    assert (one.id, one.prompt, one.seed) == ("one", "a cat", 7)


def test_recording_rotates_by_size(tmp_path):
    path = tmp_path / "t.json"
    rec = Recorder(path, 100.0, max_bytes=4096, keep=2)
    for i in range(100):
        rec.add(Request(id=f"r{i:03d}", arrival=100.0 + i, height=64, width=64, steps=2))
    rec.close()
    parts = [Workload.load(p) for p in (path.with_name("t.json.2"), path.with_name("t.json.1"), path)]
    ids = [r.id for w in parts for r in w.requests]
    assert ids == sorted(ids) and ids[-1] == "r099"  # newest in FILE; oldest parts past keep removed
    assert not path.with_name("t.json.3").exists() and rec.parts > 3
    assert all(path.with_name(f"t.json.{k}").stat().st_size < 4096 + 400 for k in (1, 2))
    assert parts[-1].requests[-1].arrival == pytest.approx(99.0)  # every part: times from the start
    assert parts[0].metadata["part"] < parts[-1].metadata["part"]


def test_a_recording_that_cannot_be_written_fails_the_start_with_the_reason(tmp_path):
    from conftest import start_emulated

    from gfdit.server.config import ConfigError

    policy = tmp_path / "p.gfp"
    policy.write_text(NARROW)
    with pytest.raises(ConfigError, match=r"record: cannot write /proc/nope/day.json: No such file"):
        start_emulated(policy, gpus=1, record="/proc/nope/day.json")


def test_a_client_cannot_make_the_server_overwrite_other_files(server_factory, tmp_path):
    from gfdit.client import Client, GfditError

    precious = tmp_path / "notes.json"
    precious.write_text('{"mine": 1}\n')
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    server = server_factory(NARROW, time_scale=0.02)
    with Client(server.address, timeout=60) as client:
        for path, why in ((tmp_path / "x.txt", "is a .json trace"), (precious, "not a gfdit recording"),
                          (link, "symbolic link")):
            with pytest.raises(GfditError, match=why):
                client.record(path)
        assert client.status()["recording"] is None
        client.record(tmp_path / "r.json")
        client.record(None)
        assert client.record(tmp_path / "r.json")["recording"]["path"] == str(tmp_path / "r.json")  # ours: reused
    assert precious.read_text() == '{"mine": 1}\n' and not (tmp_path / "elsewhere.json").exists()


def _stopped(rec: Recorder) -> None:
    rec._thread.join(timeout=30)
    assert not rec._thread.is_alive() and rec.error
    for i in range(50):  # arrivals after the writer stopped are not kept anywhere
        rec.add(Request(id=f"late{i}", arrival=200.0, height=64, width=64, steps=2))
    assert rec._jobs.qsize() == 0 and rec.status()["error"] == rec.error


def test_a_failed_rotation_stops_the_recording_and_the_queue_stays_empty(tmp_path):
    path = tmp_path / "t.json"
    path.with_name("t.json.1").mkdir()  # the rotation cannot remove a directory (even as root)
    rec = Recorder(path, 100.0, max_bytes=256, keep=1)
    for i in range(20):
        rec.add(Request(id=f"r{i:03d}", arrival=100.0 + i, height=64, width=64, steps=2))
    _stopped(rec)
    assert "t.json.1" in rec.error
    rec.close()


def test_an_unexpected_writer_error_is_reported_not_silent(tmp_path):
    rec = Recorder(tmp_path / "t.json", 100.0, prompts=True)
    rec.add(Request(id="bad", arrival=100.0, height=64, width=64, steps=2, prompt=object()))  # not JSON
    _stopped(rec)
    assert "TypeError" in rec.error
    rec.close()
