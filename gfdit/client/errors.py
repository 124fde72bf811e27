"""Typed client errors: what went wrong at the boundary, and why."""

from __future__ import annotations


class GfditError(Exception):
    """Base of every error the client raises."""


class RequestRejected(GfditError):
    """The server refused the submit (admission: the policy's reason, or invalid input);
    `code` says which (`gfdit.protocol.Rejected`: admission, invalid, duplicate, busy, unavailable)."""

    def __init__(self, reason: str, code: str = "admission"):
        super().__init__(f"rejected: {reason}")
        self.reason = reason
        self.code = code


class RequestFailed(GfditError):
    """The request was accepted but ended failed; `reason` says why."""

    def __init__(self, request_id: str, reason: str):
        super().__init__(f"request {request_id} failed: {reason}")
        self.request_id = request_id
        self.reason = reason


class RequestCancelled(GfditError):
    """The request was cancelled before it completed."""

    def __init__(self, request_id: str, reason: str = ""):
        super().__init__(f"request {request_id} cancelled" + (f": {reason}" if reason else ""))
        self.request_id = request_id
        self.reason = reason


class ServerGone(GfditError):
    """The server stopped answering (not running, crashed, or unreachable)."""


class ServerRestarted(ServerGone):
    """The server at this address is a new start (its identity changed): requests the
    old one had accepted are lost with it; submit them again."""


class ServerError(GfditError):
    """The server answered a call with an error reply (malformed, unauthorized, unknown)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
