"""The engine: a state machine over requests, tasks and ranks, with no I/O and no clock.

The simulator and the live server drive the very same engine: they feed it
inputs (submit, cancel, task_done, ranks_lost, ranks_restored, set_policy),
each stamped with the caller's `now`, and call `schedule(now)` to get the tasks
to start. Every input method is cheap; only `schedule` asks the policy.

Failure rules (docs/engine.md):
- A failed task is retried from the request's last good state (the executor
  must leave the state as it was; pass `state_intact=False` if it could not,
  and the request restarts from encode). A request gets `max_attempts` tries
  in all (restarts and retries count); then it fails with the last error.
- Lost ranks: a task running on any of them is aborted and its request
  restarts from scratch; a waiting request whose state lived only on lost ranks
  restarts too; the lost ranks take no task until `ranks_restored`.
- A policy hook that raises never stops a request: the hook's fallback applies
  for that round (see `scheduling`), and the error is counted per rule in
  `rule_errors`, logged (`gfdit.engine` logger, first time per rule) and
  written to the decision log.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict
from typing import Iterable

from .chunking import chunk_of
from .class_facts import ClassFacts
from .cluster import Cluster
from .costmodel import CostModel
from .decisions import DecisionLog
from .events import Advanced, EngineEvent, Finished, Held, Retrying, TaskStarted
from .eligibility import Eligibility
from .lean import LeanCheck, LeanQueue, lean_round
from .pinning import pin_problem
from .placement import Allocator
from .policy import Policy, Why, class_spec
from .policy_check import check_policy
from .request import REJECTED, TERMINAL, Outcome, Request, State
from .scheduling import Grant, HookError, RoundResult, hook_error, run_round
from .task import Dispatch, Task, cut_next_task
from .tracked import Clock, Tracked
from .view import Round


_log = logging.getLogger("gfdit.engine")
# enum members and values read every round: an Enum class attribute costs ~80 ns on 3.11, `.value` more
_QUEUED, _RUNNING, _QUEUED_VALUE = State.QUEUED, State.RUNNING, State.QUEUED.value
HOLD_RECHECK_S = 1.0  # without a `tick`, held requests are re-judged this often (engine seconds)


class Engine:
    """Requests, their trajectory tasks and the cluster's ranks, advanced by a policy."""

    def __init__(self, policy: Policy, cost_model: CostModel, cluster: Cluster,
                 decision_log: DecisionLog | None = None, max_attempts: int = 3,
                 keep_ended: int | None = 10_000, hold_recheck_s: float = HOLD_RECHECK_S,
                 progress_events: bool = True):
        """`keep_ended`: how many ended requests the engine remembers (their outcomes, for
        `outcomes`, `cancel`'s "already ..." and duplicate ids); None keeps all (the
        simulator). A live server keeps a bounded window: its memory must not grow."""
        check_policy(policy, cost_model, cluster.gpus)
        self.policy = policy
        self.cost_model = cost_model
        self.cluster = cluster
        self.log = decision_log
        self.max_attempts = max_attempts
        self.hold_recheck_s = hold_recheck_s  # holds are re-judged at least this often (no `tick`)
        self.clock = Clock()
        self.active: dict[str, Tracked] = {}  # accepted, not terminal (arrival order)
        self.waiting: dict[str, Tracked] = {}  # active with no task in flight
        self.tasks: dict[str, Tracked] = {}  # task id -> its request
        self.hook_errors: dict[str, int] = {}  # by hook: admit, hold, order, width, grow
        self.rule_errors: Counter[str] = Counter()  # by rule location (RuleError.rule, python:NAME.HOOK)
        self.rule_error_messages: dict[str, str] = {}  # the first message of each rule in rule_errors
        self.rounds = 0
        self.last_round: float | None = None
        self._events: list[EngineEvent] = []
        self._ended: OrderedDict[str, Outcome] = OrderedDict()
        self._keep = keep_ended
        self._pending: Policy | None = None
        self.eligibility = Eligibility(cluster)  # which ranks each candidate may use
        self.class_facts = ClassFacts()  # whether a policy's classes have pools / shares
        self.lean = LeanCheck()  # whether a policy's rounds can skip the general machinery (lean.py)
        self.queue = LeanQueue()  # `waiting` in the lean policy's order, kept across rounds (lean.py)
        self._task_seq = 0
        self._held: dict[str, Tracked] = {}  # held at the last round they competed in
        self._passed: dict[str, tuple] = {}  # request id -> (rule, wanted) of its last logged skip
        self.progress_events = progress_events  # False: no TaskStarted / Advanced (a driver reading endings only)

    # ---- inputs ---------------------------------------------------------
    def submit(self, request: Request, now: float) -> str | None:
        """Admit or reject a request: None if accepted, else the rejection reason."""
        self.clock.now = now
        if request.id in self.active or request.id in self._ended:
            return f"duplicate request id {request.id!r}"
        spec = class_spec(self.policy.classes, request.request_class)
        try:
            tracked = Tracked(request, spec, self.cost_model, self.clock)
        except ValueError as exc:  # e.g. no width-1 layout: its deadline and t_single are unknown
            reason = f"cannot price request {request.id}: {exc}"
            self._record(Outcome(request.id, request.request_class, REJECTED, request.arrival,
                                 math.inf, None, math.nan, reason))
            if self.log is not None:
                self.log.write(self._base(now, "reject") | {"request": request.id, "rule": "engine:price",
                                                           "reason": reason})
            return reason
        reason, why = self._admit(tracked, now)
        if reason is not None:
            self._record(Outcome(request.id, request.request_class, REJECTED, request.arrival,
                                 tracked.deadline, None, tracked.t_single, reason))
            self.note(now, "reject", tracked, rule=why.rule if why else None, reason=reason)
            return reason
        self.active[request.id] = tracked
        self.waiting[request.id] = tracked
        self.queue.add(tracked)
        self.eligibility.pinned += request.ranks is not None
        if self.log is not None:
            self.note(now, "admit", tracked, rule=why.rule if why else None, deadline=tracked.deadline)
        return None

    def _admit(self, tracked: Tracked, now: float) -> tuple[str | None, Why | None]:
        if (pin := pin_problem(tracked.req, self.policy, self.cluster.gpus)) is not None:
            return pin, Why("engine:pin", {"ranks": sorted(tracked.req.ranks or ())})
        try:
            return self.policy.admit(self.view(now, self.log is not None), tracked)
        except Exception as exc:  # noqa: BLE001 -- a policy hook is untrusted: admit, count, log
            self.record_hook_error(now, hook_error(self.policy, tracked, "admit", exc))
            return None, None

    def cancel(self, request_id: str, now: float, reason: str = "cancelled by client") -> str:
        """Cancel a request. Returns what happened: "cancelled" (it was waiting),
        "cancelling" (its running task ends first, then its ranks free),
        "already <state>", or "unknown"."""
        return self._end_by_caller(request_id, now, State.CANCELLED, reason)

    def fail(self, request_id: str, reason: str, now: float) -> str:
        """Fail a request with `reason` (the driver cannot run it: e.g. its workers are
        gone). Like `cancel`: "failed" at once if it was waiting, "failing" when its
        running task ends, "already <state>", or "unknown". A fail overrides a
        pending cancel."""
        return self._end_by_caller(request_id, now, State.FAILED, reason)

    def _end_by_caller(self, request_id: str, now: float, state: State, reason: str) -> str:
        self.clock.now = now
        tracked = self.active.get(request_id)
        if tracked is None:
            done = self._ended.get(request_id)
            return f"already {done.state}" if done else "unknown"
        if tracked.task is not None:
            if tracked.ending is None or state is State.FAILED:
                tracked.ending = (state, reason)
            return {State.CANCELLED: "cancelling", State.FAILED: "failing"}[state]
        self._finish(tracked, state, now, reason)
        return state.value

    def task_done(self, task_id: str, now: float, ok: bool = True, error: str | None = None,
                  state_intact: bool = True, outputs: object = None) -> str:
        """A task ended. Returns the request's resulting state, or "unknown task"
        for a task the engine no longer tracks (e.g. aborted when its ranks were lost).
        `outputs` (what a final task produced) rides on the request's `Finished` event."""
        tracked = self.tasks.pop(task_id, None)
        if tracked is None or tracked.task is None or tracked.task.id != task_id:
            return "unknown task"
        self.clock.now = now
        task = tracked.task
        if ok and self.progress_events:
            self._events.append(Advanced(tracked.dispatch))  # type: ignore[arg-type]
        self._end_task(tracked, task, now)
        return self._after_task(tracked, task, now, ok, error, state_intact, outputs)

    def _after_task(self, tracked: Tracked, task: Task, now: float, ok: bool, error: str | None,
                    state_intact: bool, outputs: object) -> str:
        if ok:
            tracked.encoded = tracked.encoded or task.encode
            tracked.steps_done = task.step_end
            tracked.holders = task.group
            tracked.last_width = len(task.group)
            if task.decode:
                self._finish(tracked, State.COMPLETED, now, None, outputs)
                return State.COMPLETED.value
        if tracked.ending is not None:
            self._finish(tracked, tracked.ending[0], now, tracked.ending[1])
            return tracked.state.value
        if not ok:
            why = f"task {task.id} ({task.stage}) failed: {error or 'no error given'}"
            self._retry(tracked, now, why, restart=not state_intact)
            return tracked.state.value
        return _QUEUED_VALUE  # back in the queue (_end_task)

    def ranks_lost(self, ranks: Iterable[int], reason: str, now: float) -> list[str]:
        """Ranks died. Returns the ids of the requests it set back (restarted or failed)."""
        self.clock.now = now
        lost = tuple(sorted(set(ranks)))
        self.cluster.lose(lost)
        self.eligibility.clear()
        hit = []
        for tracked in list(self.active.values()):
            task = tracked.task
            if task is not None and set(task.group) & set(lost):
                self.tasks.pop(task.id, None)
                self._end_task(tracked, task, now)
                hit.append(tracked.id)
                if tracked.ending is not None:
                    self._finish(tracked, tracked.ending[0], now, tracked.ending[1])
                    continue
                self._retry(tracked, now, f"ranks {list(lost)} lost ({reason}) during task {task.id}", True)
            elif task is None and tracked.holders:
                left = tuple(r for r in tracked.holders if r not in lost)
                if not left:
                    hit.append(tracked.id)
                    self._retry(tracked, now, f"its state was on lost ranks {list(lost)} ({reason})", True)
                tracked.holders = left
        if self.log is not None:
            self.log.write(self._base(now, "lost") | {"ranks": list(lost), "reason": reason, "requests": hit})
        return hit

    def ranks_restored(self, ranks: Iterable[int], now: float | None = None) -> tuple[int, ...]:
        """Lost ranks are usable again; returns those that were lost."""
        back = self.cluster.restore(tuple(sorted(set(ranks))))
        self.eligibility.clear()
        return back

    def set_policy(self, policy: Policy) -> None:
        """Swap the policy at the next round. Raises PolicyError (and keeps the old one) if it cannot run."""
        check_policy(policy, self.cost_model, self.cluster.gpus)
        self._pending = policy

    def next_tick(self, now: float) -> float | None:
        """When the next round is due with no other input: last round + the policy's `tick`;
        without one, last round + `hold_recheck_s` while a request is held (a hold on
        `req.age`, `req.waited`, `now` or a cost estimate can release it as time passes alone);
        else None."""
        policy = self._pending or self.policy
        every = policy.tick if policy.tick is not None else (self.hold_recheck_s if self._held else None)
        if every is None:
            return None
        return (self.last_round if self.last_round is not None else now) + every

    def fail_waiting(self, now: float, reason: str) -> list[str]:
        """Fail every accepted request with no task in flight (a stall, or a shutdown)."""
        self.clock.now = now
        ids = list(self.waiting)
        for rid in ids:
            self._finish(self.waiting[rid], State.FAILED, now, reason)
        return ids

    @property
    def has_events(self) -> bool:
        """Events wait to be taken."""
        return bool(self._events)

    def take_events(self) -> list[EngineEvent]:
        """What happened since the last call (see `gfdit.engine.events`), in order."""
        events, self._events = self._events, []
        return events

    @property
    def outcomes(self) -> list[Outcome]:
        """Outcomes of the requests that ended, oldest first (the last `keep_ended` of them)."""
        return list(self._ended.values())

    @property
    def idle(self) -> bool:
        """No accepted request is left unfinished."""
        return not self.active

    # ---- the round ------------------------------------------------------
    def schedule(self, now: float) -> list[Dispatch]:
        """Run one scheduling round; returns the tasks to start now."""
        self.rounds += 1
        self.last_round = now
        if self._pending is not None:
            self._swap(now)
        policy, cluster = self.policy, self.cluster
        if self.waiting and cluster.free and self.log is None and not self._held and not cluster.lost \
                and not self.eligibility.pinned and self.lean.of(policy, self.class_facts):
            self.clock.now = now
            free = len(cluster.free)  # and no rank is lost: busy = gpus - free
            view = Round(now, cluster.gpus, free, cluster.gpus - free, self._active_list, False)
            grants = lean_round(policy, view, self.waiting, self.queue, cluster)
            if grants is not None:
                dispatches = []  # a loop, not a comprehension: no function object made each round
                for grant in grants:
                    dispatches.append(self._start(grant, now))
                return dispatches
        decided = self.decide(self.policy, now)
        return [] if decided is None else self._apply(*decided, now)

    def decide(self, policy: Policy, now: float, explain: bool | None = None) -> tuple[RoundResult, list] | None:
        """`policy`'s round on the state now, applied by nothing (`run_round` changes no request):
        the live round's, or a shadow candidate's on the same view (gfdit/server/shadow.py).
        None: nothing to decide (with held requests the round runs anyway: their holds are re-judged)."""
        self.clock.now = now
        if not self.waiting or (not self.cluster.free and not self._held):
            return None
        candidates = list(self.waiting.values())
        class_pools, shares = self.class_facts.of(policy)
        eligible = self.eligibility.of(policy, class_pools)
        lost = len(self.cluster.lost)
        alloc = Allocator(set(self.cluster.free), self.cluster.gpus - lost, self.cluster.ranks_per_node, lost)
        view = self.view(now, self.log is not None if explain is None else explain)
        return run_round(policy, view, candidates, alloc, eligible, shares), candidates

    def _apply(self, result: RoundResult, candidates: list[Tracked], now: float) -> list[Dispatch]:
        for err in result.errors:
            self.record_hook_error(now, err)
        for tracked, why in result.held:
            self._hold(tracked, now, why)
        if result.reserved is not None and self.log is not None:
            tracked, why = result.reserved
            self.note(now, "reserve", tracked, rule=why.rule, values=dict(why.values))
        for tracked, reason in result.unplaceable:
            self._finish(tracked, State.FAILED, now, reason)
        dispatches = [self._start(grant, now, result.order_keys.get(grant.req.id))
                      for grant in result.grants]
        if self.log is not None:
            self._note_passed(result, now)
        if self._held:
            held_now = {t.id for t, _ in result.held}
            for rid in [rid for rid in self._held if rid not in held_now]:
                tracked = self._held.pop(rid)
                if tracked.state is State.HELD:  # released: back in the queue
                    tracked.paused_total += now - tracked.held_since  # type: ignore[operator]
                    tracked.held_since = None
                    tracked.state = State.QUEUED
        return dispatches

    def _hold(self, tracked: Tracked, now: float, why: Why | None) -> None:
        if tracked.held_since is None:
            tracked.held_since = now
            reason = f"held by {why.rule}" if why is not None and why.rule else "a hold rule paused it"
            self._events.append(Held(tracked.id, tracked.stage, tracked.steps_done, tracked.req.steps,
                                     reason if why is not None else "a policy hook failed on it"))
        tracked.state = State.HELD
        self._held[tracked.id] = tracked
        if why is not None and self.log is not None:
            self.note(now, "hold", tracked, rule=why.rule, values=dict(why.values))

    def _note_passed(self, result: RoundResult, now: float) -> None:
        """A `skip` record for a candidate that got no ranks: the first round it happens, and again
        whenever the rule or the width it wanted changes (not every round it keeps waiting)."""
        for tracked, why in result.passed:
            seen = (why.rule, why.values.get("wanted"))
            if self._passed.get(tracked.id) != seen:
                self._passed[tracked.id] = seen
                self.note(now, "skip", tracked, rule=why.rule, values=dict(why.values),
                           order_key=result.order_keys.get(tracked.id))

    def _start(self, grant: Grant, now: float, order_key: tuple | None = None) -> Dispatch:
        tracked, group, cluster = grant.req, grant.group, self.cluster
        rid, req = tracked.id, tracked.req
        if self._passed:
            self._passed.pop(rid, None)
        self._task_seq += 1
        task = cut_next_task(f"{rid}/{self._task_seq}", rid, tracked.encoded, tracked.steps_done, req.steps,
                             chunk_of(self.policy, tracked, now, self))
        task.group = group
        task.start = now
        duration = tracked.task_s(task, len(group))
        if cluster.several_nodes and cluster.spans_nodes(group):  # (one node: not even the call)
            duration *= self.cost_model.cross_node.group_factor
        task.duration_est = duration
        holders = tracked.holders
        nbytes, mig_s = 0, 0.0
        if holders and holders != group and (receivers := sum(1 for r in group if r not in holders)):
            migration = self.cost_model.migration
            nbytes = migration.state_bytes(req.shape)
            if cluster.reaches_new_node(group, holders):
                migration = self.cost_model.cross_migration
            mig_s = migration.seconds(nbytes, len(holders), receivers)
            tracked.migrations += 1
            tracked.migration_s += mig_s
        task.migration_s = mig_s
        cluster.take(group)
        if tracked.held_since is not None:
            tracked.paused_total += now - tracked.held_since
            tracked.held_since = None
            self._held.pop(rid, None)
        tracked.state = _RUNNING
        tracked.task = task
        self.tasks[task.id] = tracked
        del self.waiting[rid]
        self.queue.discard(tracked)
        stages = task.stages
        dispatch = tuple.__new__(Dispatch, (  # every field, in order: what `Dispatch(...)` builds, in half the time
            task.id, rid, stages[0], stages, (task.step_begin, task.step_end), group, holders, nbytes, mig_s,
            duration, req))
        tracked.dispatch = dispatch
        if self.progress_events:
            self._events.append(TaskStarted(dispatch, tracked.req.request_class, tracked.req.steps,
                                            not tracked.started, now - tracked.req.arrival))
        tracked.started = True
        if self.log is not None:
            self.note(now, "dispatch", tracked, task=task.id, stage=task.stage, width=len(grant.group),
                       wanted=grant.wanted, action=grant.action, ranks=list(grant.group),
                       state_ranks=list(holders), rule=grant.why.rule, values=dict(grant.why.values),
                       grown=[w.rule for w in grant.grown], steps=[task.step_begin, task.step_end],
                       order_key=order_key)
        return dispatch

    def _swap(self, now: float) -> None:
        old, self.policy, self._pending = self.policy, self._pending, None  # type: ignore[assignment]
        self.eligibility.clear()
        if self.log is not None:
            self.log.write(self._base(now, "policy") | {"previous": [old.name, old.revision]})

    # ---- endings ------------------------------------------------------------
    def _end_task(self, tracked: Tracked, task: Task, now: float) -> None:
        self.cluster.release(task.group)
        tracked.busy_rank_s += len(task.group) * (now - task.start)
        tracked.run_s += now - task.start
        tracked.task = None
        tracked.dispatch = None
        tracked.width_memo = None  # its progress changes now: a promise made before no longer holds
        tracked.last_end = now
        tracked.state = _QUEUED
        self.waiting[tracked.id] = tracked
        self.queue.add(tracked)

    def _retry(self, tracked: Tracked, now: float, why: str, restart: bool) -> None:
        if tracked.attempts >= self.max_attempts:  # that was its last try
            self._finish(tracked, State.FAILED, now, f"{why}; gave up after {tracked.attempts} attempts")
            return
        tracked.attempts += 1
        if restart:
            tracked.restart()
            self.queue.restarted()
        self._events.append(Retrying(tracked.id, tracked.stage, why))
        self.note(now, "restart" if restart else "retry", tracked, reason=why)

    def _finish(self, tracked: Tracked, state: State, now: float, reason: str | None,
                outputs: object = None) -> None:
        assert state in TERMINAL
        tracked.state = state
        tracked.reason = reason
        tracked.finish = now
        if tracked.held_since is not None:
            tracked.paused_total += now - tracked.held_since
            tracked.held_since = None
        self._held.pop(tracked.id, None)
        self._passed.pop(tracked.id, None)
        if self.active.pop(tracked.id, None) is not None:
            self.eligibility.pinned -= tracked.req.ranks is not None
        if self.waiting.pop(tracked.id, None) is not None:
            self.queue.discard(tracked)
        req = tracked.req
        self._record(Outcome(req.id, req.request_class, state.value, req.arrival, tracked.deadline, now,
                             tracked.t_single, reason, tracked.migrations, tracked.migration_s,
                             tracked.busy_rank_s, tracked.attempts), outputs)
        if self.log is not None:
            self.note(now, {State.COMPLETED: "complete", State.FAILED: "fail",
                             State.CANCELLED: "cancel"}[state], tracked, reason=reason)

    def _record(self, outcome: Outcome, outputs: object = None) -> None:
        self._events.append(Finished(outcome, outputs))
        self._ended[outcome.id] = outcome
        if self._keep is not None and len(self._ended) > self._keep:
            self._ended.popitem(last=False)

    # ---- what the engine and its helpers (chunking.chunk_of) use ----------
    def view(self, now: float, explain: bool) -> Round:
        """The round view policy hooks read at `now` (`explain`: their answers say why)."""
        free = len(self.cluster.free)
        return Round(now, self.cluster.gpus, free, self.cluster.busy, self._active_list, explain)

    def _active_list(self) -> list[Tracked]:
        return list(self.active.values())

    def record_hook_error(self, now: float, err: HookError) -> None:
        """Count a hook error by hook and by rule; log the first of each rule; note it in the decision log."""
        self.hook_errors[err.hook] = self.hook_errors.get(err.hook, 0) + 1
        self.rule_errors[err.rule] += 1
        if err.rule not in self.rule_error_messages:
            self.rule_error_messages[err.rule] = err.message
            _log.warning("policy %s: rule %s failed in the %s hook (request %s): %s; the hook's "
                         "fallback applies (further errors of this rule are only counted)",
                         self.policy.name, err.rule, err.hook, err.req.id, err.message)
        self.note(now, "error", err.req, hook=err.hook, rule=err.rule, reason=err.message)

    def _base(self, now: float, event: str) -> dict:
        return {"t": now, "event": event, "policy": self.policy.name, "revision": self.policy.revision}

    def note(self, now: float, event: str, tracked: Tracked, **fields: object) -> None:
        """Write a decision-log record about `tracked` (nothing without a log; None fields left out)."""
        if self.log is None:
            return
        record = self._base(now, event)
        record["request"] = tracked.id
        record.update({k: v for k, v in fields.items() if v is not None})
        if isinstance(record.get("deadline"), float) and math.isinf(record["deadline"]):
            record["deadline"] = None
        self.log.write(record)

