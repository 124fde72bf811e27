"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}` and a fitting status.

A refused submit keeps the server's reason and its kind (`gfdit.protocol.Rejected.code`)
picks the status: the policy's admission says no -> 429, a bad field -> 400, no workers
-> 503. One table, so every endpoint answers the same way.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gfdit.client.errors import RequestRejected, ServerError, ServerGone

# Rejected.code -> (HTTP status, error type, error code)
REJECTIONS: dict[str, tuple[int, str, str]] = {
    "admission": (429, "rate_limit_error", "admission_refused"),
    "busy": (429, "rate_limit_error", "queue_full"),
    "invalid": (400, "invalid_request_error", "invalid_value"),
    "duplicate": (409, "invalid_request_error", "duplicate_request_id"),
    "unavailable": (503, "server_error", "no_workers"),
}
# ServerError.code (the server's ErrorReply) -> (HTTP status, error type)
SERVER_ERRORS: dict[str, tuple[int, str]] = {
    "unknown_request": (404, "invalid_request_error"),
    "shutting_down": (503, "server_error"),
    "unauthorized": (502, "server_error"),  # the gateway's own token does not open the server
    "invalid": (400, "invalid_request_error"),
}
HTTP_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
              405: "invalid_request_error", 409: "invalid_request_error", 429: "rate_limit_error"}


class APIError(Exception):
    """An error answered in the OpenAI shape."""

    def __init__(self, status: int, message: str, type_: str | None = None, param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type_ or HTTP_TYPES.get(status, "server_error")

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def from_rejection(exc: RequestRejected) -> APIError:
    status, type_, code = REJECTIONS.get(exc.code, REJECTIONS["admission"])
    return APIError(status, exc.reason, type_, code=code)


def from_server_error(exc: ServerError) -> APIError:
    status, type_ = SERVER_ERRORS.get(exc.code, (500, "server_error"))
    return APIError(status, exc.message, type_, code=exc.code)


def from_gone(exc: ServerGone | TimeoutError) -> APIError:
    return APIError(503, f"the gfdit server does not answer: {exc}", "server_error", code="server_unavailable")


def install(app) -> None:
    """Every error the app can meet, answered in the OpenAI shape."""

    async def api_error(_: Request, exc: APIError):
        return exc.response()

    async def validation(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(part) for part in first.get("loc", ()) if part != "body"]
        message = f"{'.'.join(where) or 'body'}: {first.get('msg', 'invalid request')}"
        return APIError(400, message, param=".".join(where) or None, code="invalid_value").response()

    async def http_error(_: Request, exc: StarletteHTTPException):
        return APIError(exc.status_code, str(exc.detail)).response()

    handlers = {APIError: api_error, RequestValidationError: validation, StarletteHTTPException: http_error,
                RequestRejected: lambda _, exc: from_rejection(exc).response(),
                ServerError: lambda _, exc: from_server_error(exc).response(),
                ServerGone: lambda _, exc: from_gone(exc).response(),
                TimeoutError: lambda _, exc: from_gone(exc).response()}
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
