"""Property tests: random workloads, random policies, random failures; the engine's invariants hold.

No rank is double-booked, every width is allowed, every request ends in a
terminal state, a request's tasks run one at a time and in trajectory order,
time never goes backwards.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gfdit.engine.cluster import Cluster
from gfdit.engine.costmodel import CostModel
from gfdit.engine.engine import Engine
from gfdit.engine.executor import SimExecutor
from gfdit.engine.policy import Why
from gfdit.engine.request import TERMINAL, Request
from gfdit.engine.simulator import simulate

from engine_support import write_cost_model

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def cm(tmp_path_factory) -> CostModel:
    return CostModel.load(write_cost_model(tmp_path_factory.mktemp("cm"), {1: 300.0, 2: 180.0, 4: 120.0, 8: 100.0},
                                           encode_ms=200.0, decode_ms=250.0))


def coin(*parts) -> float:
    return zlib.crc32(":".join(map(str, parts)).encode()) / 2**32


@dataclass(frozen=True)
class RandomPolicy:
    """Every decision a deterministic pseudo-random function of (seed, request, time); some hooks raise."""

    seed: int
    chunk: int | None
    widths: tuple[int, ...]
    on_short: str
    placement: tuple[str, ...]
    pools: dict = field(default_factory=dict)
    stage_pools: dict = field(default_factory=dict)
    tick: float | None = None
    p_hold: float = 0.0
    p_error: float = 0.0
    name: str = "random"
    revision: str = "0"
    classes: dict = field(default_factory=dict)

    def _c(self, view, r, hook):
        return coin(self.seed, r.id, round(view.now, 6), hook)

    def _maybe_raise(self, view, r, hook):
        if self._c(view, r, hook + "!") < self.p_error:
            raise RuntimeError(f"random {hook} failure")

    def admit(self, view, r):
        self._maybe_raise(view, r, "admit")
        return ("random no", Why("rand.admit", {})) if self._c(view, r, "admit") < 0.1 else (None, None)

    def hold(self, view, r):
        self._maybe_raise(view, r, "hold")
        return Why("rand.hold", {}) if self._c(view, r, "hold") < self.p_hold else None

    def order_key(self, view, r):
        self._maybe_raise(view, r, "order")
        return (self._c(view, r, "order"),)

    def width(self, view, r):
        self._maybe_raise(view, r, "width")
        k = self.widths[int(self._c(view, r, "width") * len(self.widths))]
        return k, Why("rand.width", {"k": k})

    def grow(self, view, r):
        self._maybe_raise(view, r, "grow")
        if self._c(view, r, "grow") < 0.5:
            return None
        return self.widths[int(self._c(view, r, "bound") * len(self.widths))], Why("rand.grow", {})


@st.composite
def policies(draw, gpus):
    fitting = [w for w in (1, 2, 4, 8) if w <= gpus]
    widths = draw(st.sets(st.sampled_from(fitting), min_size=1)) | draw(st.sets(st.sampled_from([1, 2, 4, 8])))
    widths = tuple(sorted(widths))
    pools, stage_pools = {}, {}
    if gpus > 1 and draw(st.booleans()):
        pools = {"aux": frozenset({0}), "main": frozenset(range(1, gpus))}
        stage_pools = {"encode": "aux", "decode": "aux"} if draw(st.booleans()) else {"denoise": "main"}
    return RandomPolicy(
        seed=draw(st.integers(0, 10**6)), chunk=draw(st.sampled_from([None, 1, 2, 5])), widths=widths,
        on_short=draw(st.sampled_from(["skip", "shrink", "reserve"])),
        placement=tuple(draw(st.permutations(["sticky", "compact", "lowest"]))[: draw(st.integers(1, 3))]),
        pools=pools, stage_pools=stage_pools, tick=draw(st.sampled_from([None, 0.5, 3.0])),
        p_hold=draw(st.sampled_from([0.0, 0.2, 0.5])), p_error=draw(st.sampled_from([0.0, 0.05])))


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 14))
    arrivals = sorted(draw(st.lists(st.floats(0, 20, allow_nan=False), min_size=n, max_size=n)))
    return [Request(id=f"r{i}", arrival=a, height=512, width=512, steps=draw(st.integers(1, 7)),
                    tokens=draw(st.sampled_from([256, 1024, 4096])), request_class=draw(st.sampled_from("SML")),
                    deadline=draw(st.one_of(st.none(), st.floats(a, a + 30))))
            for i, a in enumerate(arrivals)]


@st.composite
def scenarios(draw):
    gpus = draw(st.sampled_from([1, 2, 3, 4, 8]))
    reqs = draw(workloads())
    events = draw(st.lists(st.tuples(st.floats(0, 30), st.sampled_from(["cancel", "lose", "restore"]),
                                     st.integers(0, 100)), max_size=6))
    return gpus, draw(policies(gpus)), reqs, sorted(events), draw(st.sampled_from([0.0, 0.1]))


class Checker:
    """An independent model of each request's position, checked against every dispatch."""

    def __init__(self, engine: Engine, policy):
        self.engine, self.policy = engine, policy
        self.position: dict[str, tuple[bool, int]] = {}
        self.running: dict[str, str] = {}  # task id -> request id
        self.now = 0.0

    def at(self, t: float) -> None:
        assert t >= self.now, f"time went backwards: {t} < {self.now}"
        self.now = t

    def dispatched(self, dispatches) -> None:
        for d in dispatches:
            assert len(d.group) in self.policy.widths
            assert list(d.group) == sorted(set(d.group))
            assert d.request_id not in self.running.values(), "two tasks of one request at once"
            encoded, done = self.position.get(d.request_id, (False, 0))
            assert ("encode" in d.stages) == (not encoded) and d.steps[0] == (0 if not encoded else done)
            self.running[d.task_id] = d.request_id
        busy = [r for t in self.engine.tasks.values() for r in t.task.group]
        assert len(busy) == len(set(busy)), "a rank is double-booked"
        assert not set(busy) & self.engine.cluster.lost

    def ended(self, d_task, request_id, ok, stages, steps) -> None:
        self.running.pop(d_task, None)
        if ok:
            encoded, _ = self.position.get(request_id, (False, 0))
            self.position[request_id] = (encoded or "encode" in stages, steps[1])

    def restarted(self, request_ids) -> None:
        for rid in request_ids:
            self.position[rid] = (False, 0)
            for task_id in [t for t, r in self.running.items() if r == rid]:
                del self.running[task_id]


