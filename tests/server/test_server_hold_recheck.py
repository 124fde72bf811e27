"""A hold on time with no `tick`, on a live server: the lone held request is re-judged as time
passes (Engine.hold_recheck_s) and runs, instead of waiting for an input that never comes."""

from __future__ import annotations

import pytest

from gfdit.client import Client

pytestmark = pytest.mark.slow

HOLD_YOUNG = """\
policy hold_young
param chunk = 2
param widths = {1}
order by req.arrival
hold * when req.age < 20s
width * = 1
"""


def test_a_lone_request_held_on_its_age_completes(server_factory):
    server = server_factory(HOLD_YOUNG)  # time_scale 0.02: 20 engine seconds are 0.4 s of wall time
    with Client(server.address, timeout=30) as client:
        result = client.submit("x", steps=4, height=512, width=512).result(timeout=30)
    assert result.latency_s >= 20.0  # engine seconds: it waited for its hold, then ran
