"""`POST /v1/images/generations` (OpenAI's shape) and `GET /v1/files/{id}` (for `url` responses)."""

from __future__ import annotations

import asyncio
import base64
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gfdit.http.errors import APIError
from gfdit.http.gateway import Gateway
from gfdit.http.schemas import ImageRequest
from gfdit.http.submit import check_model, results, submit_all


def router(gateway: Gateway, auth) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/images/generations", dependencies=[Depends(auth)])
    async def generate(body: ImageRequest, request: Request) -> dict:
        model = await check_model(gateway, body)
        feeds, seed = await submit_all(gateway, body, body.n)
        outputs = await results(gateway, feeds, request)
        pngs = await asyncio.to_thread(lambda: [[image.to_png() for image in images] for images in outputs])
        data = []  # (encoding off the event loop: other requests are served meanwhile)
        for images in pngs:
            for png in images:
                if body.response_format == "url":
                    url = str(request.url_for("get_file", file_id=gateway.files.put(png, "image/png")))
                    data.append({"url": url, "revised_prompt": body.prompt})
                else:
                    data.append({"b64_json": base64.b64encode(png).decode(), "revised_prompt": body.prompt})
            if not images:  # emulated workers make none: say so rather than answer an empty list silently
                data.append({"b64_json": None, "revised_prompt": body.prompt, "gfdit_note": "no image (emulated)"})
        return {"created": int(time.time()), "data": data, "output_format": "png",
                "model": model, "seed": seed, "request_ids": [feed.request_id for feed in feeds],
                "latency_s": [feed.result.latency_s for feed in feeds]}

    @api.get("/v1/files/{file_id}", name="get_file")
    async def get_file(file_id: str) -> Response:
        found = gateway.files.get(file_id)
        if found is None:
            raise APIError(404, f"no file {file_id!r} (files are kept for the last "
                                f"{gateway.files.max_files} results)", code="file_not_found")
        media_type, data = found
        return Response(data, media_type=media_type)

    return api
