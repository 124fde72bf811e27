"""The client-facing ROUTER socket, on its own thread.

The frontend decodes every client message (typed, no pickle), answers the ones
it cannot accept itself — malformed, oversized, unknown kind, wrong token — with
an `ErrorReply`, and hands the rest to the engine loop's inbox as `ClientCall`s.
It never touches scheduler state. Replies from the engine loop come back through
`send`, which any thread may call: frames go over an inproc pipe to this thread,
the only one that uses the ROUTER socket.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

import msgspec
import zmq

from gfdit.protocol import (
    CLIENT_KINDS,
    MAX_FRAMES,
    ClientMessage,
    ErrorReply,
    ProtocolError,
    ServerMessage,
    decode_frames,
    encode_frames,
)
from gfdit.server.access import TokenCheck
from gfdit.server.listen import bind_router

log = logging.getLogger("gfdit.server.frontend")
MAX_MESSAGE_BYTES = 64 << 20  # beyond this zmq drops the peer; below, oversize gets an error reply
POLL_MS = 100
PEER_HWM = 1_000_000  # messages queued per client before zmq would drop (events are small)


@dataclass(frozen=True, slots=True)
class ClientCall:
    """A decoded client message and who sent it (the ROUTER identity)."""

    peer: bytes
    msg: ClientMessage
    payload: tuple[bytes, ...] = ()


class Frontend:
    """Owns the ROUTER socket; feeds `inbox`; sends replies queued by other threads."""

    def __init__(self, ctx: zmq.Context, address: str, inbox: "queue.Queue", token: str = ""):
        self._ctx = ctx
        self._inbox = inbox
        self._tokens = TokenCheck(token)
        self._router = bind_router(ctx, address, {  # AccessError ("address in use") if taken
            zmq.MAXMSGSIZE: MAX_MESSAGE_BYTES, zmq.ROUTER_MANDATORY: 0,
            zmq.SNDHWM: PEER_HWM,  # a slow client must not lose its events
            zmq.RCVHWM: PEER_HWM})
        self.address = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        pipe = f"inproc://gfdit-frontend-{id(self)}"
        self._out_pull = ctx.socket(zmq.PULL)
        self._out_pull.setsockopt(zmq.RCVHWM, 0)
        self._out_pull.bind(pipe)
        self._out_push = ctx.socket(zmq.PUSH)
        self._out_push.setsockopt(zmq.SNDHWM, 0)  # never block the engine loop
        self._out_push.setsockopt(zmq.LINGER, 0)
        self._out_push.connect(pipe)
        self._push_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gfdit-frontend", daemon=True)
        self.on_error: Callable[[str], None] = _ignore  # every ErrorReply sent, by code (the server's metric)
        # kinds answered off the engine loop: the handler returns the reply (sent at once) or None
        self.routes: dict[type, Callable[[ClientCall], ServerMessage | None]] = {}
        self.instance = new_instance()  # in every reply: clients notice a restart on the same address

    def start(self) -> None:
        self._thread.start()

    def send(self, peer: bytes, msg: ServerMessage, payload: list[bytes] | tuple[bytes, ...] = ()) -> None:
        """Queue a reply or event for one client (thread-safe)."""
        msg.instance = self.instance
        if isinstance(msg, ErrorReply):
            self.on_error(msg.code)
        frames = [peer, *encode_frames(msg, list(payload))]
        with self._push_lock:
            self._out_push.send_multipart(frames, copy=False)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        elif self._thread.ident is None:  # never started (a later part failed): _run's finally never ran
            self._router.close(0)
            self._out_pull.close(0)
        with self._push_lock:
            self._out_push.close(0)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._out_pull, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(POLL_MS))
                if self._out_pull in ready:
                    self._flush_outgoing()
                if self._router in ready:
                    self._take_incoming()
            self._flush_outgoing()
        finally:
            self._router.close(0)
            self._out_pull.close(0)

    def _flush_outgoing(self) -> None:
        while self._out_pull.poll(0, zmq.POLLIN):
            frames = self._out_pull.recv_multipart(copy=False)
            try:
                self._router.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                log.warning("client %r not reachable; dropped a %s", frames[0].bytes[:16], frames[1].bytes[:32])

    def _take_incoming(self) -> None:
        for _ in range(1000):  # bounded, so replies are flushed between bursts
            if not self._router.poll(0, zmq.POLLIN):
                return
            frames = self._router.recv_multipart()
            try:
                self._accept(frames[0], frames[1:])
            except Exception as exc:  # noqa: BLE001 -- top of the frontend thread: answer, log, go on
                log.exception("frontend failed on a client message")
                self._refuse(frames[0], 0, "protocol", f"message not accepted: {type(exc).__name__}")

    def _accept(self, peer: bytes, frames: list[bytes]) -> None:
        if len(frames) > MAX_FRAMES:
            return self._refuse(peer, 0, "protocol", f"too many frames: {len(frames)} > {MAX_FRAMES}")
        try:
            msg, payload = decode_frames(frames, CLIENT_KINDS)
        except ProtocolError as exc:
            return self._refuse(peer, _call_id_of(frames), "protocol", str(exc))
        if not self._tokens.allows(msg.token):
            return self._refuse(peer, msg.call_id, "unauthorized", "missing or wrong token")
        route = self.routes.get(type(msg))
        if route is None:
            return self._inbox.put(ClientCall(peer, msg, tuple(payload)))  # the engine loop's Inbox wakes it
        reply = route(ClientCall(peer, msg, tuple(payload)))
        if reply is not None:
            self._answer(peer, reply)

    def _answer(self, peer: bytes, msg: ServerMessage) -> None:
        msg.instance = self.instance
        try:
            self._router.send_multipart([peer, *encode_frames(msg)], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("client %r not reachable; dropped a %s", peer[:16], type(msg).__name__)

    def _refuse(self, peer: bytes, call_id: int, code: str, message: str) -> None:
        self.on_error(code)
        log.info("refused a client message (%s): %s", code, message[:200])
        reply = ErrorReply(call_id=call_id, code=code, message=message, instance=self.instance)
        frames = [peer, *encode_frames(reply)]
        try:
            self._router.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass


def _ignore(code: str) -> None:
    """A frontend without metrics counts nothing."""


def new_instance() -> str:
    """One server start's identity: a random id, the pid and the start time (seconds)."""
    return f"{secrets.token_hex(6)}-{os.getpid()}-{int(time.time())}"


class _CallId(msgspec.Struct):
    """Only the call id of a client message (every other field is skipped unread)."""

    call_id: int = 0


_CALL_ID = msgspec.msgpack.Decoder(_CallId)


def _call_id_of(frames: list[bytes]) -> int:
    """Best effort: the call id of an undecodable message, so its sender can match the error.
    An oversized body is read too (the socket caps a message at MAX_MESSAGE_BYTES): its
    sender must learn the reason at once, not wait out its time-out."""
    if len(frames) < 2:
        return 0
    try:
        call_id = _CALL_ID.decode(frames[1]).call_id
    except (msgspec.MsgspecError, ValueError):
        return 0
    return call_id if 0 <= call_id < 1 << 63 else 0
