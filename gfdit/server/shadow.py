"""A candidate policy beside the live one (`gfdit policy shadow FILE`): decides, never applies.

Every round the live policy decides on, the engine loop first asks the
candidate for its round on the same state (`Engine.decide`: `run_round`
changes no request, and nothing applies the result), then the live round runs
as always. The shadow counts the rounds both decided and those whose dispatch
sets — (request, width) pairs — differ, and times its own rounds (the cost it
adds to the loop; only while a candidate is set).

It also keeps the arrivals it saw (the last `KEEP_ARRIVALS`) and, on its own
thread, every `PREDICT_EVERY_S` when new ones came, simulates them with its own
compiled copy of the candidate on the server's cost model (spaced so that they
take at most `PREDICT_SHARE` of the time: they share the interpreter lock with
the engine loop): the candidate's
predicted metrics on the same arrivals, and the live policy's (`predicted["live"]`,
when its source is known: a `.gfp` or shipped policy, not a built-in `py:NAME`). `gfdit policy promote` swaps it in
through the server's one hot-reload path (`PolicySwap`, compare-and-swap on
the running revision).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from gfdit.engine.request import Request
from gfdit.engine.simulator import simulate
from gfdit.server.recorder import shifted_record

log = logging.getLogger("gfdit.server.shadow")
KEEP_ARRIVALS = 2000
PREDICT_EVERY_S = 2.0
PREDICT_SHARE = 0.1  # predictions share the interpreter with the engine loop: at most 10% of the time
PREDICTED = ("requests", "completed", "failed", "rejected", "slo_attainment", "mean_latency_s", "p50_latency_s",
             "p99_latency_s")


class Shadow:
    """One candidate policy (compiled `policy`, from `text`) on a server of `gpus` ranks."""

    def __init__(self, policy, text: str, source: str, params: dict[str, str], cost_model, gpus: int,
                 live_text: str | None = None):
        self.policy, self.revision, self.source, self.text = policy, policy.revision, source, text
        self._live_text, self._params, self._cost_model, self._gpus = live_text, dict(params), cost_model, gpus
        self.rounds = 0  # rounds where the live policy or the candidate decided something
        self.differ = 0  # of those, rounds whose dispatch sets differ
        self.seconds = 0.0  # in the candidate's rounds
        self.slowest = 0.0
        self._pending: frozenset | None = None
        self._arrivals: deque[Request] = deque(maxlen=KEEP_ARRIVALS)
        self._seen = 0
        self.predicted: dict | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gfdit-shadow", daemon=True)
        self._thread.start()

    # ---- on the engine loop -------------------------------------------------------
    def before(self, engine, now: float) -> float:
        """The candidate's round on the state the live round is about to see; returns its seconds."""
        t0 = time.perf_counter()
        decided = engine.decide(self.policy, now, explain=False)
        self._pending = frozenset() if decided is None else frozenset(
            (grant.req.id, grant.width) for grant in decided[0].grants)
        took = time.perf_counter() - t0
        self.seconds += took
        self.slowest = max(self.slowest, took)
        return took

    def after(self, dispatches: list) -> bool | None:
        """Compare with what the live round dispatched: whether they differ (None: neither decided)."""
        live = frozenset((d.request_id, len(d.group)) for d in dispatches)
        mine, self._pending = self._pending, None
        if mine is None or (not mine and not live):
            return None
        self.rounds += 1
        self.differ += mine != live
        return mine != live

    def arrived(self, request: Request) -> None:
        self._arrivals.append(request)
        self._seen += 1

    def status(self) -> dict:
        return {"policy": self.policy.name, "revision": self.revision, "source": self.source,
                "rounds": self.rounds, "differ": self.differ,
                "differ_share": self.differ / self.rounds if self.rounds else None,
                "round_mean_s": self.seconds / self.rounds if self.rounds else None,
                "round_max_s": self.slowest, "arrivals": self._seen, "predicted": self.predicted}

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    # ---- the prediction thread --------------------------------------------------------
    def _run(self) -> None:
        policy, error = self._compiled(self.text)
        if policy is None:
            self.predicted = {"error": error}
            return
        live = self._compiled(self._live_text)[0] if self._live_text else None  # None: a built-in, not compared
        done, every = 0, PREDICT_EVERY_S
        while not self._stop.is_set():
            self._wake.wait(every)
            if self._stop.is_set() or self._seen == done:
                continue
            done, arrivals = self._seen, list(self._arrivals)
            t0 = time.perf_counter()
            try:
                requests = _from_start(arrivals)  # once, for both policies
                predicted = self.predict(policy, requests) | {"arrivals": len(arrivals)}
                if live is not None:
                    predicted["live"] = self.predict(live, requests)
                took = time.perf_counter() - t0
                every = max(PREDICT_EVERY_S, took / PREDICT_SHARE)  # at most this share of a core
                self.predicted = predicted | {"took_s": round(took, 4)}
            except Exception as exc:  # noqa: BLE001 -- a prediction that fails is reported, not fatal
                log.exception("shadow prediction failed")
                self.predicted = {"error": f"{type(exc).__name__}: {exc}"}

    def _compiled(self, text: str) -> tuple[object | None, str]:
        """The thread's own copy of a policy (compiled policies keep per-round state), made as the
        reload thread makes one (fitted to the cluster, probed): (policy, "") or (None, why)."""
        from gfdit.server.reload import compile_policy

        try:
            policy, diagnostics = compile_policy(text, self.source, self._params, runs_on=(self._cost_model, self._gpus))
        except Exception as exc:  # noqa: BLE001 -- it compiled on the reload thread; say so if not here
            policy, diagnostics = None, [f"{type(exc).__name__}: {exc}"]
        return policy, "; ".join(diagnostics)[:1000]

    def predict(self, policy, requests: list[Request]) -> dict:
        """`policy`'s overall metrics on `requests` (times from the first arrival: `_from_start`)."""
        metrics = simulate(policy, requests, self._cost_model, self._gpus).metrics["overall"]
        return {k: metrics.get(k) for k in PREDICTED}


def _from_start(arrivals: list[Request]) -> list[Request]:
    """The arrivals with their times counted from the first one's."""
    start = arrivals[0].arrival
    return [Request.from_record(shifted_record(r, start)) for r in arrivals]
