"""A rule that fails at run time on a live server: every request still gets an answer
(the hook's fallback applies), and the failing rule is reported with its location."""

from __future__ import annotations

import pytest

from gfdit.client import Client

pytestmark = pytest.mark.slow

# passes `policy check` (its probe uses 20-step requests), fails at run time for longer ones:
# the cost model (qwen-h20) has no width-3 layout
HOLD_AT_AN_UNPRICED_WIDTH = """\
policy hold3
param chunk = 2
param widths = {1, 2, 4}
order by req.arrival
hold * when req.steps > 25 and slack(max(req.width, 1) * 3) < 0s
width * = 1
place sticky, lowest
"""


def test_a_failing_hold_rule_does_not_keep_requests_waiting(server_factory):
    server = server_factory(HOLD_AT_AN_UNPRICED_WIDTH)
    with Client(server.address, timeout=30) as client:
        handles = [client.submit("x", steps=30, seed=i, height=1024, width=1024) for i in range(3)]
        results = [h.result(timeout=60) for h in handles]
        assert all(r.latency_s > 0 for r in results)  # result() raises unless completed
        errors = client.status()["rule_errors"]
    (rule,) = errors
    assert rule.endswith("policy0.gfp:5:32") and errors[rule] >= 3 * 17  # every round of every request
