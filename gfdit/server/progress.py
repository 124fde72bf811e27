"""Progress events and results, in order, to each request's subscribers.

The engine loop calls `emit` and `finish`; the book numbers each request's
events (`seq`) so clients can check order, remembers the latest one for status
replies, and keeps the last `keep_finished` results (without their images) so a
late `Subscribe` or status query on a finished request still gets its end.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from gfdit.protocol import Progress, Result, ServerMessage

Send = Callable[[bytes, ServerMessage, list[bytes]], None]


class ProgressBook:
    """Subscribers, sequence numbers and the latest event of every live request."""

    def __init__(self, send: Send, keep_finished: int = 10_000):
        self._send = send
        self._subscribers: dict[str, list[bytes]] = {}
        self._seq: dict[str, int] = {}
        self._latest: dict[str, Progress] = {}
        self._finished: OrderedDict[str, Result] = OrderedDict()
        self._keep = keep_finished

    def open(self, request_id: str, peer: bytes | None) -> None:
        self._subscribers[request_id] = [peer] if peer is not None else []
        self._seq[request_id] = 0

    def subscribe(self, request_id: str, peer: bytes) -> str:
        """Add a subscriber: "live", or "finished" (its stored result is sent at once),
        or "unknown"."""
        if request_id in self._subscribers:
            if peer not in self._subscribers[request_id]:
                self._subscribers[request_id].append(peer)
            return "live"
        result = self._finished.get(request_id)
        if result is None:
            return "unknown"
        self._send(peer, result, [])
        return "finished"

    def emit(self, request_id: str, state: str, now: float, **fields) -> None:
        if request_id not in self._seq:
            return
        self._seq[request_id] += 1
        event = Progress(request_id=request_id, seq=self._seq[request_id], state=state, time=now, **fields)
        self._latest[request_id] = event
        for peer in self._subscribers[request_id]:
            self._send(peer, event, [])

    def finish(self, request_id: str, state: str, payload: list[bytes] | None = None, **fields) -> None:
        """Send the request's `Result` (with its output frames) and close its stream."""
        if request_id not in self._seq:
            return
        result = Result(request_id=request_id, seq=self._seq.pop(request_id) + 1, state=state, **fields)
        for peer in self._subscribers.pop(request_id):
            self._send(peer, result, payload or [])
        self._latest.pop(request_id, None)
        self._finished[request_id] = Result(**{**_fields(result), "outputs": []})
        while len(self._finished) > self._keep:
            self._finished.popitem(last=False)

    def latest(self, request_id: str) -> dict | None:
        """The latest event of a live request, or the result of a finished one."""
        event = self._latest.get(request_id) or self._finished.get(request_id)
        return None if event is None else _fields(event)

    def live(self, request_id: str) -> bool:
        return request_id in self._seq

    def live_ids(self) -> list[str]:
        return list(self._seq)

    def known(self, request_id: str) -> bool:
        return request_id in self._seq or request_id in self._finished


def _fields(msg) -> dict:
    return {name: getattr(msg, name) for name in msg.__struct_fields__}
