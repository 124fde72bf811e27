"""The HTTP gateway on real workers (the tiny diffusers model on 2 CPU processes), through the
official `openai` package: PNG images as b64_json and as URLs the gateway serves."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_http(tmp_path_factory):
    from gfdit.server import Server, ServerConfig

    policy = tmp_path_factory.mktemp("real_http") / "one.gfp"
    policy.write_text("policy one\nparam widths = {1, 2}\norder by req.arrival\nwidth * = 1\nplace sticky, lowest\n")
    config = ServerConfig(model="tiny", num_gpus=2, policy=str(policy), address="tcp://127.0.0.1:0",
                          calibrate_steps=2, http_port=0)
    server = Server(config).start_background()
    yield server
    server.stop()


def picture(png: bytes) -> np.ndarray:
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)))
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10  # generated, not a blank frame
    return image


def test_openai_images_generate_b64_and_url_on_the_tiny_model(real_http):
    client = openai.OpenAI(base_url=real_http.http_url + "/v1", api_key="unused", max_retries=0, timeout=300)
    answer = client.images.generate(model="tiny", prompt="a red fox", n=2, size="64x64",
                                    response_format="b64_json", extra_body={"steps": 3, "seed": 7})
    images = [picture(base64.b64decode(item.b64_json)) for item in answer.data]
    assert [image.shape for image in images] == [(64, 64, 3)] * 2
    assert not np.array_equal(images[0], images[1])  # seeds 7 and 8
    again = client.images.generate(prompt="a red fox", size="64x64", response_format="url",
                                   extra_body={"steps": 3, "seed": 7})
    fetched = httpx.get(again.data[0].url, timeout=30)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert np.array_equal(picture(fetched.content), images[0])  # same seed, same image


def test_video_job_content_on_the_tiny_model(real_http):
    """An image model takes frames=1 only: the job's content is that one frame (ZIP without an encoder)."""
    import time
    import zipfile

    base = real_http.http_url
    refused = httpx.post(base + "/v1/videos", json={"prompt": "waves", "size": "64x64", "frames": 5}, timeout=60)
    assert refused.status_code == 400 and "frames must be 1" in refused.json()["error"]["message"]
    job = httpx.post(base + "/v1/videos", json={"prompt": "waves", "size": "64x64", "frames": 1, "steps": 2},
                     timeout=60).json()
    deadline = time.monotonic() + 300
    while job["status"] != "completed":
        assert time.monotonic() < deadline and job["status"] in ("queued", "in_progress"), job
        time.sleep(0.1)
        job = httpx.get(f"{base}/v1/videos/{job['id']}").json()
    content = httpx.get(f"{base}/v1/videos/{job['id']}/content")
    assert content.status_code == 200
    if content.headers["content-type"] == "video/mp4":
        assert content.content[4:8] == b"ftyp"
        return
    with zipfile.ZipFile(io.BytesIO(content.content)) as archive:
        (name,) = archive.namelist()
        assert picture(archive.read(name)).shape == (64, 64, 3)
