"""Hot reload: policy text compiled off the engine loop, outcome posted to its inbox.

Proposals (a client's `ReloadPolicy`, or an edit the file watcher saw) are
compiled one at a time on the reload thread. The result — a compiled policy, or
every diagnostic rendered with file:line:col and a caret — goes to the engine
loop's inbox as `PolicyCompiled`; only the loop swaps the policy in (through
`Engine.set_policy`, which takes effect at the next round) and checks the
compare-and-swap revision, so the swap is ordered with every other input.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from gfdit.server.policy_file import PolicyFileError, quotable, read_policy_file, redact

log = logging.getLogger("gfdit.server.reload")


@dataclass(frozen=True)
class ReplyTo:
    """Who asked for a reload (None for the file watcher)."""

    peer: bytes
    call_id: int


@dataclass(frozen=True)
class PolicyCompiled:
    """The outcome of compiling one proposal."""

    policy: object | None
    revision: str
    source: str
    diagnostics: list[str] = field(default_factory=list)
    if_revision: str | None = None
    reply_to: ReplyTo | None = None
    purpose: str = "swap"  # or "shadow": a candidate to run beside the live policy (server/shadow.py)
    text: str = ""  # the source compiled


def text_revision(text: str, params: dict[str, str]) -> str:
    """The revision of a policy text (the language's own definition when installed)."""
    try:
        from gfdit.dsl.load import revision_of
    except ImportError:
        return hashlib.sha256(text.encode()).hexdigest()[:12]
    return revision_of(text, params)


def compile_policy(text: str, filename: str, params: dict[str, str], runs_on: tuple | None = None,
                   server_read: bool = False):
    """Compile .gfp text: (policy, warnings rendered) or (None, every diagnostic rendered).

    `runs_on` = (cost model, GPU count): also probe every rule on that engine's cost model
    (`gfdit.dsl.probe`) and refuse a policy whose rules would fail when they run.
    `server_read`: the server read `filename` itself; its lines are quoted only when it
    is a policy source (`gfdit.server.policy_file.quotable`)."""
    from gfdit.dsl import load
    from gfdit.dsl.diagnostics import PolicyError, compile_error
    from gfdit.dsl.probe import probe
    from gfdit.policies import fit_to

    try:
        policy = load.compile_policy(text, filename, params)
    except PolicyError as exc:
        if server_read and not quotable(text, [d.code for d in exc.diagnostics]):
            return None, redact(filename, exc.diagnostics)
        return None, [d.render() for d in exc.diagnostics]
    notes: list[str] = []
    if runs_on is not None:  # fitted to this cluster as at start: unusable widths dropped, with a note
        def with_widths(widths: str):
            return load.compile_policy(text, filename, {**params, "widths": widths})

        policy, notes = fit_to(policy, with_widths, *runs_on)
    found = probe(policy, *runs_on) if runs_on is not None else []
    if found:
        return None, [d.render() for d in compile_error([*found, *policy.warnings]).diagnostics]
    return policy, [d.render() for d in policy.warnings] + [f"note: {n}" for n in notes]


class ReloadService:
    """One thread compiling proposals in arrival order; results go to `post`."""

    def __init__(self, post: Callable[[PolicyCompiled], None], params: dict[str, str],
                 compile_fn: Callable = compile_policy):
        self._post = post
        self._params = dict(params)
        self._compile = compile_fn
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="gfdit-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def propose(self, text: str | None, source: str, if_revision: str | None = None,
                reply_to: ReplyTo | None = None, *, server_read: bool = False, purpose: str = "swap") -> None:
        """Compile `text`; with text None, read the file `source` here first (never on the
        engine loop: see `gfdit.server.policy_file`). `server_read`: the text came from a
        file the server read (the watcher's), so quote it only if it is a policy source."""
        self._jobs.put((text, source, if_revision, reply_to, server_read or text is None, purpose))

    def close(self) -> None:
        self._jobs.put(None)
        if self._thread.is_alive():  # (a start that failed earlier never started it)
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            text, source, if_revision, reply_to, server_read, purpose = job
            try:
                text = read_policy_file(source) if text is None else text
            except PolicyFileError as exc:
                log.warning("policy reload refused: %s", exc)
                self._post(PolicyCompiled(None, "", source, [str(exc)], if_revision, reply_to, purpose))
                continue
            try:
                extra = {"server_read": True} if server_read else {}
                policy, diagnostics = self._compile(text, source, self._params, **extra)
            except Exception as exc:  # noqa: BLE001 -- top of the reload thread: a compiler bug refuses the edit
                log.exception("policy compiler crashed on %s", source)
                policy, diagnostics = None, [f"{source}: internal compiler error: {type(exc).__name__}: {exc}"]
            revision = getattr(policy, "revision", None) or text_revision(text, self._params)
            self._post(PolicyCompiled(policy, revision, source, diagnostics, if_revision, reply_to, purpose, text))
