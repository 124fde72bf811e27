"""Prometheus metrics: a tiny registry, the text exposition format, an HTTP thread.

Only the engine loop updates (under `ServerMetrics.lock`, O(1) per event); the
metrics desk (`desk.py`) renders snapshots under the same lock on its own
thread. Every name carries the `gfdit_` prefix; see `ServerMetrics` for the
set. Label values are bounded: a request class the running policy does not
declare is counted as `other`, so no client can grow the series without limit.
"""

from __future__ import annotations

import bisect
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from gfdit.engine.request import REJECTED, Outcome
from gfdit.engine.tally import Tally, class_label
from gfdit.server.costs import ControlCosts

Labels = tuple[tuple[str, str], ...]
TIME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
WIDTH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    kind = "counter"

    def __init__(self, name: str, doc: str):
        self.name, self.doc = name, doc
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def set_total(self, total: float, **labels: str) -> None:
        """Mirror a running total kept elsewhere (it only ever grows there)."""
        self.values[tuple(sorted(labels.items()))] = total

    def render(self) -> list[str]:
        return [f"{self.name}{_labels(k)} {_num(v)}" for k, v in sorted(self.values.items())]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value

    def clear(self) -> None:
        self.values.clear()


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...] = TIME_BUCKETS):
        self.name, self.doc, self.buckets = name, doc, buckets
        self.series: dict[Labels, list] = {}  # labels -> [counts per bucket, sum, count]

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self.series.setdefault(key, [[0] * len(self.buckets), 0.0, 0])
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            series[0][index] += 1
        series[1] += value
        series[2] += 1

    def render(self) -> list[str]:
        lines = []
        for key, (counts, total, count) in sorted(self.series.items()):
            cumulative = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                cumulative += n
                bucket = _labels(key, 'le="' + _num(bound) + '"')
                lines.append(f"{self.name}_bucket{bucket} {cumulative}")
            lines.append(f"{self.name}_bucket{_labels(key, 'le=' + chr(34) + '+Inf' + chr(34))} {count}")
            lines.append(f"{self.name}_sum{_labels(key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(key)} {count}")
        return lines


class ServerMetrics:
    """Every metric the server exports."""

    def __init__(self):
        self.lock = threading.Lock()
        c, g, h = Counter, Gauge, Histogram
        self.requests = c("gfdit_requests_total", "Requests by class and final state (completed, failed, cancelled, rejected).")
        self.queue_time = h("gfdit_queue_seconds", "Arrival to the start of a request's first task, by class.")
        self.latency = h("gfdit_request_latency_seconds", "Arrival to completion, by class.")
        self.stage_time = h("gfdit_stage_seconds", "Measured task time by stage (migration included).")
        self.widths = h("gfdit_task_width", "Width of each dispatched task, by stage.", WIDTH_BUCKETS)
        self.tasks = c("gfdit_tasks_total", "Dispatched tasks by stage and width.")
        self.migrations = c("gfdit_migrations_total", "Tasks that moved a request's state to new ranks.")
        self.migration_time = c("gfdit_migration_seconds_total", "Measured seconds spent migrating state.")
        self.slo = c("gfdit_slo_total", "Completed requests by class and outcome (met, missed).")
        self.revision = g("gfdit_policy_revision", "The running policy (value 1; labels name it).")
        self.reloads = c("gfdit_policy_reloads_total", "Policy reloads by result (ok, refused).")
        self.reload_failures = c("gfdit_policy_reload_failures_total", "Policy reloads refused.")
        self.queue_len = g("gfdit_queue_length", "Accepted requests with no task in flight.")
        self.running = g("gfdit_running_requests", "Requests with a task in flight.")
        self.free_ranks = g("gfdit_free_ranks", "Ranks idle right now.")
        self.worker_deaths = c("gfdit_worker_deaths_total", "Worker processes found dead.")
        self.rule_errors = c("gfdit_rule_errors_total", "Policy rules that failed at run time, by rule "
                             "location (the hook's fallback applied; docs/engine.md).")
        self.client_errors = c("gfdit_client_errors_total", "Client messages answered with an error, by code.")
        self.overhead = h("gfdit_task_overhead_seconds", "Control-plane time of a task: its wall time "
                          "at the server minus the workers' own time.",
                          (1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0))
        self.round_time = h("gfdit_round_seconds", "Wall time of one scheduling round.",
                            (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1))
        self.all = [v for v in vars(self).values() if isinstance(v, (Counter, Histogram))]
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

    def render(self) -> str:
        with self.lock:
            lines = []
            for metric in self.all:
                lines.append(f"# HELP {metric.name} {metric.doc}")
                lines.append(f"# TYPE {metric.name} {metric.kind}")
                lines.extend(metric.render())
            return "\n".join(lines) + "\n"


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
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
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
