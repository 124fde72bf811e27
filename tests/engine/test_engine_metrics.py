"""Metrics checked by hand on tiny traces: every expected number is worked out on paper here."""

from __future__ import annotations

import math

import pytest

from gfdit.engine.builtin_policies import static_sp
from gfdit.engine.costmodel import CostModel
from gfdit.engine.metrics import compute_metrics, percentile
from gfdit.engine.request import Outcome
from gfdit.engine.simulator import simulate

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def tiny(tmp_path) -> CostModel:
    # encode 1 s, decode 1 s, one step 1 s at width 1 and 0.6 s at width 2;
    # a migration round costs 0.5 s fixed + 500000 B / 1e6 B/s = 1.0 s
    return CostModel.load(write_cost_model(
        tmp_path / "cm", {1: 1000.0, 2: 600.0},
        migration={"bandwidth_Bps": 1e6, "fixed_s": 0.5, "bytes_per_token": 0,
                   "bytes_per_text_token": 0, "fixed_bytes": 500000}))


def test_three_requests_fixed_pipeline_by_hand(tiny):
    # 2 GPUs, static_sp width 1 (whole trajectory per task, FIFO, reserve).
    # t_single = 1 (encode) + steps x 1 + 1 (decode):  A 4 s, B 5 s, C 3 s.
    #   A arrives 0 -> rank 0, runs 0..4.    B arrives 1 -> rank 1, runs 1..6.
    #   C arrives 2 -> no free rank; at 4 A ends -> rank 0, runs 4..7.
    # latencies A 4, B 5, C 5: mean 14/3, p50 5, p95 = 5 (between 5 and 5), p99 5.
    # SLO: A 4 <= 6 yes; B 6 > 5 no; C 7 <= 100 yes -> SAR 2/3.
    # span = last finish 7 - first arrival 0 = 7 s: throughput 3/7*60, goodput 2/7*60.
    # busy rank-seconds 4 + 5 + 3 = 12 -> utilization 12 / (2 * 7).
    trace = [req("A", 0, 2, deadline=6, cls="x"), req("B", 1, 3, deadline=5, cls="y"),
             req("C", 2, 1, deadline=100, cls="x")]
    result = simulate(static_sp(sp=1), trace, tiny, gpus=2)
    o = result.metrics["overall"]
    assert (o["requests"], o["completed"], o["slo_met"]) == (3, 3, 2)
    assert o["slo_attainment"] == pytest.approx(2 / 3)
    assert o["mean_latency_s"] == pytest.approx(14 / 3)
    assert (o["p50_latency_s"], o["p95_latency_s"], o["p99_latency_s"]) == pytest.approx((5, 5, 5))
    assert o["span_s"] == pytest.approx(7)
    assert o["throughput_rpm"] == pytest.approx(3 / 7 * 60)
    assert o["goodput_rpm"] == pytest.approx(2 / 7 * 60)
    assert o["gpu_utilization"] == pytest.approx(12 / 14)
    assert (o["migrations"], o["migration_s"]) == (0, 0)
    # normalized latency: 4/4, 5/5, 5/3 -> mean (1 + 1 + 5/3) / 3
    assert o["mean_normalized_latency"] == pytest.approx((2 + 5 / 3) / 3)
    x, y = result.metrics["classes"]["x"], result.metrics["classes"]["y"]
    # class x = A and C: both met; latency (4 + 5) / 2; busy 4 + 3 = 7 of 14 rank-seconds
    assert (x["requests"], x["slo_attainment"], x["mean_latency_s"]) == (2, 1.0, 4.5)
    assert x["gpu_utilization"] == pytest.approx(7 / 14)
    assert x["throughput_rpm"] == pytest.approx(2 / 7 * 60)
    assert (y["requests"], y["slo_attainment"], y["mean_latency_s"]) == (1, 0.0, 5.0)
    assert y["gpu_utilization"] == pytest.approx(5 / 14)


def test_grow_migrate_and_shrink_by_hand(tiny):
    # 2 GPUs, chunk 1: encode and decode at width 1, denoise at width 2. One request, 2 steps.
    #   encode on rank 0: 0 .. 1                          busy 1 x 1   = 1
    #   step 0 on ranks {0, 1}: rank 1 lacks the state -> migration 1 s, then 0.6 s: 1 .. 2.6
    #                                                     busy 2 x 1.6 = 3.2
    #   step 1 on {0, 1} (sticky, no migration): 2.6 .. 3.2   busy 2 x 0.6 = 1.2
    #   decode on rank 0 (sticky, shrinking is free): 3.2 .. 4.2   busy 1
    # latency 4.2; 1 migration of 1 s; utilization 6.4 / (2 x 4.2).
    policy = TestPolicy(stage_width={"encode": 1, "denoise": 2, "decode": 1})
    result = simulate(policy, [req("A", 0, 2, deadline=4.2)], tiny, gpus=2, record_spans=True)
    o = result.metrics["overall"]
    assert o["mean_latency_s"] == pytest.approx(4.2)
    assert (o["migrations"], o["migration_s"]) == (1, pytest.approx(1.0))
    assert o["gpu_utilization"] == pytest.approx(6.4 / 8.4)
    assert o["slo_attainment"] == 1.0  # finish 4.2 <= deadline 4.2
    groups = [(s.stage, s.group, round(s.start, 6), round(s.end, 6)) for s in result.spans]
    assert groups == [("encode", (0,), 0, 1), ("denoise", (0, 1), 1, 2.6), ("denoise", (0, 1), 2.6, 3.2),
                      ("decode", (0,), 3.2, 4.2)]


def test_percentile_interpolates_linearly():
    data = [10.0, 20.0, 30.0, 40.0]
    # position (n - 1) * q: p50 -> 1.5 -> 25; p95 -> 2.85 -> 38.5; p99 -> 2.97 -> 39.7
    assert percentile(data, 50) == pytest.approx(25)
    assert percentile(data, 95) == pytest.approx(38.5)
    assert percentile(data, 99) == pytest.approx(39.7)
    assert math.isnan(percentile([], 50))


def test_rejected_failed_and_cancelled_requests_count_as_defined():
    # 4 requests: one met (latency 2), one late (latency 10), one rejected, one cancelled.
    # SAR = met / not-cancelled = 1 / 3; latency stats over the 2 completed; span = 12 - 0.
    outcomes = [Outcome("a", "c", "completed", 0.0, 5.0, 2.0, 1.0, busy_rank_s=2.0),
                Outcome("b", "c", "completed", 2.0, 5.0, 12.0, 1.0, busy_rank_s=4.0),
                Outcome("r", "c", "rejected", 3.0, 9.0, None, 1.0, "queue full"),
                Outcome("x", "c", "cancelled", 4.0, 9.0, 5.0, 1.0, busy_rank_s=1.0)]
    o = compute_metrics(outcomes, gpus=1)["overall"]
    assert (o["requests"], o["completed"], o["rejected"], o["cancelled"]) == (4, 2, 1, 1)
    assert o["slo_attainment"] == pytest.approx(1 / 3)
    assert o["mean_latency_s"] == pytest.approx(6.0)
    assert o["throughput_rpm"] == pytest.approx(2 / 12 * 60)
    assert o["gpu_utilization"] == pytest.approx(7 / 12)
