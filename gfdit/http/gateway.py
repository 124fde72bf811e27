"""What every endpoint shares: the ZeroMQ client, the feeds, the file store, the model's name.

The gateway talks to the engine only through `gfdit.Client` (in `gfdit serve
--http-port`, a client of the server in the same process; in `gfdit gateway`, of a
server elsewhere). Client calls block, so they run on worker threads
(`asyncio.to_thread`); events come from one pump thread per followed request
(`feeds.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from gfdit.client import Client, RequestHandle
from gfdit.http.errors import APIError
from gfdit.http.feeds import Feed, FeedBook
from gfdit.http.files import FileStore


@dataclass
class Gateway:
    client: Client
    token: str = ""
    max_live: int = 1024  # requests followed at once (one pump thread each); more -> 429
    feeds: FeedBook = field(default_factory=FeedBook)
    files: FileStore = field(default_factory=FileStore)
    _status: dict | None = None
    _id_locks: dict = field(default_factory=dict)  # request id -> (asyncio.Lock, users)

    async def status(self) -> dict:
        return await asyncio.to_thread(self.client.status)

    async def model_name(self) -> str:
        """The served model (asked once; a server does not change its model)."""
        if self._status is None:
            self._status = await self.status()
        return str(self._status.get("model", ""))

    async def submit(self, prompt: str, **params) -> Feed:
        """Submit one request (raises RequestRejected, ServerGone, ...) and follow it."""
        if self.feeds.live() >= self.max_live:
            raise APIError(429, f"the gateway follows {self.max_live} requests already; retry later",
                           "rate_limit_error", code="gateway_busy")
        async with self._one_call_per_id(params.get("request_id")):
            handle: RequestHandle = await asyncio.to_thread(self.client.submit, prompt, **params)
            feed = self.feeds.open(handle.request_id, keep_payload=True)
            feed.pump(handle)
        return feed

    async def follow(self, request_id: str) -> Feed:
        """The feed of any request the server knows (ServerError unknown_request if none)."""
        async with self._one_call_per_id(request_id):
            feed = self.feeds.get(request_id)
            if feed is None:
                handle = await asyncio.to_thread(self.client.follow, request_id)
                feed = self.feeds.open(request_id, keep_payload=False)
                feed.pump(handle)
        return feed

    @contextlib.asynccontextmanager
    async def _one_call_per_id(self, request_id: str | None):
        """Submit and follow of one id never overlap: the shared Client keeps one event queue per
        id, and a follow that fails (not submitted yet) would drop the queue a submit relies on."""
        if not request_id:
            yield
            return
        lock, users = self._id_locks.get(request_id, (asyncio.Lock(), 0))
        self._id_locks[request_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._id_locks[request_id]
            if users == 1:
                del self._id_locks[request_id]
            else:
                self._id_locks[request_id] = (lock, users - 1)

    async def cancel(self, request_id: str) -> str:
        return await asyncio.to_thread(self.client.cancel, request_id)

    async def metrics(self) -> dict:
        return await asyncio.to_thread(self.client.metrics)