@SETTINGS
@given(scenarios())
def test_invariants_hold_under_random_policies_and_failures(cm, scenario):
    gpus, policy, reqs, events, fail_rate = scenario
    engine = Engine(policy, cm, Cluster(gpus, 2 if gpus > 2 else None), max_attempts=3)
    executor = SimExecutor(fail_rate=fail_rate, seed=policy.seed)
    check = Checker(engine, policy)
    info: dict[str, tuple] = {}
    pending = sorted([(r.arrival, "arrive", r) for r in reqs] + [(t, kind, x) for t, kind, x in events],
                     key=lambda e: (e[0], e[1]))
    now, idle_rounds = 0.0, 0
    while True:
        t_next = pending[0][0] if pending else math.inf
        end = executor.next_end()
        t_tick = engine.next_tick(now) if engine.active else None
        upcoming = min(t_next, end if end is not None else math.inf, t_tick or math.inf)
        if idle_rounds > 50 or (math.isinf(upcoming) and engine.active):
            if engine.cluster.lost:  # a stall: give the ranks back so the survivors can finish
                engine.ranks_restored(range(gpus), now)
                upcoming = now
            if idle_rounds > 100 or math.isinf(upcoming):
                engine.fail_waiting(now, "stalled")
                break
        if math.isinf(upcoming):
            break
        now = max(now, upcoming)
        check.at(now)
        for e in executor.poll(now):
            rid, stages, steps = info[e.task_id]
            state = engine.task_done(e.task_id, e.at, e.ok, e.error)
            check.ended(e.task_id, rid, e.ok and state != "unknown task", stages, steps)
        while pending and pending[0][0] <= now:
            _, kind, x = pending.pop(0)
            if kind == "arrive":
                engine.submit(x, now)
            elif kind == "cancel" and reqs:
                engine.cancel(reqs[x % len(reqs)].id, now)
            elif kind == "lose":
                hit = engine.ranks_lost([x % gpus], "random loss", now)
                check.restarted(hit)
                executor.forget({t for t, r in info.items() if r[0] in hit})
            else:
                engine.ranks_restored([x % gpus], now)
        dispatches = engine.schedule(now)
        check.dispatched(dispatches)
        for d in dispatches:
            info[d.task_id] = (d.request_id, d.stages, d.steps)
            executor.start(d, now)
        idle_rounds = idle_rounds + 1 if not dispatches and not executor.running and not pending else 0
    assert engine.idle and not engine.tasks
    outcomes = {o.id: o for o in engine.outcomes}
    assert sorted(outcomes) == sorted(r.id for r in reqs), "every request ends exactly once"
    for o in outcomes.values():
        assert o.state in {s.value for s in TERMINAL} | {"rejected"}
        assert o.finish is None or o.finish >= o.arrival
        assert (o.state == "failed") == bool(o.reason and o.state == "failed")


@SETTINGS
@given(st.sampled_from([1, 2, 4, 8]).flatmap(lambda g: st.tuples(st.just(g), policies(g), workloads())))
def test_simulated_timelines_never_double_book_a_rank(cm, case):
    gpus, policy, reqs = case
    result = simulate(policy, reqs, cm, gpus, record_spans=True)
    assert len(result.outcomes) == len(reqs)
    by_rank: dict[int, list[tuple[float, float]]] = {}
    for span in result.spans:
        assert span.start <= span.end and len(span.group) in policy.widths
        for rank in span.group:
            by_rank.setdefault(rank, []).append((span.start, span.end))
    for intervals in by_rank.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end - 1e-9, "overlapping tasks on one rank"
    per_request: dict[str, list] = {}
    for span in result.spans:
        per_request.setdefault(span.request_id, []).append(span)
    for spans in per_request.values():  # in order, one at a time, steps contiguous
        for a, b in itertools.pairwise(spans):
            assert b.start >= a.end - 1e-9 and b.steps[0] == a.steps[1]
