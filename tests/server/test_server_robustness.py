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
