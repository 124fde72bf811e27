"""Server parts that need no processes: intake checks, access rules, metrics text, progress order, demo edits."""

import itertools
import re

import pytest

from gfdit.protocol import GenParams, ModelLimits, Progress, Result, Submit
from gfdit.server.access import AccessError, TokenCheck, check_bind, is_local
from gfdit.server.config import ServerConfig
from gfdit.server.demo_workload import broken_edit, good_edit, mixed_workload
from gfdit.server.intake import InvalidSubmit, build_request
from gfdit.server.progress import ProgressBook
from gfdit.server.prometheus import ServerMetrics
from gfdit.server.summary_table import Finished, class_table

CONFIG = ServerConfig(default_height=64, default_width=64, default_steps=8)


def submit(**params):
    base = dict(prompt="p", height=64, width=64, steps=4, seed=1)
    base.update(params)
    return Submit(params=GenParams(**base))


def test_intake_fills_defaults_and_sets_deadline_from_arrival():
    msg = Submit(params=GenParams(prompt="p", height=None, width=None, steps=None, seed=1), request_class="S",
                 deadline_s=3.0, priority=5)
    request, params = build_request(msg, now=10.0, config=CONFIG, fresh_id="r1")
    assert (params.height, params.width, params.steps) == (64, 64, 8)
    assert request.id == "r1" and request.arrival == 10.0 and request.deadline == 13.0
    assert request.request_class == "S" and request.priority == 5 and request.tokens == 16


@pytest.mark.parametrize("msg, needle", [
    (submit(height=-8), "height must be a positive"),
    (submit(width=63), "multiples of 8"),
    (submit(steps=100000), "steps must be at most"),
    (submit(steps=0), "steps must be a positive integer, got 0"),  # 0 is refused, never the default
    (submit(height=65536, width=65536), "exceeds the limit"),
    (submit(prompt="x" * 20000), "at most 10000 characters"),
    (submit(guidance_scale=float("nan")), "guidance_scale"),
    (Submit(params=GenParams(prompt="p", height=64, width=64, steps=4, seed=1), deadline_s=-1.0), "deadline"),
    (Submit(params=GenParams(prompt="p", height=64, width=64, steps=4, seed=1), request_id="a b/c"), "request_id"),
    (Submit(params=GenParams(prompt="p", height=64, width=64, steps=4, seed=1), latent_seq_len=0), "latent_seq_len"),
    (Submit(params=GenParams(prompt="p", height=64, width=64, steps=4, seed=1), request_class="x" * 100_000),
     "request_class"),
    (Submit(params=GenParams(prompt="p", height=64, width=64, steps=4, seed=1), request_class='S"\n'), "request_class"),
])
def test_intake_refuses_bad_fields_naming_them(msg, needle):
    with pytest.raises(InvalidSubmit, match=needle):
        build_request(msg, 0.0, CONFIG, "r1")


def test_access_loopback_only_unless_allowed_with_a_token():
    assert is_local("tcp://127.0.0.1:7600") and is_local("ipc:///tmp/x") and not is_local("tcp://0.0.0.0:7600")
    check_bind("tcp://127.0.0.1:0", allow_remote=False, token="")
    with pytest.raises(AccessError, match="allow-remote"):
        check_bind("tcp://0.0.0.0:7600", allow_remote=False, token="")
    with pytest.raises(AccessError, match="token"):
        check_bind("tcp://0.0.0.0:7600", allow_remote=True, token="short")
    check_bind("tcp://0.0.0.0:7600", allow_remote=True, token="a-long-enough-secret")
    check = TokenCheck("a-long-enough-secret")
    assert check.allows("a-long-enough-secret") and not check.allows("") and not check.allows("wrong")
    assert TokenCheck("").allows("anything")


