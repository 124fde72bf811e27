"""The engine loop: the only thread that touches scheduler state.

One iteration reads like the architecture says: take inputs (client calls and
compiled policies from the inbox, executor events handed to the engine with
`feed`, as the simulator does; while tasks run it waits on the pool's socket
and the inbox together) -> run a scheduling round if anything changed (or a
tick is due) -> start the dispatched tasks -> relay the engine's events
(progress messages, results, metrics). Socket, file-watch, reload and
pool-restart threads only ever put items into the inbox.

The engine owns every request's state; the loop keeps none of its own (it
reads the engine, and `Relay` turns the engine's events into messages).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from typing import Callable

from gfdit.engine.engine import Engine
from gfdit.engine.executor import ExecutorGone, RanksLost, StageEnd, TaskEnd, feed
from gfdit.protocol import (
    MAX_LISTED_REQUESTS,
    Accepted,
    Ack,
    Cancel,
    ErrorReply,
    Operate,
    Ping,
    Pong,
    Rejected,
    ReloadPolicy,
    StatusQuery,
    StatusReply,
    StopServer,
    Submit,
    Subscribe,
)
from gfdit.server import report
from gfdit.server.clock import EngineClock
from gfdit.server.config import ServerConfig
from gfdit.server.executor import ProcessExecutor
from gfdit.server.frontend import ClientCall
from gfdit.server.intake import InvalidSubmit, build_request
from gfdit.server.operations import Operations
from gfdit.server.progress import ProgressBook
from gfdit.server.prometheus import ServerMetrics
from gfdit.server.relay import Relay
from gfdit.server.reload import PolicyCompiled, ReloadService, ReplyTo
from gfdit.server.swap import PolicySwap

log = logging.getLogger("gfdit.server.loop")
IDLE_WAIT_S = 0.05
STOP_GRACE_S = 120.0


class Inbox(queue.Queue):
    """The engine loop's inbox: a queue whose `put` also makes `fileno()` readable, so
    the loop can wait on the worker pool's socket and its inbox together."""

    def __init__(self) -> None:
        super().__init__()
        self._r, self._w = socket.socketpair()  # a closed socket raises; it never writes a reused fd
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self.wake()

    def wake(self) -> None:
        try:
            self._w.send(b"\0")
        except OSError:  # full: already readable; closed: the loop has ended
            pass

    def clear_wake(self) -> None:
        try:
            while self._r.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self._w.close()
        self._r.close()


