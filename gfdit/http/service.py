"""`GET /v1/models`, `GET /health` (200 only while workers are up) and `GET /metrics`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from gfdit.client import GfditError
from gfdit.http.gateway import Gateway

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DOWN_WITH_TOKEN = "unavailable"  # with a token set, /health says up or down and nothing of why


def health_of(status: dict) -> tuple[bool, str]:
    """(up, why): up when every rank has a live worker and the server is not stopping."""
    if status.get("pool_gone"):
        return False, f"no workers: {status['pool_gone']}"
    if status.get("stopping"):
        return False, "the server is stopping"
    if status.get("recovering") or status.get("lost_ranks"):
        return False, f"workers restarting (ranks lost: {status.get('lost_ranks')})"
    if not status.get("worker_pids"):
        return False, "no workers"
    return True, "ok"


def router(gateway: Gateway, auth) -> APIRouter:
    api = APIRouter()

    @api.get("/health")
    async def health() -> JSONResponse:
        try:
            status = await gateway.status()
        except (GfditError, TimeoutError) as exc:
            why = DOWN_WITH_TOKEN if gateway.token else f"server does not answer: {exc}"
            return JSONResponse({"status": "unavailable", "reason": why}, 503)
        up, why = health_of(status)
        if gateway.token and not up:  # /health needs no token (probes): with one set, only up or down
            why = DOWN_WITH_TOKEN
        body = {"status": "ok" if up else "unavailable", "reason": why}
        if not gateway.token:
            body.update(model=status.get("model"), workers=len(status.get("worker_pids") or {}),
                        queued=status.get("queued"), running=status.get("running"))
        return JSONResponse(body, 200 if up else 503)

    @api.get("/v1/models", dependencies=[Depends(auth)])
    async def models() -> dict:
        status = await gateway.status()
        created = int(time.time() - float(status.get("uptime_s") or 0))
        return {"object": "list", "data": [{"id": status.get("model"), "object": "model", "created": created,
                                            "owned_by": "gfdit", "policy": status.get("policy"),
                                            "gpus": status.get("gpus")}]}

    @api.get("/metrics", dependencies=[Depends(auth)])
    async def metrics() -> PlainTextResponse:
        text = (await gateway.metrics())["prometheus"]
        return PlainTextResponse(text, media_type=PROMETHEUS_TYPE)

    return api
