"""Video jobs in OpenAI's shape: `POST /v1/videos` answers a job at once (`status: queued`),
`GET /v1/videos/{id}` tells its status and progress, `GET /v1/videos/{id}/content`
downloads it (MP4 with an encoder, else a ZIP of PNG frames: `gfdit/client/media.py`). The job id
is the gfdit request id, so its events and cancel work too.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from gfdit.http.errors import APIError
from gfdit.http.feeds import Feed
from gfdit.http.gateway import Gateway
from gfdit.client.media import encode_video
from gfdit.http.schemas import VideoRequest
from gfdit.http.submit import check_model, submit_all
from gfdit.protocol import Progress

STATUS = {"queued": "queued", "completed": "completed", "failed": "failed", "cancelled": "failed"}
KEEP_JOBS = 1000


class Jobs:
    """Video jobs by id: the request's feed, the job's fields, its file once encoded (bounded)."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.jobs: OrderedDict[str, dict] = OrderedDict()

    def add(self, feed: Feed, job: dict, fps: int) -> None:
        self.jobs[feed.request_id] = {"feed": feed, "job": job, "file": None, "encoded": False}
        while len(self.jobs) > KEEP_JOBS:
            self.jobs.popitem(last=False)
        asyncio.get_running_loop().create_task(self._encode_when_done(feed, fps))

    async def _encode_when_done(self, feed: Feed, fps: int) -> None:
        result = await feed.finished()
        frames = feed.take_payload()
        entry = self.jobs.get(feed.request_id)
        if entry is not None and result.state == "completed" and frames:
            data, media_type, _ = await asyncio.to_thread(encode_video, frames, fps)
            entry["file"] = self.gateway.files.put(data, media_type)
        if entry is not None:
            entry["encoded"] = True  # (emulated workers make no frames: completed without content)

    def view(self, video_id: str) -> dict:
        entry = self.jobs.get(video_id)
        if entry is None:
            raise APIError(404, f"no video job {video_id!r}", code="video_not_found")
        feed, job = entry["feed"], dict(entry["job"])
        last = feed.events[-1] if feed.events else None
        if feed.result is not None:
            job["status"] = STATUS.get(feed.result.state, "failed")
            job["progress"] = 100 if feed.result.state == "completed" else job["progress"]
            if feed.result.state != "completed":
                job["error"] = {"code": feed.result.state, "message": feed.result.reason}
            elif not entry["encoded"]:
                job["status"] = "in_progress"  # encoding
        elif isinstance(last, Progress) and last.state != "queued":
            job["status"] = "in_progress"
            job["progress"] = int(99 * last.step / last.steps) if last.steps else 0
        return job


def router(gateway: Gateway, auth) -> APIRouter:
    api = APIRouter(dependencies=[Depends(auth)])
    jobs = Jobs(gateway)

    @api.post("/v1/videos")
    async def create(body: VideoRequest) -> dict:
        model = await check_model(gateway, body)
        (feed,), seed = await submit_all(gateway, body, 1, frames=body.frame_count() or 1)
        job = {"id": feed.request_id, "object": "video", "model": model, "status": "queued", "progress": 0,
               "created_at": int(time.time()), "size": body.size, "seconds": body.seconds, "seed": seed,
               "frames": feed.handle.params.frames if feed.handle.params else None, "fps": body.fps}
        jobs.add(feed, job, body.fps)
        return jobs.view(feed.request_id)

    @api.get("/v1/videos/{video_id}")
    async def retrieve(video_id: str) -> dict:
        return jobs.view(video_id)

    @api.get("/v1/videos/{video_id}/content")
    async def content(video_id: str) -> Response:
        job = jobs.view(video_id)
        entry = jobs.jobs[video_id]
        found = gateway.files.get(entry["file"]) if entry["file"] else None
        if found is None:
            raise APIError(409 if job["status"] in ("queued", "in_progress") else 404,
                           f"video {video_id} is {job['status']}: no content"
                           + ("" if job["status"] in ("queued", "in_progress") else " (or no longer kept)"),
                           code="video_not_ready")
        media_type, data = found
        suffix = "mp4" if media_type == "video/mp4" else "zip"
        return Response(data, media_type=media_type,
                        headers={"Content-Disposition": f'attachment; filename="{video_id}.{suffix}"'})

    return api
