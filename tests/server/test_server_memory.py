"""A server's memory and metrics do not grow with its history, and metrics never wait on the loop.

Real emulated servers (worker processes, ZeroMQ sockets); the figures at scale
are `bench/soak.py`'s.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from gfdit.client import Client
from gfdit.protocol import Accepted, GenParams, Submit

pytestmark = pytest.mark.slow


def _submit_many(c: Client, n: int, request_class) -> list[str]:
    params = GenParams(prompt="p", height=64, width=64, steps=1, seed=0)
    ids = []
    for i in range(n):
        reply = c._call(Submit(params=params, request_class=request_class(i), subscribe=False), expect=(Accepted,))
        ids.append(reply.request_id)
    return ids


def _wait_ended(c: Client, n: int, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = c.status()
        if sum(status["outcomes"].values()) >= n and not status["active"]:
            return status
        time.sleep(0.2)
    raise TimeoutError(f"{n} requests did not end: {c.status()['outcomes']}")


def test_1200_class_names_keep_metrics_small_and_memory_bounded(server_factory, monkeypatch):
    from gfdit.server import server as server_module

    monkeypatch.setattr(server_module, "KEEP_ENDED", 50)
    server = server_factory(gpus=4, time_scale=0.001)
    with Client(server.address, timeout=30) as c:
        _submit_many(c, 1200, lambda i: "S" if i % 100 == 0 else f"tenant-{i}")
        status = _wait_ended(c, 1200)
        metrics = c.metrics()
    assert status["outcomes"] == {"completed": 1200}  # counted, not re-derived from a window
    overall = metrics["overall"]
    assert overall["requests"] == overall["completed"] == 1200 and overall["p50_latency_s"] > 0
    assert set(metrics["classes"]) == {"S", "other"}  # undeclared names share one label
    assert metrics["classes"]["S"]["completed"] == 12 and metrics["classes"]["other"]["completed"] == 1188
    text = metrics["prometheus"]
    assert len(text) < 64_000 and "tenant-" not in text
    counted = sum(float(v) for v in re.findall(r'^gfdit_requests_total\{[^}]*\} (\S+)$', text, re.M))
    assert counted == 1200  # the Prometheus counters equal a recount
    engine, book = server.loop.engine, server.loop.book
    assert len(engine.outcomes) <= 50 and len(book._finished) <= 50 and not engine.active


def test_metrics_are_answered_while_the_engine_loop_is_busy(server_factory):
    server = server_factory(gpus=1)
    engine, real_schedule, busy = server.loop.engine, server.loop.engine.schedule, threading.Event()

    def slow_schedule(now):  # a round with work that takes 3 s: the loop answers nothing meanwhile
        if engine.waiting and not busy.is_set():
            busy.set()
            time.sleep(3.0)
        return real_schedule(now)

    engine.schedule = slow_schedule
    with Client(server.address, timeout=30) as c:
        c.metrics()  # a snapshot exists
        c.submit("p", height=64, width=64, steps=1)
        assert busy.wait(10)
        t0 = time.monotonic()
        metrics = c.metrics()
        answered_s = time.monotonic() - t0
        t0 = time.monotonic()
        c.ping()  # through the loop: waits for the slow round
        ping_s = time.monotonic() - t0
    assert "overall" in metrics and answered_s < 1.0 and ping_s > answered_s


def test_a_client_calling_metrics_in_a_loop_is_paced(server_factory):
    from gfdit.server.desk import PACE_S

    server = server_factory(gpus=1)
    with Client(server.address, timeout=30) as c:
        c.metrics()
        t0 = time.monotonic()
        for _ in range(40):
            c.metrics()
        elapsed = time.monotonic() - t0
    assert elapsed >= 39 * PACE_S  # a lower bound: load can only make it slower
