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
    assert not reply.ok and "null byte" in reply.message
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
