"""The client's connection against a real server: errors matched to their call, no lock held while waiting."""

from __future__ import annotations

import threading

import pytest

from gfdit.client import Client, ServerError
from gfdit.client import connection as connection_module

pytestmark = pytest.mark.slow


def test_an_oversize_submit_gets_its_error_at_once_not_server_gone(emulated_server):
    with Client(emulated_server.address, timeout=10, gone_after_s=10) as client:
        with pytest.raises(ServerError) as caught:
            client.submit("x" * (2 << 20))
        assert caught.value.code == "protocol" and "exceeds" in caught.value.message
        assert client.ping() >= 0  # the connection goes on


def test_a_thread_waiting_for_events_does_not_block_another_threads_calls(emulated_server, monkeypatch):
    # the waiter polls the socket for a minute at a time and nothing arrives for it (no pings
    # either): a call from another thread must not wait for that poll to end
    monkeypatch.setattr(connection_module, "PUMP_S", 60.0)
    with Client(emulated_server.address, timeout=30) as client:
        conn = client._conn
        conn.ping_after_s = 1000.0
        conn.track("ghost")
        got = []
        waiter = threading.Thread(target=lambda: got.append(conn.next_event("ghost", timeout=120)))
        waiter.start()
        while not conn._io.locked():  # the waiter holds the socket, inside its minute-long poll
            threading.Event().wait(0.01)
        caller_done = threading.Event()

        def calls():
            for _ in range(5):
                client.ping()
            client.status()
            caller_done.set()

        caller = threading.Thread(target=calls)
        caller.start()
        caller.join(timeout=20)
        assert caller_done.is_set() and waiter.is_alive() and got == []
        client.submit("wake the waiter", steps=2, request_id="ghost")  # its first event ends the wait
        waiter.join(timeout=30)
        assert got and got[0][0].request_id == "ghost"
