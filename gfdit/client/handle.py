"""A submitted request as the client sees it: progress, result, cancel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from gfdit.client.errors import RequestCancelled, RequestFailed, ServerError
from gfdit.client.result import GenerationResult, outputs_from
from gfdit.protocol import Ack, Cancel, ErrorReply, GenParams, Progress, Result

if TYPE_CHECKING:
    from gfdit.client.connection import Connection


class RequestHandle:
    """Returned by `Client.submit`. Iterate `progress()` for live events; `result()`
    waits for the end and returns the images or raises a typed error."""

    def __init__(self, conn: "Connection", request_id: str, params: GenParams | None = None):
        self._conn = conn
        self.request_id = request_id
        self.params = params  # what the server will run (its defaults filled in); None when followed
        self.events: list[Progress] = []
        self._final: tuple[Result, list[bytes]] | None = None

    def progress(self, timeout: float | None = None) -> Iterator[Progress | Result]:
        """Yield progress events in order, then the final `Result`, then stop.

        queued -> encoding -> [migrated] -> running step k/N at width w -> ...
        -> decoding -> Result(state completed | failed | cancelled).
        """
        while self._final is None:
            msg, payload = self._conn.next_event(self.request_id, timeout)
            if isinstance(msg, Result):
                self._final = (msg, payload)
                self._conn.untrack(self.request_id)
                yield msg
                return
            self.events.append(msg)
            yield msg

    def done(self) -> bool:
        return self._final is not None

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the end. Raises RequestFailed (with the reason) or RequestCancelled."""
        for _ in self.progress(timeout):
            pass
        msg, payload = self._final
        if msg.state == "completed":
            return GenerationResult(
                self.request_id, outputs_from(msg.outputs, payload), msg.latency_s, msg.deadline_s, msg.slo_met
            )
        if msg.state == "cancelled":
            raise RequestCancelled(self.request_id, msg.reason)
        raise RequestFailed(self.request_id, msg.reason or msg.state)

    def cancel(self, timeout: float = 30.0) -> str:
        """Ask the server to cancel; returns what happened ("removed", "stopping", or
        the request's terminal state when it had already ended)."""
        reply, _ = self._conn.call(Cancel(request_id=self.request_id), timeout)
        if isinstance(reply, ErrorReply):
            raise ServerError(reply.code, reply.message)
        assert isinstance(reply, Ack)
        return reply.state

    def __repr__(self) -> str:
        state = self._final[0].state if self._final else (self.events[-1].state if self.events else "submitted")
        return f"RequestHandle({self.request_id!r}, {state})"
