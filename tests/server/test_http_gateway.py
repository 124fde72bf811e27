"""The OpenAI-compatible HTTP gateway (gfdit.http) on an emulated server, over plain HTTP
and the official `openai` package: shapes, errors and status codes, concurrent requests,
SSE progress, cancel by DELETE, an admission refusal (429 with the policy's reason),
the bearer token, /health when workers are down.

Emulated workers make no images (the real-model test is test_http_real.py); everything
else here is the real server, sockets and HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow

ADMIT = """\
policy narrow_admit
param chunk = 2
param widths = {1, 2, 4}
class S { slo = 1.5x, priority = 100 }
class default { slo = 4x }
admit when req.steps <= 400 else "over 400 steps: refused by this test's policy"
order by req.arrival
width * = 1
place sticky, lowest
"""
TOKEN = "a-token-of-24-characters"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """An emulated server with the HTTP gateway; time scale 0.2: a 1024x1024 step takes ~0.1 s."""
    from conftest import start_emulated

    policy = tmp_path_factory.mktemp("http") / "admit.gfp"
    policy.write_text(ADMIT)
    server = start_emulated(policy, time_scale=0.2, http_port=0)
    yield server
    server.stop()


def post(server, body: dict, **kwargs):
    return httpx.post(server.http_url + "/v1/images/generations", json=body, timeout=kwargs.pop("timeout", 120), **kwargs)


def error_of(response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_images_in_openai_shape_concurrently_with_gfdit_fields(gateway):
    bodies = [{"prompt": f"fox {i}", "size": "512x256", "steps": 4, "seed": 10 + i, "request_class": "S",
               "request_id": f"conc-{i}", "n": 2 if i == 0 else 1} for i in range(4)]
    answers: dict[int, httpx.Response] = {}
    threads = [threading.Thread(target=lambda i=i: answers.__setitem__(i, post(gateway, bodies[i])))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, response in answers.items():
        assert response.status_code == 200, response.text
        body = response.json()
        assert isinstance(body["created"], int) and len(body["data"]) == bodies[i]["n"]
        assert body["seed"] == 10 + i and body["model"] == "tiny"
        assert body["request_ids"] == (["conc-0-0", "conc-0-1"] if i == 0 else [f"conc-{i}"])
    from gfdit.client import Client

    with Client(gateway.address) as client:  # the server ran what the HTTP body asked for
        request = client.status("conc-1")["request"]["latest"]
        assert request["state"] == "completed"


@pytest.mark.parametrize("body, status, param, code", [
    ({"prompt": "x", "size": "64x60"}, 400, None, "invalid_value"),  # the server's intake: multiples of 8
    ({"prompt": "x", "size": "big"}, 400, "size", "invalid_value"),
    ({"prompt": "x", "step": 4}, 400, "step", "invalid_value"),  # a misspelt field is refused, not ignored
    ({"prompt": "x", "n": 0}, 400, "n", "invalid_value"),
    ({"size": "64x64"}, 400, "prompt", "invalid_value"),
    ({"prompt": "x", "model": "dall-e-3"}, 404, "model", "model_not_found"),
    ({"prompt": "x", "steps": 401}, 429, None, "admission_refused"),
])
def test_errors_in_openai_shape_with_fitting_status(gateway, body, status, param, code):
    response = post(gateway, body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert (error["param"], error["code"]) == (param, code)
    if status == 429:
        assert error["message"] == "over 400 steps: refused by this test's policy"


def test_openai_package_against_base_url(gateway):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=gateway.http_url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    answer = client.images.generate(prompt="a fox", size="256x256", response_format="b64_json",
                                    extra_body={"steps": 2, "seed": 3})
    assert answer.created > 0 and len(answer.data) == 1
    with pytest.raises(openai.RateLimitError) as refused:
        client.images.generate(prompt="a fox", extra_body={"steps": 1000})
    assert "refused by this test's policy" in str(refused.value)
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="a fox", size="250x250")


def read_events(server, request_id: str, on_event=None) -> list[tuple[str, dict]]:
    events = []
    with httpx.stream("GET", f"{server.http_url}/v1/requests/{request_id}/events", timeout=120) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[len("data: "):])))
                if on_event is not None:
                    on_event(events)
    return events


def test_sse_events_of_a_request_submitted_here_replay_from_the_first(gateway):
    answer = post(gateway, {"prompt": "sse", "size": "256x256", "steps": 6, "request_id": "sse-0"})
    assert answer.status_code == 200
    events = read_events(gateway, "sse-0")  # ended: the gateway's feed replays all of it
    assert [data["seq"] for _, data in events] == list(range(1, len(events) + 1))
    assert events[0][1]["state"] == "queued" and events[-1] == ("result", events[-1][1])
    assert events[-1][1]["state"] == "completed" and events[-1][1]["latency_s"] > 0


def test_sse_events_of_a_request_submitted_elsewhere_in_order_then_the_result(gateway):
    from gfdit.client import Client

    with Client(gateway.address) as client:
        handle = client.submit("sse", height=256, width=256, steps=6, request_id="sse-1")
        events = read_events(gateway, "sse-1")
        handle.result()
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"progress"}
    first = events[0][1]["seq"]  # a request submitted elsewhere: its events from the subscription on
    assert [data["seq"] for _, data in events] == list(range(first, first + len(events)))
    states = [data["state"] for _, data in events]
    assert states[-1] == "completed" and "running" in states
    assert max(data.get("step", 0) for _, data in events) == 6
    assert "call_id" not in events[0][1]


def test_delete_cancels_a_running_request_and_its_post_answers_cancelled(gateway):
    answer = {}
    poster = threading.Thread(target=lambda: answer.setdefault("r", post(gateway, {
        "prompt": "long", "steps": 400, "request_id": "to-cancel"})))
    poster.start()
    deadline = time.monotonic() + 30
    cancelled = {}

    def cancel_when_running(events):
        if not cancelled and events[-1][1]["state"] == "running":
            cancelled["ack"] = httpx.delete(f"{gateway.http_url}/v1/requests/to-cancel", timeout=30)

    while True:  # the POST may not have reached the server yet
        try:
            events = read_events(gateway, "to-cancel", cancel_when_running)
            break
        except AssertionError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    poster.join()
    ack = cancelled["ack"].json()  # a cancel that lands between two tasks ends the request at once
    assert ack in ({"id": "to-cancel", "object": "request.cancel", "state": state} for state in ("cancelling", "cancelled"))
    assert events[-1] == ("result", events[-1][1]) and events[-1][1]["state"] == "cancelled"
    assert max(data.get("step", 0) for _, data in events) < 400
    response = answer["r"]
    assert response.status_code == 409 and error_of(response)["code"] == "request_cancelled"
    missing = httpx.delete(f"{gateway.http_url}/v1/requests/no-such-request")
    assert missing.status_code == 404 and error_of(missing)["code"] == "unknown_request"


def test_models_and_metrics(gateway):
    models = httpx.get(gateway.http_url + "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    metrics = httpx.get(gateway.http_url + "/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE gfdit_requests_total counter" in metrics.text


def test_bearer_token_required_when_set(server_factory):
    server = server_factory(http_port=0, token=TOKEN)
    body = {"prompt": "x", "size": "64x64", "steps": 1}
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-24-chars!"}, {"Authorization": TOKEN}):
        refused = post(server, body, headers=headers)
        assert refused.status_code == 401 and error_of(refused)["type"] == "authentication_error"
    for path in ("/v1/models", "/metrics", "/v1/requests/x/events"):
        assert httpx.get(server.http_url + path).status_code == 401
    assert httpx.delete(server.http_url + "/v1/requests/x").status_code == 401
    health = httpx.get(server.http_url + "/health")  # open to probes, but says only up or down
    assert health.status_code == 200 and health.json() == {"status": "ok", "reason": "ok"}
    ok = post(server, body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200, ok.text
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.http_url + "/v1", api_key=TOKEN, max_retries=0)
    assert client.images.generate(prompt="x", size="64x64", extra_body={"steps": 1}).data
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.http_url + "/v1", api_key="nope", max_retries=0).models.list()


def test_health_503_while_workers_are_down_then_200(server_factory):
    server = server_factory(http_port=0)
    assert httpx.get(server.http_url + "/health").status_code == 200
    os.kill(server.worker_pids[0], signal.SIGKILL)
    seen, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline and not (503 in seen and seen[-1] == 200):
        seen.append(httpx.get(server.http_url + "/health", timeout=10).status_code)
        time.sleep(0.02)
    assert 503 in seen and seen[-1] == 200, seen[-20:]


def test_health_503_when_the_server_is_gone(server_factory):
    from gfdit.http.listener import HTTPGateway

    server = server_factory()
    gateway = HTTPGateway(server.address).start()
    try:
        assert httpx.get(gateway.url + "/health").status_code == 200
        server.stop()
        gone = httpx.get(gateway.url + "/health", timeout=60)
        assert gone.status_code == 503 and gone.json()["status"] == "unavailable"
    finally:
        gateway.close()


def test_health_with_a_token_says_only_down_not_why(server_factory):
    from gfdit.http.listener import HTTPGateway

    server = server_factory(http_port=0, token=TOKEN)
    os.kill(server.worker_pids[0], signal.SIGKILL)
    downs, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline and not downs:
        health = httpx.get(server.http_url + "/health", timeout=10)
        downs += [health.json()] if health.status_code == 503 else []
        time.sleep(0.02)
    assert downs == [{"status": "unavailable", "reason": "unavailable"}]  # no lost ranks, no pool text
    gateway = HTTPGateway(server.address, token=TOKEN).start()
    try:
        server.stop()
        gone = httpx.get(gateway.url + "/health", timeout=60)
        assert gone.status_code == 503 and gone.json() == {"status": "unavailable", "reason": "unavailable"}
    finally:
        gateway.close()


def test_a_payload_that_does_not_decode_fails_the_request_and_ends_every_waiter(server_factory, monkeypatch):
    import types

    import gfdit.client.handle
    from gfdit.http.listener import HTTPGateway

    def undecodable(*_args, **_kwargs):  # the one boundary: the client's payload decoder
        raise ValueError("malformed payload")

    monkeypatch.setattr(gfdit.client.handle, "outputs_from", undecodable)
    gateway = HTTPGateway(server_factory().address).start()
    try:
        answer = httpx.post(gateway.url + "/v1/images/generations", timeout=60,
                            json={"prompt": "x", "size": "64x64", "steps": 1, "request_id": "undecodable"})
        assert answer.status_code == 500 and "lost: malformed payload" in error_of(answer)["message"]
        events = read_events(types.SimpleNamespace(http_url=gateway.url), "undecodable")  # ends, not hangs
        assert events[-1][0] == "result" and events[-1][1]["state"] == "failed"
        assert events[-1][1]["reason"] == "lost: malformed payload"
    finally:
        gateway.close()


def test_remote_http_host_needs_allow_remote_and_a_token(tmp_path):
    from gfdit.server import Server, ServerConfig
    from gfdit.server.access import AccessError

    for host in ("http_host", "metrics_host"):
        for overrides in ({}, {"allow_remote": True}):
            with pytest.raises(AccessError):
                Server(ServerConfig(executor="emulated", cost_model=str(tmp_path), http_port=0, metrics_port=0,
                                    **{host: "0.0.0.0"}, **overrides))


def test_http_connections_send_without_nagle_delay():
    """Accepted connections have TCP_NODELAY (inherited from the listening socket): without it a
    keep-alive client waited ~40 ms per request for a delayed ACK (bench/http_gateway.py)."""
    import socket

    from gfdit.http.listener import bind_socket

    listener = bind_socket("127.0.0.1", 0)
    try:
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()


def test_video_job_in_openai_shape_queued_then_completed(gateway):
    created = httpx.post(gateway.http_url + "/v1/videos", timeout=60,
                         json={"prompt": "waves", "size": "256x256", "seconds": "1", "fps": 8, "steps": 4,
                               "request_id": "video-1"})
    assert created.status_code == 200, created.text
    job = created.json()
    assert (job["id"], job["object"], job["frames"]) == ("video-1", "video", 9)  # 1 s at 8 fps: 4k+1 frames
    assert job["status"] in ("queued", "in_progress", "completed")
    deadline = time.monotonic() + 60
    while job["status"] != "completed":
        assert time.monotonic() < deadline and job["status"] in ("queued", "in_progress"), job
        time.sleep(0.05)
        job = httpx.get(gateway.http_url + "/v1/videos/video-1").json()
    assert job["progress"] == 100
    content = httpx.get(gateway.http_url + "/v1/videos/video-1/content")  # emulated workers made no frames
    assert content.status_code == 404 and error_of(content)["code"] == "video_not_ready"
    missing = httpx.get(gateway.http_url + "/v1/videos/nope")
    assert missing.status_code == 404 and error_of(missing)["code"] == "video_not_found"


def test_video_frames_become_a_zip_of_pngs_without_an_encoder():
    import io
    import zipfile

    import numpy as np

    from gfdit.client import Output
    from gfdit.client.media import encode_video, has_mp4_encoder

    frames = [Output("image/x-raw-rgb8", np.full((8, 8, 3), i, np.uint8).tobytes(), (8, 8, 3)) for i in range(3)]
    data, media_type, suffix = encode_video(frames, fps=8)
    if has_mp4_encoder():
        assert (media_type, suffix) == ("video/mp4", "mp4") and data[4:8] == b"ftyp"
        return
    assert (media_type, suffix) == ("application/zip", "zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
        assert archive.read(names[2]) == frames[2].to_png()


def test_a_client_that_goes_away_cancels_its_requests(gateway):
    from gfdit.client import Client

    with pytest.raises(httpx.ReadTimeout):  # the client gives up (and closes the connection) after 1 s
        httpx.post(gateway.http_url + "/v1/images/generations", timeout=1.0,
                   json={"prompt": "long", "size": "1024x1024", "steps": 400, "request_id": "abandoned"})
    with Client(gateway.address) as client:
        deadline = time.monotonic() + 30
        while (latest := client.status("abandoned")["request"]["latest"])["state"] not in ("cancelled",
                                                                                            "completed"):
            assert time.monotonic() < deadline, latest
            time.sleep(0.1)
    assert latest["state"] == "cancelled"  # 400 steps of 1024x1024 take ~50 s here: it did not run to the end


def test_events_asked_while_the_same_id_is_being_posted_do_not_lose_the_request(gateway):
    """An events stream opened at the moment its POST is submitted (same id) waits for the submit;
    a follow that failed first used to drop the id's event queue in the shared client: the POST hung."""
    from concurrent.futures import ThreadPoolExecutor

    def race(i: int) -> tuple[int, int]:
        with ThreadPoolExecutor(2) as pool:
            posted = pool.submit(post, gateway, {"prompt": "race", "steps": 2, "request_id": f"race-{i}"})
            streamed = pool.submit(httpx.get, f"{gateway.http_url}/v1/requests/race-{i}/events", timeout=60)
            return posted.result().status_code, streamed.result().status_code

    outcomes = [race(i) for i in range(30)]
    assert all(posted == 200 for posted, _ in outcomes), outcomes
    assert all(streamed in (200, 404) for _, streamed in outcomes), outcomes  # 404: asked before the POST


def test_a_pinned_request_through_the_gateway(gateway):
    ok = post(gateway, {"prompt": "x", "size": "64x64", "steps": 2, "ranks": [1], "request_id": "pin-1"})
    assert ok.status_code == 200, ok.text
    from gfdit.client import Client

    with Client(gateway.address) as client:
        assert client.status("pin-1")["request"]["latest"]["state"] == "completed"
    outside = post(gateway, {"prompt": "x", "size": "64x64", "steps": 2, "ranks": [1, 9]})
    assert outside.status_code == 429, outside.text
    assert error_of(outside)["message"] == "pinned ranks [9] are outside the cluster (ranks 0..3)"
    empty = post(gateway, {"prompt": "x", "size": "64x64", "steps": 2, "ranks": []})
    assert empty.status_code == 400 and "ranks must be a non-empty list" in error_of(empty)["message"]
