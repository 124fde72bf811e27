"""Unauthenticated traffic to the worker port: a flood of junk cannot keep `poll` from
returning, and a frame above `transport.MAX_MESSAGE_BYTES` is dropped by ZeroMQ before
it is read into memory. Real emulated workers, a real socket as the stranger."""

from __future__ import annotations

import time

import zmq

from gfdit.comm.launch import free_port
from gfdit.workers import transport
from gfdit.workers.pool import WorkerPool

from test_workers_emulated import cost_model


def _stranger(address: str) -> tuple[zmq.Context, zmq.Socket]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    return ctx, sock


def _refused(pool: WorkerPool, more_than: int, seconds: float = 20.0) -> int:
    deadline = time.monotonic() + seconds
    while pool.status()["refused_messages"] <= more_than and time.monotonic() < deadline:
        pool.poll(0.1)
    return pool.status()["refused_messages"]


def test_a_junk_flood_is_handled_in_batches_so_poll_returns():
    address = f"tcp://127.0.0.1:{free_port()}"
    with WorkerPool(1, "tiny", emulate=cost_model(), address=address, start_timeout_s=60) as pool:
        ctx, sock = _stranger(address)
        try:
            sock.send_multipart([b"junk"])
            before = _refused(pool, 0)  # connected and heard
            for _ in range(5 * transport.RECEIVE_BATCH):
                sock.send_multipart([b"junk"])
            time.sleep(2.0)  # all of it waits in the pool's socket
            pool.poll(0)  # two receives (waited, then what is waiting), each at most RECEIVE_BATCH
            assert 0 < pool.status()["refused_messages"] - before <= 2 * transport.RECEIVE_BATCH
            assert _refused(pool, before + 5 * transport.RECEIVE_BATCH - 1) == before + 5 * transport.RECEIVE_BATCH
        finally:
            sock.close(linger=0)
            ctx.term()


def test_a_frame_above_the_size_limit_is_dropped_before_it_is_read(monkeypatch):
    monkeypatch.setattr(transport, "MAX_MESSAGE_BYTES", 1 << 20)
    address = f"tcp://127.0.0.1:{free_port()}"
    with WorkerPool(1, "tiny", emulate=cost_model(), address=address, start_timeout_s=60) as pool:
        ctx, sock = _stranger(address)
        try:
            sock.send_multipart([b"x" * (2 << 20)])  # over the limit: zmq drops the connection
            time.sleep(1.0)
            pool.poll(0.5)
            assert pool.status()["refused_messages"] == 0
            ctx2, small = _stranger(address)
            try:
                small.send_multipart([b"x" * (512 << 10)])  # under it: read and refused as junk
                assert _refused(pool, 0) == 1
            finally:
                small.close(linger=0)
                ctx2.term()
        finally:
            sock.close(linger=0)
            ctx.term()
