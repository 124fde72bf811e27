"""`gfdit_client_errors_total{code}` counts the client messages a real server answered with an
ErrorReply: random bytes (protocol) and a wrong token (unauthorized) from a raw ZeroMQ peer, both
answered by the frontend, and a cancel of an unknown id (unknown_request) answered by the engine loop."""

from __future__ import annotations

import time

import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from gfdit.client import Client, ServerError
from gfdit.protocol import SERVER_KINDS, ErrorReply, Ping, decode_frames, encode_frames

TOKEN = "a-token-of-16-chars-or-more"


def _errors(client: Client) -> dict[str, float]:
    text = client.metrics()["prometheus"]
    return {s.labels["code"]: s.value for f in text_string_to_metric_families(text)
            if f.name == "gfdit_client_errors" for s in f.samples if s.name.endswith("_total")}


def _raw_call(address: str, frames: list[bytes]) -> ErrorReply:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
        sock.send_multipart(frames)
        assert sock.poll(20_000), "no reply"
        reply, _ = decode_frames(sock.recv_multipart(), SERVER_KINDS)
        assert isinstance(reply, ErrorReply)
        return reply
    finally:
        sock.close(0)


def test_error_replies_move_the_client_errors_counter(server_factory):
    server = server_factory(token=TOKEN)
    with Client(server.address, token=TOKEN, timeout=30) as client:
        before = _errors(client)
        garbage = _raw_call(server.address, [b"\xff\x00not a kind", b"\x93random"])
        assert garbage.code == "protocol"
        wrong = _raw_call(server.address, encode_frames(Ping(call_id=7, token="wrong-token-of-16-chars")))
        assert wrong.code == "unauthorized" and wrong.call_id == 7
        with pytest.raises(ServerError, match="unknown_request"):  # answered by the engine loop
            client.cancel("no-such-request")
        want = {code: before.get(code, 0) + 1 for code in ("protocol", "unauthorized", "unknown_request")}
        deadline = time.monotonic() + 30
        while (after := _errors(client)) != want and time.monotonic() < deadline:
            time.sleep(0.05)  # the metrics snapshot may be up to a rebuild old (gfdit/server/desk.py)
    assert after == want
