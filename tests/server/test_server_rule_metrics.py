"""A rule that fails at run time is counted per rule location in Prometheus (`gfdit_rule_errors_total`)."""

from __future__ import annotations

import re

import pytest

from gfdit.client import Client

from test_server_rule_errors import HOLD_AT_AN_UNPRICED_WIDTH

pytestmark = pytest.mark.slow


def test_rule_errors_are_a_prometheus_counter_by_rule(server_factory):
    server = server_factory(HOLD_AT_AN_UNPRICED_WIDTH)
    with Client(server.address, timeout=30) as client:
        handles = [client.submit("x", steps=30, seed=i, height=1024, width=1024) for i in range(2)]
        for handle in handles:
            handle.result(timeout=60)
        status = client.status()["rule_errors"]
        text = client.metrics()["prometheus"]
    assert "# TYPE gfdit_rule_errors_total counter" in text
    series = dict(re.findall(r'^gfdit_rule_errors_total\{rule="([^"]+)"\} (\S+)$', text, re.M))
    (rule,) = series
    assert rule.endswith("policy0.gfp:5:32") and float(series[rule]) == status[rule] >= 2 * 17
