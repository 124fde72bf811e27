"""A local process with no secret that speaks the worker protocol to a pool's control socket.

    python worker_plane_attacker.py ADDRESS RANKS SECONDS

For SECONDS it sends, as every rank in 0..RANKS-1 and from identities a worker
might use ("w0", "hb0", random): hellos with a wrong proof, WorkerReady,
heartbeats, TaskDone failures and fake 8x8 "results" for task ids 1..64, and a
fatal WorkerError. Prints how many messages it sent. Every one must be dropped.
"""

import sys
import time

import zmq

from gfdit.protocol import Heartbeat, TaskDone, WorkerError, WorkerHello, WorkerReady
from gfdit.workers import transport


def messages(rank: int):
    image = bytes(8 * 8 * 3)
    yield WorkerHello(rank=rank, channel="main", proof="0" * 64), ()
    yield WorkerReady(rank=rank, pid=1, device="cpu"), ()
    yield Heartbeat(rank=rank, time=time.time()), ()
    for task_id in range(1, 65):
        yield TaskDone(task_id=task_id, request_id="x", rank=rank, ok=False, error="attacker"), ()
        yield TaskDone(task_id=task_id, request_id="x", rank=rank, ok=True,
                       outputs=[{"mime": transport.RAW_RGB8, "shape": "8,8,3"}]), (image,)
    yield WorkerError(rank=rank, message="attacker says: fatal", fatal=True), ()


def main(address: str, ranks: int, seconds: float) -> int:
    ctx = zmq.Context()
    sockets = []
    for name in [f"w{r}" for r in range(ranks)] + [f"hb{r}" for r in range(ranks)] + [None]:
        sock = ctx.socket(zmq.DEALER)
        if name:
            sock.setsockopt(zmq.IDENTITY, name.encode())
        sock.connect(address)
        sockets.append(sock)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for sock in sockets:
            for rank in range(ranks):
                for msg, payload in messages(rank):
                    try:
                        sock.send_multipart(transport.encode(msg, payload), zmq.NOBLOCK)
                        sent += 1
                    except zmq.Again:  # the pool is not reading fast enough: go on
                        break
        time.sleep(0.05)
    for sock in sockets:
        sock.close(linger=30_000)  # deliver what was queued: every message counted as sent arrives
    print(sent, flush=True)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