class EngineLoop:
    """Owns the engine; answers client calls; drives the executor."""

    def __init__(self, *, engine: Engine, executor: ProcessExecutor, book: ProgressBook,
                 metrics: ServerMetrics, clock: EngineClock, inbox: queue.Queue,
                 send: Callable, reloader: ReloadService, config: ServerConfig, info: dict):
        self.engine, self.executor, self.book, self.metrics = engine, executor, book, metrics
        self.clock, self.inbox, self.send, self.reloader = clock, inbox, send, reloader
        self.config, self.info = config, info
        self.relay = Relay(book, metrics, executor.drop)
        self.swap = PolicySwap(engine, metrics, send)
        self.pool_gone: str | None = None
        self.dirty = True
        self.stop_requested = threading.Event()
        self.stop_now = threading.Event()  # a second Ctrl-C: no grace for running tasks
        self._stop_deadline: float | None = None
        self._ids = 0
        self.ops = Operations(self)  # record, cost model, shadow, promote

    HANDLERS = {
        Submit: "_on_submit", Cancel: "_on_cancel", StatusQuery: "_on_status",
        Subscribe: "_on_subscribe", ReloadPolicy: "_on_reload", Ping: "_on_ping", StopServer: "_on_stop",
        Operate: "_on_operate",
    }  # MetricsQuery never reaches the loop: the frontend hands it to the metrics desk

    # ---- the loop ---------------------------------------------------------
    def run(self) -> None:
        """Iterate until a stop is requested and every accepted request has ended."""
        while not self._finished():
            self._drain_inbox()
            for event in self._wait():
                self._on_executor_event(event)
            self._drain_inbox()
            if self.dirty or self._tick_due():
                self._round()
            self._relay()
            if self.stop_requested.is_set() and self._stop_deadline is None:
                self._begin_stop()
        self._relay()  # what the stop itself ended (cancelled queued requests)
        self.abort("server stopped before its task ended", state="cancelled")  # the grace ran out

    def abort(self, reason: str, state: str = "failed") -> None:
        """The loop cannot go on: every live request ends `state` with `reason`, so no
        client waits on a dead server."""
        for rid in self.book.live_ids():
            self.book.finish(rid, state, reason=reason)

    def _finished(self) -> bool:
        if self._stop_deadline is None:
            return False
        return self.engine.idle or self.stop_now.is_set() or time.monotonic() > self._stop_deadline

    def _wait(self) -> list:
        now = self.clock.now()
        if not self.inbox.empty():
            return self.executor.poll(now)
        if self.executor.running or self.executor.recovering:  # wake on a worker's message or an inbox item
            events = self.executor.poll(now, self._idle_wait(), wake=self.inbox)
            self.inbox.clear_wake()  # before the drain that follows: a later put wakes the next wait
            return events
        events = self.executor.poll(now)
        if not events:
            try:
                self._take(self.inbox.get(timeout=self._idle_wait()))
            except queue.Empty:
                pass
        return events

    def _idle_wait(self) -> float:
        tick = self.engine.next_tick(self.clock.now())
        if tick is None:
            return IDLE_WAIT_S
        return max(0.0, min(IDLE_WAIT_S, self.clock.wall(tick - self.clock.now())))

    def _tick_due(self) -> bool:
        tick = self.engine.next_tick(self.clock.now())
        return tick is not None and self.clock.now() >= tick and bool(self.engine.waiting)

    def _drain_inbox(self) -> None:
        for _ in range(10_000):
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            self._take(item)

    def _take(self, item) -> None:
        if isinstance(item, ClientCall):
            try:
                getattr(self, self.HANDLERS[type(item.msg)])(item.peer, item.msg)
            except Exception as exc:  # noqa: BLE001 -- one client's call must not stop the server
                log.exception("failed to answer a client's %s", type(item.msg).__name__)
                self.send(item.peer, ErrorReply(call_id=item.msg.call_id, code="internal",
                                                message=f"server error: {type(exc).__name__}: {exc}"[:1000]))
        elif isinstance(item, PolicyCompiled):
            if item.purpose == "shadow":
                self.ops.shadow_compiled(item)
            elif self.swap.on_compiled(item):
                self.ops.live_text = item.text  # what the shadow compares against
                self.dirty = True

    def _round(self) -> None:
        self.dirty = False
        now = self.clock.now()
        waiting = len(self.engine.waiting) if self.engine.cluster.free else 0  # 0: nothing to decide
        shadow = self.ops.shadow
        if shadow is not None:  # the candidate's round first, on the same state (never applied)
            shadow_s = shadow.before(self.engine, now)
        t0 = time.perf_counter()
        dispatches = self.engine.schedule(now)
        seconds = time.perf_counter() - t0
        with self.metrics.lock:
            if shadow is not None:
                self.metrics.shadow_round_time.observe(shadow_s)
                if (differ := shadow.after(dispatches)) is not None:
                    self.metrics.shadow_rounds.inc(result="differ" if differ else "same")
            if waiting:
                self.metrics.costs.round(waiting, seconds)
            self.metrics.round_time.observe(seconds)
        for dispatch in dispatches:
            self.executor.start(dispatch, now)
        report.update_gauges(self.metrics, self.engine)

    def _relay(self) -> None:
        """The engine's events since the last call, as progress messages, results and metrics."""
        events = self.engine.take_events()
        if events:
            now = self.clock.now()
            for event in events:
                self.relay.take(event, now)

    # ---- executor events ----------------------------------------------------
    def _on_executor_event(self, e) -> None:
        now = self.clock.now()
        if isinstance(e, TaskEnd):
            self._measure(e)
        elif isinstance(e, StageEnd):
            tracked = self.engine.active.get(e.request_id)
            if tracked is not None:
                self.relay.stage_ended(e, tracked.steps, now)
            return
        elif isinstance(e, ExecutorGone):
            self.pool_gone = e.reason
        elif isinstance(e, RanksLost):
            with self.metrics.lock:
                self.metrics.worker_deaths.inc()
        feed(self.engine, e, now)
        self.dirty = True

    def _measure(self, e: TaskEnd) -> None:
        tracked = self.engine.tasks.get(e.task_id)
        if tracked is None or tracked.dispatch is None:
            return  # a task the engine no longer tracks (aborted when its ranks were lost)
        stages = tracked.dispatch.stages
        with self.metrics.lock:
            self.metrics.stage_time.observe(e.wall_s, stage="+".join(stages))
            self.metrics.migration_time.inc(e.migrate_s)
            if e.ok:
                self.metrics.overhead.observe(max(0.0, e.wall_s - e.worker_s))
                self.metrics.costs.task(e.wall_s - e.worker_s, len(stages))

    # ---- client calls ---------------------------------------------------------
    def _on_submit(self, peer: bytes, msg: Submit) -> None:
        if self.stop_requested.is_set():
            return self.send(peer, ErrorReply(call_id=msg.call_id, code="shutting_down", message="server is stopping"))
        if self.pool_gone or len(self.engine.active) >= self.config.max_queue:
            reason = f"server cannot run requests: {self.pool_gone}" if self.pool_gone else "server queue full"
            return self.send(peer, Rejected(call_id=msg.call_id, reason=reason,
                                            code="unavailable" if self.pool_gone else "busy"))
        now = self.clock.now()
        try:
            request, _ = build_request(msg, now, self.config, "" if msg.request_id else self._fresh_id(),
                                       limits=self.executor.limits)
        except InvalidSubmit as exc:
            return self.send(peer, Rejected(call_id=msg.call_id, reason=f"invalid request: {exc}", code="invalid"))
        if self.book.known(request.id):
            return self.send(peer, Rejected(call_id=msg.call_id, reason=f"duplicate request id {request.id!r}",
                                            code="duplicate"))
        self.ops.arrived(request)
        reason = self.engine.submit(request, now)
        if reason is not None:
            return self.send(peer, Rejected(call_id=msg.call_id, reason=reason))
        self.book.open(request.id, peer if msg.subscribe else None)
        self.send(peer, Accepted(call_id=msg.call_id, request_id=request.id, revision=self.swap.revision,
                                 params=request.payload))
        tracked = self.engine.active[request.id]
        self.book.emit(request.id, "queued", now, stage="encode", steps=request.steps,
                       message=f"deadline in {tracked.deadline - now:.3f}s" if tracked.deadline != float("inf") else "")
        self.dirty = True

    def _fresh_id(self) -> str:
        """A server-chosen request id that no client has taken."""
        while True:
            self._ids += 1
            if not self.book.known(rid := f"r{self._ids:06d}"):
                return rid

    def _on_cancel(self, peer: bytes, msg: Cancel) -> None:
        what = self.engine.cancel(msg.request_id, self.clock.now())
        if what == "unknown":
            latest = self.book.latest(msg.request_id)
            if latest is None:
                return self.send(peer, ErrorReply(call_id=msg.call_id, code="unknown_request",
                                                  message=f"no request {msg.request_id!r}"))
            what = f"already {latest.get('state')}"
        self.dirty = True
        self.send(peer, Ack(call_id=msg.call_id, state=what, message=f"cancel {msg.request_id}: {what}"))

    def _on_status(self, peer: bytes, msg: StatusQuery) -> None:
        server = report.server_status(self)
        request = report.request_status(self, msg.request_id) if msg.request_id else None
        listed = report.live_requests(self, MAX_LISTED_REQUESTS) if msg.requests else []
        self.send(peer, StatusReply(call_id=msg.call_id, server=server, request=request, requests=listed))

    def _on_subscribe(self, peer: bytes, msg: Subscribe) -> None:
        what = self.book.subscribe(msg.request_id, peer)
        if what == "unknown":
            return self.send(peer, ErrorReply(call_id=msg.call_id, code="unknown_request",
                                              message=f"no request {msg.request_id!r}"))
        self.send(peer, Ack(call_id=msg.call_id, state=what))

    def _on_reload(self, peer: bytes, msg: ReloadPolicy) -> None:
        text, source = msg.text, msg.path or "<client>"
        if text is None:
            if not msg.path:
                return self.swap.reply(ReplyTo(peer, msg.call_id), False, "give the policy text or a path", [])
            if not msg.path.endswith(".gfp"):  # diagnostics quote the source: no reading other files to a client
                return self.swap.reply(ReplyTo(peer, msg.call_id), False,
                                       f"the server reads only .gfp policy files, not {msg.path[:200]!r}", [])
        # text None: the reload thread reads the path (policy_file: regular files only, capped, timed)
        self.reloader.propose(text, source, msg.if_revision, ReplyTo(peer, msg.call_id))

    def _on_operate(self, peer: bytes, msg: Operate) -> None:
        self.ops.take(peer, msg)

    def _on_ping(self, peer: bytes, msg: Ping) -> None:
        self.send(peer, Pong(call_id=msg.call_id, time=self.clock.now()))

    def _on_stop(self, peer: bytes, msg: StopServer) -> None:
        log.info("stop requested by a client: %s", msg.reason)
        self.send(peer, Ack(call_id=msg.call_id, state="stopping"))
        self.stop_requested.set()

    def _begin_stop(self) -> None:
        self._stop_deadline = time.monotonic() + STOP_GRACE_S
        now = self.clock.now()
        for rid in list(self.engine.active):
            self.engine.cancel(rid, now, reason="server stopped")
