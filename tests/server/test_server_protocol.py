"""The client plane's wire format: typed, size-limited, never unpickled."""

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from gfdit.protocol import (
    CLIENT_KINDS,
    MAX_BODY_BYTES,
    MAX_FRAMES,
    SERVER_KINDS,
    Accepted,
    Cancel,
    GenParams,
    MetricsQuery,
    Ping,
    Progress,
    ProtocolError,
    ReloadPolicy,
    ReloadReply,
    Result,
    StatusQuery,
    StatusReply,
    StopServer,
    Submit,
    Subscribe,
    decode_frames,
    encode_frames,
)

PARAMS = GenParams(prompt="a fox", height=64, width=64, steps=4, seed=7)
CLIENT_MESSAGES = [
    Submit(params=PARAMS, request_class="S", deadline_s=2.5, priority=3, request_id="abc", call_id=9),
    Cancel(request_id="abc", call_id=1), StatusQuery(request_id="x"), Subscribe(request_id="abc"),
    ReloadPolicy(text="policy p", if_revision="r1"), MetricsQuery(call_id=4), Ping(), StopServer(reason="bye"),
]


@pytest.mark.parametrize("msg", CLIENT_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_client_message_round_trips(msg):
    decoded, payload = decode_frames(encode_frames(msg), CLIENT_KINDS)
    assert decoded == msg and payload == []


def test_server_messages_round_trip_with_payload_frames():
    result = Result(request_id="abc", seq=7, state="completed", latency_s=1.5, outputs=[{"mime": "image/png"}])
    decoded, payload = decode_frames(encode_frames(result, [b"\x89PNG..."]), SERVER_KINDS)
    assert decoded == result and payload == [b"\x89PNG..."]
    for msg in (Accepted(request_id="a"), Progress(request_id="a", seq=1, state="queued", time=0.0),
                StatusReply(server={"gpus": 4, "free": [0, 1]}), ReloadReply(ok=False, revision="r", diagnostics=["x"])):
        assert decode_frames(encode_frames(msg), SERVER_KINDS)[0] == msg


@pytest.mark.parametrize("frames, needle", [
    ([b"submit"], "expected [kind, body"),
    ([b"nonsense", b"\x80"], "unknown message kind"),
    ([b"submit", b"\xc1\xc1"], "bad submit body"),
    ([b"cancel", msgspec.msgpack.encode({"kind": "cancel", "request_id": 5})], "bad cancel body"),
    ([b"cancel", msgspec.msgpack.encode({"kind": "submit", "request_id": "a"})], "bad cancel body"),
    ([b"ping", msgspec.msgpack.encode({"kind": "ping", "extra": 1})], "bad ping body"),
    ([b"ping", b"\x00" * (MAX_BODY_BYTES + 1)], "exceeds"),
    ([b"ping"] + [b""] * MAX_FRAMES, "too many frames"),
    ([b"accepted", msgspec.msgpack.encode({"kind": "accepted", "request_id": "a"})], "unknown message kind"),
])
def test_malformed_client_frames_raise_protocol_error(frames, needle):
    with pytest.raises(ProtocolError, match=needle.replace("[", r"\[")):
        decode_frames(frames, CLIENT_KINDS)


def test_pickle_is_never_accepted():
    import pickle

    frames = [b"submit", pickle.dumps({"kind": "submit", "params": {}})]
    with pytest.raises(ProtocolError):
        decode_frames(frames, CLIENT_KINDS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=0, max_size=5), st.sampled_from(sorted(CLIENT_KINDS)))
def test_random_frames_raise_only_protocol_error(frames, kind):
    for candidate in (frames, [kind] + frames):
        try:
            decode_frames(candidate, CLIENT_KINDS)
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20),
       st.sampled_from(sorted(CLIENT_KINDS)))
def test_well_formed_msgpack_of_the_wrong_shape_raises_only_protocol_error(body, kind):
    try:
        decode_frames([kind, msgspec.msgpack.encode(body)], CLIENT_KINDS)
    except ProtocolError:
        pass