def test_prometheus_text_has_prefixed_metrics_and_cumulative_buckets():
    """The exposition parses with prometheus_client's own parser: types, labels, cumulative buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    m = ServerMetrics()
    m.latency.observe(0.3, request_class="S")
    m.latency.observe(7.0, request_class="S")
    m.slo.inc(request_class="S", outcome="met")
    m.revision.set(1, policy="p", revision="abc123")
    m.rule_errors.set_total(3, rule="p.gfp:5:32")
    m.rule_errors.set_total(5, rule="p.gfp:5:32")  # mirrors the engine's total, never double-counts
    families = {f.name: f for f in text_string_to_metric_families(m.render())}
    assert families and all(name.startswith("gfdit_") for name in families)
    assert not any(name.endswith("_created") for name in families)
    kinds = {name: f.type for name, f in families.items()}
    assert kinds["gfdit_requests"] == kinds["gfdit_slo"] == kinds["gfdit_rule_errors"] == "counter"
    assert kinds["gfdit_request_latency_seconds"] == "histogram" and kinds["gfdit_queue_length"] == "gauge"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    bucket = "gfdit_request_latency_seconds_bucket"
    assert samples[(bucket, (("le", "0.5"), ("request_class", "S")))] == 1
    assert samples[(bucket, (("le", "10.0"), ("request_class", "S")))] == 2
    assert samples[("gfdit_request_latency_seconds_count", (("request_class", "S"),))] == 2
    assert samples[("gfdit_slo_total", (("outcome", "met"), ("request_class", "S")))] == 1
    assert samples[("gfdit_policy_revision", (("policy", "p"), ("revision", "abc123")))] == 1
    assert samples[("gfdit_rule_errors_total", (("rule", "p.gfp:5:32"),))] == 5
    text = m.render()
    assert "# TYPE gfdit_requests_total counter" in text  # the names scrapers already know


def test_progress_book_numbers_events_in_order_and_keeps_the_result():
    sent = []
    book = ProgressBook(lambda peer, msg, payload: sent.append((peer, msg, payload)))
    book.open("r1", b"alice")
    book.emit("r1", "queued", 0.0)
    assert book.subscribe("r1", b"bob") == "live"
    book.emit("r1", "running", 1.0, step=2, steps=4, width=2)
    book.finish("r1", "completed", [b"png"], latency_s=2.0, outputs=[{"mime": "image/png"}])
    to_alice = [m for p, m, _ in sent if p == b"alice"]
    assert [m.seq for m in to_alice] == [1, 2, 3]
    assert isinstance(to_alice[-1], Result) and [type(m) for m in to_alice[:2]] == [Progress, Progress]
    assert [m.seq for p, m, _ in sent if p == b"bob"] == [2, 3]
    assert book.subscribe("r1", b"carol") == "finished"  # gets the stored result at once
    assert isinstance(sent[-1][1], Result) and sent[-1][2] == [] and book.subscribe("zz", b"x") == "unknown"


def test_demo_edits_and_workload():
    text = "policy p\nparam chunk = 5   # steps\norder by req.arrival\n"
    assert "param chunk = 2   # steps" in good_edit(text)
    assert good_edit("policy p\norder by req.arrival\n").startswith("policy p\nparam chunk = 2\n")
    assert "req.dedline" in broken_edit(text)
    work = mixed_workload(12, 0.5, seed=1)
    assert len({r.request_id for r in work}) == 12 and {r.request_class for r in work} == {"S", "M", "L"}
    assert all(a.at_s <= b.at_s for a, b in itertools.pairwise(work))


def test_class_table_counts_latency_and_slo():
    rows = [Finished("S", "completed", 1.0, 2.0, True), Finished("S", "completed", 3.0, 2.0, False),
            Finished("L", "failed", 0.0, None, None)]
    table = class_table(rows)
    assert "| S | 2 | 2 | 2.00 | 2.90 | 1/2 (50%) |" in table  # p95 as `simulate` computes it (linear)
    assert "| L | 1 | 0 | - | - | 0/1 (0%) |" in table
    assert "| all | 3 | 2 | 2.00 |" in table


def test_control_costs_use_the_engine_percentile():
    from gfdit.engine.metrics import percentile
    from gfdit.server.costs import ControlCosts

    costs = ControlCosts()
    assert costs.summary()["overhead_p99_s"] is None
    for seconds in (0.001, 0.002, 0.010):
        costs.task(seconds, 3)
    summary = costs.summary()
    assert summary["overhead_p99_s"] == percentile([0.001, 0.002, 0.010], 99) == pytest.approx(0.00984)
    assert summary["overhead_p50_s"] == 0.002


def test_a_calibrated_cost_model_round_trips_through_the_one_writer(tmp_path):
    from gfdit.costmodel_file import layout_filename
    from gfdit.engine.costmodel import CostModel, Migration
    from gfdit.server.calibrate import _layout, write_calibrated

    calibrated = CostModel({1: _layout(0.5, 0.1, 0.25), 2: _layout(0.5, 0.06, 0.25)}, model="tiny (calibrated)",
                           migration=Migration(bandwidth_Bps=1e12, fixed_s=0.003), source="calibrated")
    out = write_calibrated(calibrated, tmp_path / "cm")
    assert sorted(p.name for p in out.iterdir()) == sorted([layout_filename(1), layout_filename(2), "migration.json"])
    back = CostModel.load(out)
    assert back.layouts == calibrated.layouts and back.migration.fixed_s == 0.003
    assert back.model == "tiny (calibrated)"


def test_reload_of_a_missing_policy_file_is_file_not_found_not_policy_text(tmp_path):
    from gfdit.client import Client

    with Client("tcp://127.0.0.1:9", timeout=1.0) as client:  # nothing is sent: the check is local
        with pytest.raises(FileNotFoundError, match="policy file not found"):
            client.reload_policy(str(tmp_path / "typo.gfp"))


@pytest.mark.parametrize("params, limits, needle", [
    (dict(frames=2), ModelLimits(family="flux"), "flux makes images: frames must be 1, got 2"),
    (dict(frames=6), ModelLimits(family="wan", video=True, frame_step=4),
     "wan: frames must be 1 more than a multiple of 4 (e.g. 5 or 9), got 6"),
    (dict(height=72), ModelLimits(family="qwenimage", pixel_multiple=16), "multiples of 16, got 72x64"),
    (dict(height=2048), ModelLimits(family="wan", video=True, max_side=1024), "at most 1024"),
])
def test_intake_refuses_what_the_model_cannot_take(params, limits, needle):
    with pytest.raises(InvalidSubmit, match=re.escape(needle)):
        build_request(submit(**params), now=0.0, config=CONFIG, fresh_id="r", limits=limits)
    ok = dict(frames=5) if limits.video else {}
    build_request(submit(**ok), now=0.0, config=CONFIG, fresh_id="r", limits=limits)  # and takes what it can
