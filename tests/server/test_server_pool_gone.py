"""Workers that cannot be restarted: the engine fails every live request with the reason
(`ExecutorGone` -> `Engine.fail`), and later submits are refused. Real processes and sockets."""

from __future__ import annotations

import os
import signal

import pytest

from gfdit.client import Client, RequestFailed, RequestRejected

pytestmark = pytest.mark.slow


def test_a_pool_that_cannot_restart_fails_every_live_request_with_the_reason(server_factory):
    server = server_factory(gpus=2, time_scale=1.0)
    pool = server.loop.executor.pool
    close = pool.close

    def no_restart():  # what a restart does, up to a start that fails
        close()
        raise RuntimeError("no devices left")

    pool.restart = no_restart
    with Client(server.address, timeout=30) as c:
        running = c.submit("long", height=1024, width=1024, steps=40)
        queued = [c.submit("waits", height=1024, width=1024, steps=40) for _ in range(3)]
        for event in running.progress(timeout=20):
            if event.state == "running":
                break
        os.kill(next(iter(server.worker_pids.values())), signal.SIGKILL)
        for handle in (running, *queued):
            with pytest.raises(RequestFailed) as err:
                handle.result(timeout=60)
            assert "no devices left" in err.value.reason
        with pytest.raises(RequestRejected, match="cannot run requests"):
            c.submit("later", height=64, width=64, steps=1)
        assert c.status()["outcomes"] == {"failed": 4}
