"""The operator's calls on a running server (`Operate`): record, cost model, shadow, promote.

Called on the engine loop only (like every client call); what takes time runs
elsewhere: the recorder writes on its own thread, a shadow candidate is
compiled on the reload thread, its simulations run on the shadow's thread.
docs/server.md, "The operator's loop", has the user's view.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from gfdit.engine.policy_check import PolicyError, check_policy
from gfdit.engine.request import Request
from gfdit.protocol import ErrorReply, Operate, StatusReply
from gfdit.server.calibrate import cost_model_docs
from gfdit.server.config import ConfigError
from gfdit.server.recorder import Recorder
from gfdit.server.reload import PolicyCompiled, ReplyTo
from gfdit.server.shadow import Shadow

log = logging.getLogger("gfdit.server.operations")


class Operations:
    """The recorder and the shadow of one engine loop; see the module doc."""

    OPS = {"record": "_record", "cost_model": "_cost_model", "shadow": "_shadow", "promote": "_promote"}

    def __init__(self, loop):
        self.loop = loop
        self.recorder: Recorder | None = None
        self.shadow: Shadow | None = None
        cfg = loop.config
        self.live_text = _policy_text(cfg.policy)  # the running policy's source, for the shadow's comparison
        if cfg.record:
            try:
                self.start_recording(cfg.record, cfg.record_prompts)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"record: cannot write {cfg.record}: {getattr(exc, 'strerror', None) or exc}") from None

    # ---- hooks of the engine loop ---------------------------------------------
    def arrived(self, request: Request) -> None:
        """A request the engine is asked to admit (before `Engine.submit`)."""
        if self.recorder is not None:
            self.recorder.add(request)
        if self.shadow is not None:
            self.shadow.arrived(request)

    def status(self) -> dict:
        return {"recording": self.recorder.status() if self.recorder is not None else None,
                "shadow": self.shadow.status() if self.shadow is not None else None}

    def close(self) -> None:
        self._clear_shadow()
        self._stop_recording()

    def _stop_recording(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    # ---- the calls --------------------------------------------------------------
    def take(self, peer: bytes, msg: Operate) -> None:
        name = self.OPS.get(msg.op)
        if name is None:
            return self._error(peer, msg, f"unknown operation {msg.op[:40]!r}; known: {', '.join(self.OPS)}")
        getattr(self, name)(peer, msg)

    def start_recording(self, path: str, prompts: bool) -> Recorder:
        cfg, loop = self.loop.config, self.loop
        self._stop_recording()
        metadata = {"model": cfg.model, "num_gpus": cfg.num_gpus, "policy": loop.engine.policy.name,
                    "revision": loop.swap.revision, "time_scale": cfg.time_scale,
                    "cost_model": loop.info.get("cost_model")}
        self.recorder = Recorder(path, loop.clock.now(), prompts=prompts, max_bytes=cfg.record_max_bytes,
                                 keep=cfg.record_keep, metadata=metadata)
        log.info("recording arrivals to %s%s", path, " (with prompts)" if prompts else "")
        return self.recorder

    def _record(self, peer: bytes, msg: Operate) -> None:
        was = self.recorder.status() if self.recorder is not None else None
        if msg.path is None:
            self._stop_recording()
            return self._reply(peer, msg, {"recording": None, "stopped": was})
        try:
            recorder = self.start_recording(str(Path(msg.path)), msg.prompts)
        except (OSError, ValueError) as exc:
            return self._error(peer, msg, f"cannot record to {msg.path[:200]!r}: {getattr(exc, 'strerror', None) or exc}")
        self._reply(peer, msg, {"recording": recorder.status(), "stopped": was})

    def _cost_model(self, peer: bytes, msg: Operate) -> None:
        layouts, migration = cost_model_docs(self.loop.engine.cost_model)
        self._reply(peer, msg, {"layouts": {str(k): v for k, v in layouts.items()}, "migration": migration,
                                "source": self.loop.info.get("cost_model")})

    def _shadow(self, peer: bytes, msg: Operate) -> None:
        """Compile a candidate on the reload thread (`shadow_compiled` takes the outcome); neither
        text nor path: clear the candidate."""
        if msg.text is None and msg.path is None:
            was = self.shadow.status() if self.shadow is not None else None
            self._clear_shadow()
            return self._reply(peer, msg, {"shadow": None, "cleared": was})
        if msg.text is None and not msg.path.endswith(".gfp"):  # as for a reload: only policy files
            return self._error(peer, msg, f"the server reads only .gfp policy files, not {msg.path[:200]!r}")
        self.loop.reloader.propose(msg.text, msg.path or "<client>", None, ReplyTo(peer, msg.call_id),
                                   purpose="shadow")

    def shadow_compiled(self, c: PolicyCompiled) -> None:
        """The reload thread's outcome for a shadow proposal: the new candidate, or every diagnostic."""
        loop = self.loop
        policy = c.policy
        if policy is not None:
            try:
                check_policy(policy, loop.engine.cost_model, loop.engine.cluster.gpus)
            except PolicyError as exc:
                c = replace(c, policy=None, diagnostics=[str(exc)])
        if c.policy is None:
            return loop.swap.reply(c.reply_to, False, f"candidate refused: {len(c.diagnostics)} problem(s) in "
                                   f"{c.source}", c.diagnostics)
        self._clear_shadow()
        self.shadow = Shadow(c.policy, c.text, c.source, loop.config.policy_params, loop.engine.cost_model,
                             loop.engine.cluster.gpus, live_text=self.live_text)
        log.info("shadowing policy %s revision %s (from %s) beside revision %s", c.policy.name, c.revision,
                 c.source, loop.swap.revision)
        loop.swap.reply(c.reply_to, True, f"shadowing {c.policy.name} {c.revision} (decisions not applied)",
                        c.diagnostics)

    def _promote(self, peer: bytes, msg: Operate) -> None:
        """Swap the candidate in through the one hot-reload path (compare-and-swap on `if_revision`)."""
        shadow = self.shadow
        if shadow is None:
            return self._error(peer, msg, "no candidate to promote: start one with gfdit policy shadow FILE")
        compiled = PolicyCompiled(shadow.policy, shadow.revision, shadow.source, [], msg.if_revision,
                                  ReplyTo(peer, msg.call_id))
        if self.loop.swap.on_compiled(compiled):
            self.live_text = shadow.text
            self._clear_shadow()
            self.loop.dirty = True

    def _clear_shadow(self) -> None:
        if self.shadow is not None:
            self.shadow.close()
            self.shadow = None

    def _reply(self, peer: bytes, msg: Operate, server: dict) -> None:
        self.loop.send(peer, StatusReply(call_id=msg.call_id, server=server))

    def _error(self, peer: bytes, msg: Operate, message: str) -> None:
        self.loop.send(peer, ErrorReply(call_id=msg.call_id, code="invalid", message=message))


def _policy_text(spec: str) -> str | None:
    """The source of a `--policy` spec (a .gfp file or a shipped name); None for a built-in (py:NAME)."""
    from gfdit.policies import policy_path

    path = policy_path(spec)
    try:
        return path.read_text(encoding="utf-8-sig") if path is not None else None
    except (OSError, UnicodeDecodeError):
        return None
