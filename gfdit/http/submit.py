"""From a request body to submitted requests and their results: shared by images and videos."""

from __future__ import annotations

import asyncio
import secrets

from gfdit.client import RequestRejected
from gfdit.http.errors import APIError, from_rejection
from gfdit.http.feeds import Feed
from gfdit.http.gateway import Gateway
from gfdit.http.schemas import GfditFields

# Result.state -> (HTTP status, error code) when a request does not complete
DISCONNECT_POLL_S = 0.25
UNFINISHED = {"failed": (500, "generation_failed"), "cancelled": (409, "request_cancelled")}


async def check_model(gateway: Gateway, body: GfditFields) -> str:
    served = await gateway.model_name()
    if body.model not in (None, "", served):
        raise APIError(404, f"model {body.model!r} is not served here; this server serves {served!r} "
                            "(GET /v1/models)", param="model", code="model_not_found")
    return served


async def submit_all(gateway: Gateway, body: GfditFields, n: int, frames: int = 1) -> tuple[list[Feed], int]:
    """Submit `n` requests (seeds seed, seed+1, ...); all or none: a refusal cancels the
    ones already accepted. Returns their feeds and the first seed."""
    width, height = body.shape()
    seed = body.seed if body.seed is not None else secrets.randbelow(1 << 31)
    feeds: list[Feed] = []
    try:
        for i in range(n):
            rid = body.request_id if n == 1 or body.request_id is None else f"{body.request_id}-{i}"
            feeds.append(await gateway.submit(
                body.prompt, height=height, width=width, frames=frames, steps=body.steps, seed=seed + i,
                request_class=body.request_class, deadline=body.deadline_s, priority=body.priority,
                negative_prompt=body.negative_prompt, guidance_scale=body.guidance_scale, request_id=rid,
                ranks=body.ranks))
    except RequestRejected as exc:
        await cancel_all(gateway, feeds)
        raise from_rejection(exc) from None
    except BaseException:
        await cancel_all(gateway, feeds)
        raise
    return feeds, seed


async def results(gateway: Gateway, feeds: list[Feed], caller=None) -> list[list]:
    """Wait for every request; their outputs, or an APIError for the first that did not complete.
    A caller that goes away (`caller`, the HTTP request, disconnected: checked every
    DISCONNECT_POLL_S) cancels what is still running, so a client that timed out and retries
    does not leave its first requests taking the ranks."""
    waiting = asyncio.ensure_future(asyncio.gather(*(feed.finished() for feed in feeds)))
    try:
        while not waiting.done():
            await asyncio.wait([waiting], timeout=DISCONNECT_POLL_S)
            if not waiting.done() and caller is not None and await caller.is_disconnected():
                raise APIError(499, "the client went away: its requests were cancelled", code="client_closed")
        ended = waiting.result()
    except (asyncio.CancelledError, APIError):
        waiting.cancel()
        await asyncio.shield(cancel_all(gateway, feeds))
        raise
    outputs = [feed.take_payload() for feed in feeds]
    for result in ended:
        if result.state != "completed":
            status, code = UNFINISHED.get(result.state, (500, "generation_failed"))
            raise APIError(status, f"request {result.request_id} {result.state}: {result.reason}",
                           "server_error" if status >= 500 else "invalid_request_error", code=code)
    return outputs


async def cancel_all(gateway: Gateway, feeds: list[Feed]) -> None:
    for feed in feeds:
        if feed.result is None:
            try:
                await gateway.cancel(feed.request_id)
            except Exception:  # noqa: BLE001 -- best effort: the request may have just ended
                pass
