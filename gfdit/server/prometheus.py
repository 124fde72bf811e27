"""Prometheus metrics through `prometheus_client`: one registry per server, the text exposition.

Only the engine loop updates (under `ServerMetrics.lock`, O(1) per event); the
metrics desk (`desk.py`) renders snapshots (`generate_latest`) under the same lock on
its own thread. Every name carries the `gfdit_` prefix; see `ServerMetrics` for the
set. Label values are bounded: a request class the running policy does not
declare is counted as `other`, so no client can grow the series without limit.
The thin wrappers below keep the call sites' shape (`inc(amount, **labels)`) and
declare each metric's label names once.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import prometheus_client
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gfdit.engine.request import REJECTED, Outcome
from gfdit.engine.tally import Tally, class_label
from gfdit.protocol import ERROR_CODES
from gfdit.server.costs import ControlCosts

prometheus_client.disable_created_metrics()  # no *_created series: they would double every counter
TIME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
WIDTH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class _Metric:
    """One prometheus_client metric in a registry, called with its labels as keywords."""

    kind: type = prometheus_client.Counter

    def __init__(self, registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...] = (), **kwargs):
        self.name, self.labelnames = name, labels
        self._metric = self.kind(name, doc, labelnames=labels, registry=registry, **kwargs)

    def _child(self, labels: dict[str, str]):
        return self._metric.labels(**labels) if self.labelnames else self._metric


class Counter(_Metric):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._totals: dict[tuple, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._child(labels).inc(amount)

    def set_total(self, total: float, **labels: str) -> None:
        """Mirror a running total kept elsewhere (it only ever grows there)."""
        key = tuple(sorted(labels.items()))
        grown = total - self._totals.get(key, 0.0)
        if grown > 0:
            self._child(labels).inc(grown)
            self._totals[key] = total


class Gauge(_Metric):
    kind = prometheus_client.Gauge

    def set(self, value: float, **labels: str) -> None:
        self._child(labels).set(value)

    def clear(self) -> None:
        self._metric.clear()


class Histogram(_Metric):
    kind = prometheus_client.Histogram

    def observe(self, value: float, **labels: str) -> None:
        self._child(labels).observe(value)


class ServerMetrics:
    """Every metric the server exports."""

    def __init__(self):
        self.lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        r, cls, stage = self.registry, ("request_class",), ("stage",)

        def c(name, doc, labels=()):
            return Counter(r, name, doc, labels)

        def g(name, doc, labels=()):
            return Gauge(r, name, doc, labels)

        def h(name, doc, buckets=TIME_BUCKETS, labels=()):
            return Histogram(r, name, doc, labels, buckets=buckets)

        self.requests = c("gfdit_requests_total", "Requests by class and final state (completed, failed, "
                          "cancelled, rejected).", ("request_class", "state"))
        self.queue_time = h("gfdit_queue_seconds", "Arrival to the start of a request's first task, by class.",
                            labels=cls)
        self.latency = h("gfdit_request_latency_seconds", "Arrival to completion, by class.", labels=cls)
        self.stage_time = h("gfdit_stage_seconds", "Measured task time by stage (migration included).", labels=stage)
        self.widths = h("gfdit_task_width", "Width of each dispatched task, by stage.", WIDTH_BUCKETS, stage)
        self.tasks = c("gfdit_tasks_total", "Dispatched tasks by stage and width.", ("stage", "width"))
        self.migrations = c("gfdit_migrations_total", "Tasks that moved a request's state to new ranks.")
        self.migration_time = c("gfdit_migration_seconds_total", "Measured seconds spent migrating state.")
        self.slo = c("gfdit_slo_total", "Completed requests by class and outcome (met, missed).",
                     ("outcome", "request_class"))
        self.revision = g("gfdit_policy_revision", "The running policy (value 1; labels name it).",
                          ("policy", "revision"))
        self.reloads = c("gfdit_policy_reloads_total", "Policy reloads by result (ok, refused).", ("result",))
        self.reload_failures = c("gfdit_policy_reload_failures_total", "Policy reloads refused.")
        self.queue_len = g("gfdit_queue_length", "Accepted requests with no task in flight.")
        self.running = g("gfdit_running_requests", "Requests with a task in flight.")
        self.free_ranks = g("gfdit_free_ranks", "Ranks idle right now.")
        self.worker_deaths = c("gfdit_worker_deaths_total", "Worker processes found dead.")
        self.rule_errors = c("gfdit_rule_errors_total", "Policy rules that failed at run time, by rule "
                             "location (the hook's fallback applied; docs/engine.md).", ("rule",))
        self.client_errors = c("gfdit_client_errors_total", "Client messages answered with an error, by "
                               "ErrorReply code (protocol, unauthorized, unknown_request, invalid, "
                               "shutting_down, internal; any other: other).", ("code",))
        self.overhead = h("gfdit_task_overhead_seconds", "Control-plane time of a task: its wall time "
                          "at the server minus the workers' own time.",
                          (1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0))
        self.round_time = h("gfdit_round_seconds", "Wall time of one scheduling round.",
                            (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1))
        self.shadow_rounds = c("gfdit_shadow_rounds_total", "Rounds a shadowed candidate policy decided beside "
                               "the live one, by whether its dispatches differed (same, differ).", ("result",))
        self.shadow_round_time = h("gfdit_shadow_round_seconds", "Wall time of the shadowed candidate's round "
                                   "(added to the engine loop's round).", (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1))
        self.tally = Tally()  # the engine metrics of the summary, by class label
        self.rejected = 0
        self.costs = ControlCosts()
        self.declared: frozenset[str] = frozenset()  # the running policy's classes: the label values

    def label(self, request_class: str) -> str:
        """The label value of a request class (`other` unless the policy declares it)."""
        return class_label(request_class, self.declared)

    def set_policy(self, policy) -> None:
        """A policy runs (at start, or swapped in): its name, revision and classes."""
        with self.lock:
            self.declared = frozenset(policy.classes)
            self.revision.clear()
            self.revision.set(1, policy=policy.name, revision=policy.revision)

    def count_outcome(self, outcome: Outcome) -> None:
        """One request ended (or was rejected): O(1), whatever the history."""
        label = self.label(outcome.request_class)
        with self.lock:
            self.requests.inc(state=outcome.state, request_class=label)
            if outcome.state == REJECTED:
                self.rejected += 1
                return
            self.tally.add(outcome, label)
            if outcome.state == "completed":
                self.latency.observe(outcome.latency or 0.0, request_class=label)
                self.slo.inc(request_class=label, outcome="met" if outcome.met_slo else "missed")

    def count_client_error(self, code: str) -> None:
        """One client message answered with `ErrorReply(code)` (the label is bounded: other)."""
        with self.lock:
            self.client_errors.inc(code=code if code in ERROR_CODES else "other")

    def render(self) -> str:
        """The text exposition (prometheus_client's), consistent with the summary under the lock."""
        with self.lock:
            return generate_latest(self.registry).decode()


class MetricsHTTP:
    """Serves `GET /metrics` on a thread; port 0 picks a free one (see `.port`)."""

    def __init__(self, render: Callable[[], str], host: str = "127.0.0.1", port: int = 0):

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics here")
                    return
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        try:
            self._httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(exc.errno, f"--metrics-port {port}: cannot listen on {host}:{port}: {exc.strerror}") from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gfdit-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which never ran otherwise
            self._httpd.shutdown()
        self._httpd.server_close()
