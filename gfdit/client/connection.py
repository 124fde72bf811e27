"""One DEALER socket to the server, safe to share between threads.

Whichever thread waits pumps the socket (under a lock) and files what arrives:
replies by call id, progress and results by request id. Sending never waits for
that lock: a message goes into an outbox that whoever holds the socket flushes
at once (a wake-up pipe interrupts its poll). A waiter that hears nothing for
`ping_after_s` sends a ping; silence past `gone_after_s` raises `ServerGone`, so
no call or result wait hangs on a dead server.

Every reply names the server start that sent it (`ServerMessage.instance`). When
that identity changes, the server at this address restarted: the requests the
old one owned are lost, and their waiters get `ServerRestarted` (within one
ping interval, since the new server answers the ping).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections import deque
from typing import Callable, TypeVar

import zmq

from gfdit.client.errors import ServerGone, ServerRestarted
from gfdit.protocol import (
    SERVER_KINDS,
    Accepted,
    ClientMessage,
    Ping,
    Progress,
    ProtocolError,
    Result,
    ServerMessage,
    decode_frames,
    encode_frames,
    normalize_address,
)

T = TypeVar("T")
PUMP_S = 0.05


class Connection:
    """The client's socket, its reply table and per-request event queues."""

    def __init__(self, address: str, token: str = "", *, ping_after_s: float = 2.0, gone_after_s: float = 15.0):
        self.address = normalize_address(address)  # HOST:PORT means tcp://; ValueError for other schemes
        self.token = token
        self.ping_after_s = ping_after_s
        self.gone_after_s = gone_after_s
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 0)  # events wait here, unbounded, until a waiter files them
        try:
            self._sock.connect(self.address)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            self._ctx.term()
            raise ValueError(f"cannot connect to {self.address}: {exc.strerror}") from None
        self._io = threading.Lock()  # whoever holds it owns the socket
        self._outbox: deque[list[bytes]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.server_instance: str | None = None  # the server start we have heard from
        self._owner: dict[str, str] = {}  # request id -> the server start that accepted it
        self._lost: dict[str, str] = {}  # request id -> why (its server restarted)
        self._cond = threading.Condition()
        self._calls = itertools.count(1)
        self._awaited: set[int] = set()
        self._replies: dict[int, tuple[ServerMessage, list[bytes]]] = {}
        self._events: dict[str, deque[tuple[ServerMessage, list[bytes]]]] = {}
        self._last_heard = time.monotonic()
        self._last_ping = 0.0
        self.closed = False

    # -- sending -----------------------------------------------------------
    def send(self, msg: ClientMessage) -> None:
        """Queue `msg`; sent now, by this thread or by the one pumping the socket."""
        msg.token = self.token
        self._outbox.append(encode_frames(msg))
        self._flush()

    def _flush(self) -> None:
        """Send what is queued if the socket is free, else wake the thread that holds it.
        (Queued before trying: a holder that releases checks the outbox afterwards.)"""
        while self._outbox and self._io.acquire(blocking=False):
            try:
                self._send_queued()
            finally:
                self._io.release()
        if self._outbox:
            try:
                self._wake_w.send(b"!")
            except (BlockingIOError, OSError):
                pass  # already woken (the pipe is full), or closed

    def _send_queued(self) -> None:
        if self.closed:
            raise ServerGone("connection closed")
        while self._outbox:
            self._sock.send_multipart(self._outbox.popleft(), copy=False)

    def call(self, msg: ClientMessage, timeout: float | None = 30.0) -> tuple[ServerMessage, list[bytes]]:
        """Send `msg` with a fresh call id and wait for its reply."""
        call_id = next(self._calls)
        msg.call_id = call_id
        with self._cond:
            self._awaited.add(call_id)
        try:
            self.send(msg)
            return self.wait_for(lambda: self._replies.pop(call_id, None), timeout)
        except TimeoutError as exc:
            raise ServerGone(str(exc)) from None
        finally:
            with self._cond:
                self._awaited.discard(call_id)
                self._replies.pop(call_id, None)

    # -- receiving ---------------------------------------------------------
    def track(self, request_id: str) -> bool:
        """Start keeping progress and results for `request_id`; False if already kept."""
        with self._cond:
            if request_id in self._events:
                return False
            self._events[request_id] = deque()
            return True

    def own(self, request_id: str, server: str) -> None:
        """`server` (a start's identity) accepted or holds `request_id`."""
        with self._cond:
            self._owner[request_id] = server
            self._lost.pop(request_id, None)

    def untrack(self, request_id: str) -> None:
        with self._cond:
            self._events.pop(request_id, None)
            self._owner.pop(request_id, None)
            self._lost.pop(request_id, None)

    def next_event(self, request_id: str, timeout: float | None) -> tuple[ServerMessage, list[bytes]]:
        """The next progress event or result of a tracked request, in order."""
        def pop():
            queue = self._events.get(request_id)
            if queue:
                return queue.popleft()
            if request_id in self._lost:
                raise ServerRestarted(self._lost[request_id])
            return None
        return self.wait_for(pop, timeout)

    def wait_for(self, produce: Callable[[], T | None], timeout: float | None) -> T:
        """Pump the socket until `produce()` (called under the lock) returns a value."""
        began = time.monotonic()
        deadline = None if timeout is None else began + timeout
        while True:
            with self._cond:
                value = produce()
                if value is not None:
                    return value
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"no answer from {self.address} within {timeout:.1f}s")
            self._check_alive(now, began)
            if self._io.acquire(blocking=False):
                try:
                    self._pump(PUMP_S)
                finally:
                    self._io.release()
                self._flush()  # what another thread queued while this one held the socket
            else:
                with self._cond:
                    self._cond.wait(PUMP_S)

    def _check_alive(self, now: float, began: float) -> None:
        silent = now - max(self._last_heard, began)  # silence while idle (no waiter) does not count
        if silent > self.gone_after_s:
            raise ServerGone(f"server at {self.address} silent for {silent:.1f}s")
        if silent > self.ping_after_s and now - self._last_ping > self.ping_after_s:
            self._last_ping = now
            self.send(Ping(call_id=next(self._calls)))

    def _pump(self, timeout: float) -> None:
        self._send_queued()
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        ready = dict(poller.poll(int(timeout * 1000)))
        if self._wake_r.fileno() in ready:
            self._drain_wakes()
            self._send_queued()
        if self._sock not in ready:
            return
        arrived = []
        while self._sock.poll(0, zmq.POLLIN):
            arrived.append(self._sock.recv_multipart())
        self._last_heard = time.monotonic()
        with self._cond:
            for frames in arrived:
                self._file(frames)
            self._cond.notify_all()

    def _drain_wakes(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _file(self, frames: list[bytes]) -> None:
        try:
            msg, payload = decode_frames(frames, SERVER_KINDS)
        except ProtocolError:
            return  # a reply we cannot read is dropped; the waiter times out or pings
        self._note_server(msg.instance)
        if isinstance(msg, (Progress, Result, Accepted)) and msg.instance and msg.request_id in self._events:
            self._owner[msg.request_id] = msg.instance
        if isinstance(msg, (Progress, Result)):
            queue = self._events.get(msg.request_id)
            if queue is not None:
                queue.append((msg, payload))
        elif msg.call_id in self._awaited:
            self._replies[msg.call_id] = (msg, payload)

    def _note_server(self, server: str) -> None:
        """Called under the condition: a new server identity fails what the old one owned."""
        if not server or server == self.server_instance:
            return
        old, self.server_instance = self.server_instance, server
        if old is None:
            return
        for request_id, owner in self._owner.items():
            if owner == old:
                self._lost[request_id] = (f"the server at {self.address} restarted (was {old}, now {server}): "
                                          f"request {request_id} was lost with it; submit it again")

    def close(self) -> None:
        with self._io:
            self.closed = True
            self._sock.close(0)
            self._ctx.term()
            self._wake_r.close()
            self._wake_w.close()
