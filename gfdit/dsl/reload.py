"""Hot reload at the library level: compile off the engine loop, swap at a round boundary.

    holder = PolicyHolder("policies/edf_best_fit.gfp")   # or PolicyHolder(text), .from_file(...)
    engine = Engine(holder.current, ...)
    # any thread (socket handler, file watcher):
    result = holder.propose(new_text, if_revision=holder.revision)
    # the engine loop, between rounds:
    new = holder.take_pending()
    if new is not None:
        engine.set_policy(new)

`propose` compiles on the caller's thread; on success the new policy waits as
*pending* until the engine loop takes it, so a swap only ever happens at a
round boundary and only with a policy that compiled. On failure nothing
changes and the result carries every diagnostic. `if_revision` makes the
proposal a compare-and-swap: refused unless it names the newest accepted
revision (the pending one if there is one, else the running one).

Compiling is not all: a policy may compile and still not run on this engine
(a width the cost model lacks, a pool naming a rank the cluster lacks). Pass
`check` (e.g. ``lambda p: check_policy(p, cost_model, gpus)``) and `propose`
refuses such a policy too, keeping the old one; without it, `take_pending`
may hand over a policy that `Engine.set_policy` then refuses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gfdit.dsl.diagnostics import Diagnostic, PolicyError, render_all
from gfdit.dsl.load import compile_policy, read_policy_text, revision_of
from gfdit.dsl.policy import CompiledPolicy


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of a proposal.

    ok           -- the new policy compiled and is pending (or was already running).
    revision     -- the newest accepted revision after this call (the old one on failure).
    diagnostics  -- every error and warning of the proposed text.
    message      -- one line for logs and clients.
    """

    ok: bool
    revision: str
    diagnostics: tuple[Diagnostic, ...] = field(default_factory=tuple)
    message: str = ""

    def render(self) -> str:
        return "\n".join(x for x in (self.message, render_all(self.diagnostics)) if x)


class PolicyHolder:
    """Holds the running policy and at most one pending replacement; safe across threads."""

    def __init__(self, source: CompiledPolicy | str | Path, params: dict[str, str] | None = None,
                 path: str | Path | None = None, check: Callable[[CompiledPolicy], None] | None = None):
        """`source`: a compiled policy, a `.gfp` path, or policy text (raises `PolicyError` if it
        does not compile: there is nothing to keep running). `check`: raises `ValueError` for a
        compiled policy that cannot run where it is headed (see the module doc)."""
        self._lock = threading.Lock()
        self._params = dict(params or {})
        self._check = check
        if isinstance(source, CompiledPolicy):
            policy = source
        elif isinstance(source, Path) or (source.endswith(".gfp") and "\n" not in source):
            path = Path(source)
            policy = compile_policy(read_policy_text(path), str(path), self._params)
        else:
            policy = compile_policy(source, "<text>", self._params)
        self._current = policy
        self._pending: CompiledPolicy | None = None
        self.path = Path(path) if path is not None else None

    @classmethod
    def from_file(cls, path: str | Path, params: dict[str, str] | None = None,
                  check: Callable[[CompiledPolicy], None] | None = None) -> "PolicyHolder":
        """Load `path` (raises `PolicyError` if it does not compile: there is nothing to keep running)."""
        return cls(Path(path), params, check=check)

    @classmethod
    def from_text(cls, text: str, filename: str = "<text>", params: dict[str, str] | None = None,
                  check: Callable[[CompiledPolicy], None] | None = None) -> "PolicyHolder":
        return cls(compile_policy(text, filename, params), params, check=check)

    @property
    def current(self) -> CompiledPolicy:
        """The running policy (what the engine uses until it takes the pending one)."""
        return self._current

    @property
    def revision(self) -> str:
        """The newest accepted revision: the pending policy's if any, else the running one's."""
        with self._lock:
            return (self._pending or self._current).revision

    @property
    def has_pending(self) -> bool:
        return self._pending is not None

    def propose(self, text: str, *, filename: str | None = None,
                if_revision: str | None = None) -> ReloadResult:
        """Compile `text` (on this thread); on success make it pending, else keep everything as is."""
        name = filename or (str(self.path) if self.path is not None else "<reload>")
        refused = self._refuse(if_revision)
        if refused is not None:
            return refused
        new_revision = revision_of(text, self._params)
        if new_revision == self.revision:
            return ReloadResult(True, new_revision, message=f"revision {new_revision} is already "
                                "the newest; nothing to do")
        try:
            policy = compile_policy(text, name, self._params)
        except PolicyError as error:
            return ReloadResult(False, self.revision, tuple(error.diagnostics),
                                f"reload refused: {len(error.errors)} error(s) in {name}; "
                                f"revision {self.revision} keeps running")
        if self._check is not None:
            try:
                self._check(policy)
            except ValueError as error:  # e.g. the engine's PolicyError: compiles, cannot run here
                return ReloadResult(False, self.revision, tuple(policy.warnings),
                                    f"reload refused: {error}; revision {self.revision} keeps running")
        with self._lock:
            if if_revision is not None and (self._pending or self._current).revision != if_revision:
                current = (self._pending or self._current).revision
                return ReloadResult(False, current, message=f"reload refused: revision {current} "
                                    f"is running, not {if_revision}")
            self._pending = policy
        return ReloadResult(True, policy.revision, tuple(policy.warnings),
                            f"policy {policy.name} revision {policy.revision} compiled; it takes "
                            "over at the next round")

    def reload_file(self, path: str | Path | None = None, *,
                    if_revision: str | None = None) -> ReloadResult:
        """Re-read the policy file (or `path`) and propose its text."""
        target = Path(path) if path is not None else self.path
        if target is None:
            return ReloadResult(False, self.revision, message="no policy file to reload")
        try:
            text = read_policy_text(target)
        except PolicyError as error:
            return ReloadResult(False, self.revision, tuple(error.diagnostics),
                                f"reload refused: cannot read {target}")
        if path is not None:
            self.path = target
        return self.propose(text, filename=str(target), if_revision=if_revision)

    def take_pending(self) -> CompiledPolicy | None:
        """For the engine loop, between rounds: the accepted new policy (now running), or None."""
        with self._lock:
            policy, self._pending = self._pending, None
            if policy is not None:
                self._current = policy
            return policy

    def _refuse(self, if_revision: str | None) -> ReloadResult | None:
        if if_revision is None:
            return None
        current = self.revision
        if current == if_revision:
            return None
        return ReloadResult(False, current, message=f"reload refused: revision {current} is "
                            f"running, not {if_revision}")
