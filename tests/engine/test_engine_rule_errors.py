"""A rule that fails at run time: located, counted, logged, and the hook's fallback applies,
so no request waits forever because of it (docs/engine.md, "Rule errors")."""

from __future__ import annotations

import logging

import pytest

from gfdit.dsl.load import compile_policy
from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.engine import Engine
from gfdit.engine.policy import Why
from gfdit.engine.request import State
from gfdit.engine.simulator import simulate

from engine_support import TestPolicy, req, write_cost_model


@pytest.fixture()
def cm(tmp_path) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path / "cm", {1: 1000.0, 2: 600.0}))


def engine_with(policy, cm, gpus=2):
    return Engine(policy, cm, Cluster(gpus), DecisionLog())


def boom(rid):
    def hook(view, r):
        if r.id == rid:
            raise ZeroDivisionError("boom")
        return None
    return hook


def test_a_failing_hold_does_not_hold(cm):
    engine = engine_with(TestPolicy(hold_fn=boom("A")), cm)
    engine.submit(req("A", 0, 2), 0)
    assert [d.request_id for d in engine.schedule(0)] == ["A"]
    assert engine.rule_errors == {"python:test.hold": 1} and engine.hook_errors == {"hold": 1}
    (error,) = [r for r in engine.log.records if r["event"] == "error"]
    assert (error["rule"], error["reason"]) == ("python:test.hold", "ZeroDivisionError: boom")


def test_a_failing_order_key_orders_the_round_by_arrival(cm):
    keys = {"A": (5,), "B": (1,)}
    def order(view, r):
        return keys[r.id]  # C has no key: KeyError
    engine = engine_with(TestPolicy(order_fn=order), cm)
    for i, rid in enumerate("ABC"):
        engine.submit(req(rid, i * 0.1, 2), i * 0.1)
    assert [d.request_id for d in engine.schedule(0.2)] == ["A", "B"]  # B first without the error
    assert engine.rule_errors == {"python:test.order": 1}


def test_a_failing_width_hook_takes_the_smallest_width(cm):
    def width(view, r):
        if r.id == "bad":
            raise ZeroDivisionError("boom")
        return 2, Why("w", {})
    engine = engine_with(TestPolicy(width_fn=width), cm, gpus=4)
    engine.submit(req("bad", 0, 2), 0)
    engine.submit(req("good", 0.1, 2), 0.1)
    widths = {d.request_id: len(d.group) for d in engine.schedule(0.1)}
    assert widths == {"bad": 1, "good": 2}
    (bad,) = [r for r in engine.log.records if r["event"] == "dispatch" and r["request"] == "bad"]
    assert bad["rule"] == "engine:fallback" and bad["values"]["failed"] == "python:test.width"


def test_a_width_outside_widths_is_a_contained_error(cm):
    engine = engine_with(TestPolicy(widths=(1, 2), width_fn=lambda v, r: (3, Why("w", {}))), cm)
    engine.submit(req("A", 0, 1), 0)
    assert [len(d.group) for d in engine.schedule(0)] == [1]
    assert engine.hook_errors == {"width": 1}


def test_the_first_error_of_each_rule_is_logged_once(cm, caplog):
    engine = engine_with(TestPolicy(hold_fn=boom("A"), chunk=1), cm)
    engine.submit(req("A", 0, 3), 0)
    with caplog.at_level(logging.WARNING, logger="gfdit.engine"):
        now = 0.0
        for _ in range(10):  # bounded: without the fallback the hold error held it forever
            for d in engine.schedule(now):
                now += 1.0
                engine.task_done(d.task_id, now)
    assert engine.idle
    assert engine.rule_errors["python:test.hold"] == 5  # encode, 3 steps, decode
    warnings = [r for r in caplog.records if "python:test.hold" in r.getMessage()]
    assert len(warnings) == 1 and "ZeroDivisionError: boom" in warnings[0].getMessage()


ORDER_BY_SLACK_OF_WIDTH = """policy bad
param chunk = 1
param widths = {1, 2}
order by slack(req.width)
width * = 1
"""

HOLD_AT_AN_UNPRICED_WIDTH = """policy bad
param chunk = 1
param widths = {1, 2}
order by req.arrival
hold * when slack(max(req.width, 1) * 3) < 0s
width * = 1
"""


@pytest.mark.parametrize("text, where, hook", [
    (ORDER_BY_SLACK_OF_WIDTH, "bad.gfp:4:10", "order"),  # width 0 before the first task
    (HOLD_AT_AN_UNPRICED_WIDTH, "bad.gfp:5:13", "hold"),  # width 3: no layout
])
def test_a_compiled_rule_error_names_file_line_col_and_every_request_completes(cm, text, where, hook):
    policy = compile_policy(text, "bad.gfp")
    log = DecisionLog()
    result = simulate(policy, [req(f"r{i}", i * 0.5, 3) for i in range(6)], cm, 2, decision_log=log)
    assert [o.state for o in result.outcomes] == [State.COMPLETED.value] * 6 and not result.unfinished
    assert set(result.rule_errors) == {where} and result.hook_errors.keys() == {hook}
    assert "no layout of width" in result.rule_error_messages[where]
    assert {r["rule"] for r in log.records if r["event"] == "error"} == {where}


def test_simulate_says_what_failed_and_exits_non_zero(tmp_path, capsys):
    from gfdit.cli import main
    policy = tmp_path / "bad.gfp"
    policy.write_text(ORDER_BY_SLACK_OF_WIDTH.replace("{1, 2}", "{1, 2, 4}"))
    rc = main(["simulate", "--policy", str(policy), "--workload", "short-4gpu", "--gpus", "4"])
    printed = capsys.readouterr().out
    assert rc == 1
    assert "| fail | rej |" in printed
    assert "policy rule errors (the hook's fallback applied):" in printed
    (line,) = [x for x in printed.splitlines() if f"{policy}:4:10" in x]
    assert "no layout of width 0" in line and int(line.split("x")[0]) > 0
