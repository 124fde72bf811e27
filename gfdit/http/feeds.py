"""One feed per request the gateway follows: its events in order, read by any number of waiters.

The ZeroMQ client keeps one event queue per request id, so the gateway reads each
request with one handle, on one pump thread (`RequestHandle.progress`), and fans the
events out here: the POST that submitted it waits for the result, any number of
`GET /v1/requests/{id}/events` streams replay and follow the same list. Every change
happens on the event loop's thread (the pump hands events over with
`call_soon_threadsafe`), so nothing here takes a lock.

Bounded: ended feeds are kept for the last `keep_ended` requests (events only; the
images are dropped once the submitting handler has taken them, or at once for a feed
nobody submitted here).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from typing import AsyncIterator

from gfdit.client import GfditError, RequestHandle
from gfdit.protocol import Progress, Result

log = logging.getLogger("gfdit.http")


class Feed:
    """The events of one request (Progress ..., then one Result) and the final images."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request_id: str, keep_payload: bool):
        self.loop, self.request_id, self.keep_payload = loop, request_id, keep_payload
        self.events: list[Progress | Result] = []
        self.result: Result | None = None
        self.handle: RequestHandle | None = None
        self.payload: list | None = None  # GenerationResult outputs, for the submitting handler
        self._waiters: list[asyncio.Future] = []

    def pump(self, handle: RequestHandle) -> None:
        """Read `handle` on a thread until its result; hand every event to the loop."""
        self.handle = handle
        threading.Thread(target=self._pump, name=f"gfdit-http-{self.request_id}", daemon=True).start()

    def _pump(self) -> None:
        handle = self.handle
        try:
            for event in handle.progress():
                outputs = None
                if isinstance(event, Result) and event.state == "completed" and self.keep_payload:
                    outputs = handle.result().outputs
                self.loop.call_soon_threadsafe(self._add, event, outputs)
        except (GfditError, TimeoutError) as exc:  # the server went away: the request is lost
            self._lose(exc)
        except Exception as exc:  # anything else (a payload that does not decode): every waiter still ends
            log.exception("request %s: following its events failed", self.request_id)
            self._lose(exc)

    def _lose(self, exc: BaseException) -> None:
        """End the feed (from the pump thread) with a failed Result: the request is lost to this gateway."""
        lost = Result(request_id=self.request_id, seq=len(self.events) + 1, state="failed",
                      reason=f"lost: {exc}")
        self.loop.call_soon_threadsafe(self._add, lost, None)

    def _add(self, event: Progress | Result, outputs: list | None) -> None:
        self.events.append(event)
        if isinstance(event, Result):
            self.result, self.payload = event, outputs
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def follow(self) -> AsyncIterator[Progress | Result]:
        """Every event from the first, then each new one as it comes, ending with the Result."""
        index = 0
        while True:
            while index < len(self.events):
                index += 1
                yield self.events[index - 1]
            if self.result is not None:
                return
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter

    async def finished(self) -> Result:
        async for _ in self.follow():
            pass
        return self.result

    def take_payload(self) -> list:
        """The completed request's outputs, handed over once (the feed keeps only events)."""
        outputs, self.payload = self.payload or [], None
        return outputs


class FeedBook:
    """Feeds by request id: live ones, and the last `keep_ended` ended ones."""

    def __init__(self, keep_ended: int = 1000):
        self.keep_ended = keep_ended
        self._feeds: OrderedDict[str, Feed] = OrderedDict()

    def get(self, request_id: str) -> Feed | None:
        return self._feeds.get(request_id)

    def open(self, request_id: str, keep_payload: bool) -> Feed:
        feed = Feed(asyncio.get_running_loop(), request_id, keep_payload)
        self._feeds[request_id] = feed
        self._trim()
        return feed

    def live(self) -> int:
        return sum(1 for feed in self._feeds.values() if feed.result is None)

    def _trim(self) -> None:
        ended = [rid for rid, feed in self._feeds.items() if feed.result is not None]
        for rid in ended[: max(0, len(ended) - self.keep_ended)]:
            del self._feeds[rid]
