"""Watches the policy file and reports each new version of its text.

A thread polls the file (lstat's mtime, size and inode, then content hash, so a
`touch` or an editor's save-as-rename both work, and an unchanged rewrite is
ignored) and calls `on_change(text)`. It reads through
`gfdit.server.policy_file` (regular files only, never through a symbolic link,
capped, timed): a file replaced by a link or a pipe calls `on_change(None)`, and
the reload path refuses it with the reason (nothing of the target is read). It
never compiles and never touches the engine.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Callable

from gfdit.server.policy_file import PolicyFileError, read_policy_file

log = logging.getLogger("gfdit.server.watcher")


class PolicyWatcher:
    """Polls `path` every `interval_s`; calls `on_change(text)` when its content changes
    (`on_change(None)` when it can no longer be read as a policy file)."""

    def __init__(self, path: str | Path, on_change: Callable[[str | None], None], interval_s: float = 0.2):
        self.path = Path(path)
        self._on_change = on_change
        self._interval = interval_s
        self._stop = threading.Event()
        self._stamp = self._stat()
        if self.path.is_symlink():
            log.warning("policy file %s is a symbolic link: its edits are refused, not followed "
                        "(the server reads only regular files); give --policy the file itself", self.path)
        self._digest = self._hash(self._read())
        self._thread = threading.Thread(target=self._run, name="gfdit-policy-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            stamp = self._stat()
            if stamp == self._stamp or stamp is None:
                continue
            self._stamp = stamp
            try:
                text = read_policy_file(str(self.path))
            except PolicyFileError as exc:
                log.warning("policy file refused: %s", exc)
                self._digest = None
                self._on_change(None)
                continue
            digest = self._hash(text)
            if digest == self._digest:
                continue
            self._digest = digest
            log.info("policy file %s changed", self.path)
            self._on_change(text)

    def _stat(self):
        try:
            st = self.path.lstat()  # a link put in the file's place is a change (and refused)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> str | None:
        try:
            return read_policy_file(str(self.path))
        except PolicyFileError as exc:
            log.warning("policy file refused: %s", exc)
            return None

    @staticmethod
    def _hash(text: str | None) -> str:
        return hashlib.sha256((text or "").encode()).hexdigest()
