"""The metrics desk: answers `MetricsQuery` and `GET /metrics` off the engine loop.

The engine loop only ever adds to the metrics (O(1) per event, under
`ServerMetrics.lock`). The desk builds a snapshot — the summary dict (the
engine metrics from the incremental `Tally`, `rejected`, `control_plane`) and
the Prometheus text — from what it reads under that lock, encodes it once, and answers every query
from it: the frontend hands it the query directly, so a client polling
`metrics()` in a loop never wakes the engine loop. A snapshot is rebuilt when a
query finds it older than `max(MIN_AGE_S, REBUILD_FACTOR x its build time)`:
replies are at most that stale, and building takes at most ~1/REBUILD_FACTOR of
a core however fast clients ask. Building happens on the desk's own thread, with
only copies made under the lock.

One client is answered at most every `PACE_S` (20 ms): a client asking faster
(a `metrics()` loop) gets each reply when its pace allows, from the desk's
thread, so it waits instead of spinning and cannot take the server's CPU from
the engine loop. Nobody needs a metric more often than 50 times a second.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import msgspec

from gfdit.protocol import MetricsReply
from gfdit.server.prometheus import ServerMetrics

log = logging.getLogger("gfdit.server.desk")
MIN_AGE_S = 0.05
REBUILD_FACTOR = 50.0
PACE_S = 0.02
PEERS_KEPT = 4096  # last-answer times remembered (then forgotten at once: pacing only needs the recent ones)


@dataclass(frozen=True)
class Snapshot:
    summary: dict
    prometheus: str
    summary_raw: msgspec.Raw
    prometheus_raw: msgspec.Raw
    built: float  # time.monotonic()
    cost_s: float


class MetricsDesk:
    """Snapshots of the metrics, and the thread that answers queries from them."""

    def __init__(self, metrics: ServerMetrics, gpus: int, send: Callable):
        self.metrics, self.gpus, self.send = metrics, gpus, send
        self._snapshot: Snapshot | None = None
        self._build_lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._last: dict[bytes, float] = {}  # peer -> when it was last answered
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._run, name="gfdit-metrics-desk", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._jobs.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def ask(self, call) -> MetricsReply | None:
        """A client's `MetricsQuery` (a frontend `ClientCall`, on the frontend's thread): the reply
        from a fresh snapshot, sent by the frontend at once; else None, and the desk's thread
        answers once it has built a new one."""
        now, peer = time.monotonic(), call.peer
        due = self._last.get(peer, -math.inf) + PACE_S
        snap = self._snapshot
        if due <= now and snap is not None and not self._stale(snap):
            self._answered(peer, now)
            return self._reply(call.msg.call_id, snap)
        self._jobs.put((max(due, now), next(self._seq), peer, call.msg.call_id))
        return None

    def _answered(self, peer: bytes, now: float) -> None:
        if len(self._last) >= PEERS_KEPT:
            self._last.clear()
        self._last[peer] = now

    @staticmethod
    def _reply(call_id: int, snap: Snapshot) -> MetricsReply:
        return MetricsReply(call_id=call_id, summary=snap.summary_raw,  # type: ignore[arg-type]
                            prometheus=snap.prometheus_raw)  # type: ignore[arg-type]

    @staticmethod
    def _stale(snap: Snapshot) -> bool:
        return time.monotonic() - snap.built >= max(MIN_AGE_S, REBUILD_FACTOR * snap.cost_s)

    def _run(self) -> None:
        due: list[tuple] = []  # (when, seq, peer, call_id), earliest first
        while True:
            wait = None if not due else max(0.0, due[0][0] - time.monotonic())
            try:
                job = self._jobs.get(timeout=wait)
            except queue.Empty:
                job = ()
            if job is None:
                return
            if job:
                heapq.heappush(due, job)
            while due and due[0][0] <= time.monotonic():
                _, _, peer, call_id = heapq.heappop(due)
                try:
                    reply = self._reply(call_id, self.snapshot())
                    self._answered(peer, time.monotonic())  # before the send: the client may ask again at once
                    self.send(peer, reply)
                except Exception:  # noqa: BLE001 -- top of the desk thread: log, keep answering
                    log.exception("could not answer a metrics query")

    def snapshot(self) -> Snapshot:
        """The current snapshot, rebuilt first if it is too old (see the module doc)."""
        with self._build_lock:
            snap = self._snapshot
            if snap is None or self._stale(snap):
                snap = self._snapshot = self._build()
            return snap

    def prometheus_text(self) -> str:
        return self.snapshot().prometheus

    def _build(self) -> Snapshot:
        t0 = time.perf_counter()
        m = self.metrics
        with m.lock:  # the loop waits while this is held: only copies and O(labels) work here
            summary = m.tally.metrics(self.gpus)
            summary["overall"]["rejected"] = m.rejected
            costs = m.costs.copy()
        summary["control_plane"] = costs.summary()
        text = m.render()
        summary = _finite(summary)
        encode = msgspec.msgpack.encode
        raw_summary, raw_text = msgspec.Raw(encode(summary)), msgspec.Raw(encode(text))
        return Snapshot(summary, text, raw_summary, raw_text, time.monotonic(), time.perf_counter() - t0)


def _finite(value):
    """JSON/msgpack-friendly: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
