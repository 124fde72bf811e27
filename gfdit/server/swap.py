"""Swapping in a compiled policy: the engine loop's half of hot reload.

The reload thread compiles; this object, called on the engine loop only,
checks the compare-and-swap revision, asks the engine to check the policy
against the cluster and cost model (`Engine.set_policy`; it takes over at the
next round), counts and logs the outcome, and answers the caller with every
diagnostic. A refused proposal changes nothing.
"""

from __future__ import annotations

import logging
from typing import Callable

from gfdit.engine.engine import Engine
from gfdit.engine.policy_check import PolicyError
from gfdit.protocol import ReloadReply
from gfdit.server.prometheus import ServerMetrics
from gfdit.server.reload import PolicyCompiled, ReplyTo

log = logging.getLogger("gfdit.server.loop")


class PolicySwap:
    """The running revision and the reload counters; see the module doc."""

    def __init__(self, engine: Engine, metrics: ServerMetrics, send: Callable):
        self.engine, self.metrics, self.send = engine, metrics, send
        self.revision = engine.policy.revision
        self.reloads: dict = {"ok": 0, "refused": 0, "last": None}
        metrics.set_policy(engine.policy)

    def on_compiled(self, c: PolicyCompiled) -> bool:
        """Apply one compile outcome; True when a new policy will run from the next round."""
        if c.policy is None:
            return self._refuse(c, f"{len(c.diagnostics)} problem(s) in {c.source}", c.diagnostics)
        if c.if_revision is not None and c.if_revision != self.revision:
            return self._refuse(c, f"running revision is {self.revision}, not {c.if_revision}", [])
        if c.revision == self.revision:
            if c.reply_to is not None:
                self.reply(c.reply_to, True, "unchanged: this revision is already running", c.diagnostics,
                           self.revision)
            return False
        try:
            self.engine.set_policy(c.policy)
        except PolicyError as exc:
            return self._refuse(c, "the policy cannot run on this server", [str(exc)])
        previous, self.revision = self.revision, c.revision
        self.reloads["ok"] += 1
        self.reloads["last"] = {"ok": True, "revision": c.revision, "source": c.source}
        with self.metrics.lock:
            self.metrics.reloads.inc(result="ok")
        self.metrics.set_policy(c.policy)
        log.info("policy %s revision %s -> %s (from %s), in force from the next round",
                 c.policy.name, previous, c.revision, c.source)
        if c.reply_to is not None:
            self.reply(c.reply_to, True, f"({c.policy.name}, from the next round)", c.diagnostics, previous)
        return True

    def _refuse(self, c: PolicyCompiled, message: str, diagnostics: list[str]) -> bool:
        self.reloads["refused"] += 1
        self.reloads["last"] = {"ok": False, "revision": c.revision, "source": c.source,
                                "message": message, "diagnostics": diagnostics}
        with self.metrics.lock:
            self.metrics.reloads.inc(result="refused")
            self.metrics.reload_failures.inc()
        log.error("policy reload from %s refused: %s; revision %s keeps running", c.source, message, self.revision)
        for diagnostic in diagnostics:
            log.error("%s", diagnostic)
        if c.reply_to is not None:
            self.reply(c.reply_to, False, message, diagnostics)
        return False

    def reply(self, to: ReplyTo, ok: bool, message: str, diagnostics: list[str], previous: str = "") -> None:
        self.send(to.peer, ReloadReply(call_id=to.call_id, ok=ok, revision=self.revision,
                                       previous_revision=previous, message=message, diagnostics=diagnostics))
