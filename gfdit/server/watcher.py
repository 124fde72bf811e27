"""Watches the policy file and reports each new version of its text.

A thread polls the file (mtime, size, then content hash, so a `touch` or an
editor's save-as-rename both work, and an unchanged rewrite is ignored) and calls
`on_change(text)`. It never compiles and never touches the engine: the server
hands the text to its reload path.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Callable

log = logging.getLogger("gfdit.server.watcher")


class PolicyWatcher:
    """Polls `path` every `interval_s`; calls `on_change(text)` when its content changes."""

    def __init__(self, path: str | Path, on_change: Callable[[str], None], interval_s: float = 0.2):
        self.path = Path(path)
        self._on_change = on_change
        self._interval = interval_s
        self._stop = threading.Event()
        self._stamp = self._stat()
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
            text = self._read()
            digest = self._hash(text)
            if text is None or digest == self._digest:
                continue
            self._digest = digest
            log.info("policy file %s changed", self.path)
            self._on_change(text)

    def _stat(self):
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> str | None:
        try:
            return self.path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read policy file %s: %s", self.path, exc)
            return None

    @staticmethod
    def _hash(text: str | None) -> str:
        return hashlib.sha256((text or "").encode()).hexdigest()
