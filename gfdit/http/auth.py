"""The bearer token: the same token as the ZeroMQ address, as `Authorization: Bearer TOKEN`.

With a token set (required off loopback, see gfdit/server/access.py), every endpoint
but `/health` and the capability URLs of `/v1/files/{id}` answers 401 without it.
The comparison is constant-time (`TokenCheck`).
"""

from __future__ import annotations

from fastapi import Request

from gfdit.http.errors import APIError
from gfdit.server.access import TokenCheck


def bearer_dependency(token: str):
    """A FastAPI dependency that refuses a request without the right bearer token."""
    check = TokenCheck(token)

    async def require_token(request: Request) -> None:
        if not token:
            return
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not check.allows(presented.strip()):
            raise APIError(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
                           "authentication_error", code="invalid_api_key")

    return require_token
