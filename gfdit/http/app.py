"""The FastAPI application: every router, one error shape, one bearer check."""

from __future__ import annotations

from fastapi import FastAPI

from gfdit.http import errors, images, lifecycle, service, videos
from gfdit.http.auth import bearer_dependency
from gfdit.http.gateway import Gateway


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="gfdit", summary="OpenAI-compatible image and video generation on a gfdit server",
                  version="1")
    auth = bearer_dependency(gateway.token)
    for module in (images, videos, lifecycle, service):
        app.include_router(module.router(gateway, auth))
    errors.install(app)
    app.state.gateway = gateway
    return app
