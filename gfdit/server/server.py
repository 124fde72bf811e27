"""`Server`: builds the parts once, at start, and runs the engine loop.

    server = Server(ServerConfig(model="tiny", num_gpus=4, policy="slo_grow"))
    server.start()          # pool up, sockets bound, threads running
    server.serve_forever()  # the engine loop, on this thread, until stopped
    # or: server.start_background(); ...; server.stop()

Threads: the frontend (ROUTER socket), the policy watcher, the reload compiler,
the Prometheus HTTP server, and a pool-restart thread when a worker dies. Only
the engine loop mutates scheduler state; the others feed its inbox.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import partial
from pathlib import Path

import zmq

from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.decisions import DecisionLog
from gfdit.engine.engine import Engine
from gfdit.engine.executor import Span
from gfdit.dsl.policy import CompiledPolicy
from gfdit.dsl.probe import check_runs
from gfdit.policies import fit_policy, resolve_policy
from gfdit.server.access import check_bind
from gfdit.server.calibrate import calibrate, calibration_widths, cpu_contention
from gfdit.server.clock import EngineClock
from gfdit.server.config import ServerConfig
from gfdit.server.desk import MetricsDesk
from gfdit.server.executor import ProcessExecutor
from gfdit.server.frontend import Frontend
from gfdit.server.listen import check_free
from gfdit.server.loop import EngineLoop, Inbox
from gfdit.protocol import MetricsQuery
from gfdit.server.progress import ProgressBook
from gfdit.server.prometheus import MetricsHTTP, ServerMetrics
from gfdit.server.reload import ReloadService, compile_policy
from gfdit.server.watcher import PolicyWatcher

log = logging.getLogger("gfdit.server")
TINY_DEFAULTS = {"default_height": 64, "default_width": 64, "default_steps": 8}
MODEL_DEFAULTS = {"default_height": 1024, "default_width": 1024, "default_steps": 28}
KEEP_ENDED = 10_000  # ended requests remembered (results, duplicate ids): the server's memory is bounded


def identity() -> dict:
    """Who runs this server: process, user, start time (`gfdit status` names the server that answered)."""
    try:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # no pwd module (Windows) or a uid without a name
        user = str(getattr(os, "getuid", lambda: "")())
    return {"pid": os.getpid(), "user": user, "started_at": time.time()}


class Server:
    """One gfdit server: workers, engine, sockets. See the module doc."""

    def __init__(self, config: ServerConfig):
        config.check()
        config.check_token()
        check_bind(config.address, config.allow_remote, config.token)
        for host, port in ((config.metrics_host, config.metrics_port), (config.http_host, config.http_port)):
            if port is not None:  # the same rules as the address: loopback, or allowed and a token
                check_bind(f"tcp://{host}:{port}", config.allow_remote, config.token)
        defaults = TINY_DEFAULTS if config.model == "tiny" else MODEL_DEFAULTS
        for name, value in defaults.items():
            if not getattr(config, name):
                setattr(config, name, value)
        self.config = config
        self.address: str | None = None
        self.metrics_port: int | None = None
        self.http_url: str | None = None
        self._parts: list = []  # closed in reverse order
        self._thread: threading.Thread | None = None
        self._serving = False  # serve_forever has begun: it closes everything when the loop ends
        self.loop: EngineLoop | None = None
        self.cost_model: CostModel | None = None

    # ---- life cycle ----------------------------------------------------------
    def start(self) -> "Server":
        """Start workers and threads and bind the sockets; returns when ready to serve."""
        cfg = self.config
        policy = resolve_policy(cfg.policy, cfg.policy_params)
        cost_model = CostModel.load(cfg.cost_model) if cfg.cost_model else None
        emulated = cfg.executor == "emulated"
        check_free(cfg.address, cfg.metrics_host, cfg.metrics_port)  # before any worker starts
        if cfg.http_port:
            from gfdit.http.listener import bind_socket

            bind_socket(cfg.http_host, cfg.http_port).close()
        try:
            from gfdit.workers.pool import WorkerPool

            pool = WorkerPool(cfg.num_gpus, cfg.model, backend=cfg.backend, device=cfg.device,
                              dtype=cfg.worker_dtype(),
                              emulate=cost_model if emulated else None,
                              heartbeat_timeout_s=cfg.heartbeat_timeout_s, address=cfg.worker_address,
                              nodes=_nodes(cfg))
            self._parts.append(pool)
            if cost_model is None:
                widths = calibration_widths(cfg.num_gpus, tuple(policy.widths))
                cost_model = calibrate(pool, widths, *cfg.calibrate_shape, steps=cfg.calibrate_steps,
                                       contention=cpu_contention(cfg.num_gpus, cfg.device))
            self.cost_model = cost_model
            policy, notes = fit_policy(policy, cfg.policy, cfg.policy_params, cost_model, cfg.num_gpus)
            for note in notes:
                log.warning("%s", note)
            if isinstance(policy, CompiledPolicy):  # what a reload is refused for, a start is too
                check_runs(policy, cost_model, cfg.num_gpus)
            self._build(policy, cost_model, pool, emulated)
        except BaseException:
            self.close()
            raise
        return self

    def _build(self, policy, cost_model: CostModel, pool, emulated: bool) -> None:
        cfg = self.config
        clock = EngineClock(cfg.time_scale)
        decisions = DecisionLog(cfg.decision_log, line_buffered=True) if cfg.decision_log else None
        cluster = Cluster(cfg.num_gpus, cfg.nproc_per_node)
        engine = Engine(policy, cost_model, cluster, decisions, keep_ended=KEEP_ENDED)
        executor = ProcessExecutor(pool, cost_model, emulated=emulated, time_scale=cfg.time_scale,
                                   clock=clock.now, spans_nodes=cluster.spans_nodes)
        self._parts[-1] = executor  # the executor closes the pool
        inbox = Inbox()
        self._parts.append(inbox)  # closed after every thread that puts into it
        ctx = zmq.Context()
        self._parts.append(ctx)
        frontend = Frontend(ctx, cfg.address, inbox, token=cfg.token)
        self._parts.append(frontend)
        self.address = frontend.address
        reloader = ReloadService(inbox.put, cfg.policy_params,
                                 partial(compile_policy, runs_on=(cost_model, cfg.num_gpus)))
        self._parts.append(reloader)
        metrics = ServerMetrics()
        frontend.on_error = metrics.count_client_error
        desk = MetricsDesk(metrics, cfg.num_gpus, frontend.send)
        self._parts.append(desk)
        frontend.routes[MetricsQuery] = desk.ask
        if cfg.metrics_port is not None:
            http = MetricsHTTP(desk.prometheus_text, cfg.metrics_host, cfg.metrics_port)
            self.metrics_port = http.port
            self._parts.append(http)
        info = {"executor": cfg.executor, "model": cfg.model, "address": self.address, "instance": frontend.instance,
                "metrics_port": self.metrics_port, "cost_model": cost_model.source or cost_model.model,
                "policy_file": cfg.policy if cfg.policy.endswith(".gfp") else "",
                "started_monotonic": time.monotonic(), **identity()}
        self.loop = EngineLoop(engine=engine, executor=executor, book=ProgressBook(frontend.send, KEEP_ENDED),
                               metrics=metrics, clock=clock, inbox=inbox, send=frontend.send,
                               reloader=reloader, config=cfg, info=info)
        if cfg.watch_policy and cfg.policy.endswith(".gfp") and Path(cfg.policy).is_file():
            watcher = PolicyWatcher(cfg.policy, lambda text: reloader.propose(text, cfg.policy, server_read=True))
            self._parts.append(watcher)
            watcher.start()
        for part in (frontend, reloader, desk) + ((http,) if cfg.metrics_port is not None else ()):
            part.start()
        if cfg.http_port is not None:
            self._start_gateway()
        log.info("serving %s on %s with %d %s workers, policy %s (%s)", cfg.model, self.address,
                 cfg.num_gpus, cfg.executor, policy.name, policy.revision)

    def _start_gateway(self) -> None:
        """The OpenAI-compatible HTTP gateway (gfdit.http), a client of this server in-process."""
        from gfdit.http.listener import HTTPGateway

        cfg = self.config
        gateway = HTTPGateway(self.address, cfg.http_host, cfg.http_port, token=cfg.token,
                              allow_remote=cfg.allow_remote)
        self._parts.append(gateway)  # closed first: no new HTTP requests while the rest closes
        self.http_url = gateway.start().url

    def serve_forever(self) -> None:
        """Run the engine loop on this thread until `stop()` (or a client's stop) completes."""
        self._serving = True
        try:
            self.loop.run()
        except Exception as exc:  # noqa: BLE001 -- top of the engine loop: fatal, every client learns it
            log.exception("the engine loop failed; stopping")
            self.loop.abort(f"server error: {type(exc).__name__}: {exc}")
            raise
        finally:
            self.close()

    def start_background(self) -> "Server":
        """`start()`, then the engine loop on a daemon thread (tests, the demo)."""
        if self.loop is None:
            self.start()
        self._thread = threading.Thread(target=self.serve_forever, name="gfdit-engine-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 150.0) -> None:
        """Cancel what is queued, let running tasks end, close everything."""
        if self.loop is not None:
            self.loop.stop_requested.set()
            self.loop.inbox.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        elif not self._serving:  # started but never served: nothing else will close the workers
            self.close()

    def spans(self) -> list[Span]:
        """The rank timeline so far (engine seconds; the last `KEEP_SPANS` tasks), for
        `gfdit.engine.timeline` (the demo draws it)."""
        return self.loop.relay.spans.spans() if self.loop else []

    @property
    def worker_pids(self) -> dict[int, int]:
        return dict(self.loop.executor.pool.pids) if self.loop else {}

    def stop_now(self) -> None:
        """Ask the loop to stop without waiting for running tasks (they end `cancelled`)
        and to kill the workers instead of letting them finish; returns at once."""
        if self.loop is not None:
            self.loop.executor.close_grace_s = 0.0
            self.loop.stop_requested.set()
            self.loop.stop_now.set()
            self.loop.inbox.wake()

    def close(self) -> None:
        if self.loop is not None:
            self.loop.ops.close()  # the recording's last records, before anything else closes
        while self._parts:
            part = self._parts.pop()
            if isinstance(part, zmq.Context):
                part.term()
            else:
                part.close()

    def __enter__(self) -> "Server":
        return self.start_background()

    def __exit__(self, *exc) -> None:
        self.stop()


def _nodes(cfg: ServerConfig):
    """The pool's `NodeSpec` when the workers span hosts, else None."""
    if cfg.nnodes == 1:
        return None
    from gfdit.workers.nodes import NodeSpec

    return NodeSpec(cfg.nnodes, cfg.nproc_per_node, cfg.cluster_token())
