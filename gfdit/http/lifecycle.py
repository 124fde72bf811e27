"""A request's life over HTTP: `GET /v1/requests/{id}/events` (Server-Sent Events) and
`DELETE /v1/requests/{id}` (cancel). Any request the server knows works, wherever it
was submitted.

Each event is `event: progress` or, last, `event: result`, with the gfdit event as
JSON data (`gfdit.protocol.Progress` / `Result` fields; the result without images).
A stream of a request submitted through this gateway replays its events from the first
(for the last 1,000 requests); one submitted elsewhere starts at the subscription. Then
it follows the request live.
"""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from gfdit.http.gateway import Gateway
from gfdit.protocol import Result


ENVELOPE = ("call_id", "instance", "outputs")  # the wire's, not the event's


def sse(event) -> bytes:
    kind = "result" if isinstance(event, Result) else "progress"
    fields = msgspec.structs.asdict(event)
    for envelope in ENVELOPE:
        fields.pop(envelope, None)
    data = msgspec.json.encode(fields)
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def router(gateway: Gateway, auth) -> APIRouter:
    api = APIRouter(dependencies=[Depends(auth)])

    @api.get("/v1/requests/{request_id}/events")
    async def events(request_id: str) -> StreamingResponse:
        feed = await gateway.follow(request_id)  # unknown id: ServerError -> 404, before the stream starts

        async def stream():
            async for event in feed.follow():
                yield sse(event)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.delete("/v1/requests/{request_id}")
    async def cancel(request_id: str) -> dict:
        state = await gateway.cancel(request_id)  # unknown id: ServerError -> 404
        return {"id": request_id, "object": "request.cancel", "state": state}

    return api
