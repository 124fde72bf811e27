"""Recording a server's arrivals as a workload trace (`gfdit serve --record FILE`, `gfdit record`).

Every request the engine was asked to admit is written as one record of the
GF-DiT trace format that `gfdit simulate` reads (`gfdit.engine.workload`):
shape, class, priority, deadline, and arrival and deadline times in
milliseconds from the recording's start (the engine clock: emulated seconds
under `time_scale`); the prompt and seed only when asked (`prompts`). Requests
refused before admission (invalid fields, a full queue) are not arrivals the
policy saw and are not recorded.

The engine loop only hands the request to a queue; a writer thread formats and
writes it. The file is valid JSON after every write (the records, then the
closing brackets, which the next write overwrites) and flushed, so it can be
read while the server runs. Past `max_bytes` the file is rotated: FILE holds
the newest records, FILE.1 the ones before, up to FILE.`keep`; every part keeps
times from the same start, so parts can be read alone or joined.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path

from gfdit.engine.request import Request

log = logging.getLogger("gfdit.server.recorder")
TRAILER = b"\n]}\n"


HEADER = b'{"description": "arrivals recorded by gfdit serve'


def check_target(path: Path) -> None:
    """A client names the file the server writes: only a `.json` path that is not a symbolic link
    and is new or an earlier recording (never another file of the server's user). ValueError: why not."""
    if path.suffix != ".json":
        raise ValueError(f"a recording is a .json trace, not {str(path)[:200]!r}")
    if path.is_symlink():
        raise ValueError(f"{str(path)[:200]} is a symbolic link")
    if path.exists():
        try:
            with open(path, "rb") as f:
                ours = f.read(len(HEADER)) == HEADER
        except OSError as exc:
            raise ValueError(f"{str(path)[:200]}: {exc.strerror or exc}") from None
        if not ours:
            raise ValueError(f"{str(path)[:200]} exists and is not a gfdit recording: not overwritten")


def shifted_record(request: Request, start: float, prompts: bool = False) -> dict:
    """The trace record of one arrival, its times from `start` (prompt and seed with `prompts`)."""
    rec = request.to_record()
    rec["arrival_ms"] = round((request.arrival - start) * 1000.0, 3)
    if "deadline_ms" in rec:
        rec["deadline_ms"] = round((request.deadline - start) * 1000.0, 3)
    if prompts:
        rec["prompt"], rec["seed"] = request.prompt, request.seed
    return rec


class Recorder:
    """Writes the arrivals handed to `add` to `path`; see the module doc."""

    def __init__(self, path: str | Path, start: float, *, prompts: bool = False, max_bytes: int = 64 << 20,
                 keep: int = 10, metadata: dict | None = None):
        self.path, self.start, self.prompts = Path(path), start, prompts
        self.max_bytes, self.keep = max_bytes, keep
        self.metadata = {"recorded_by": "gfdit serve", "started_at": time.time(), **(metadata or {})}
        self.records = 0
        self.parts = 1
        self.error: str | None = None
        self._file = None
        self._count = 0  # records in the current part
        self._end = 0  # where the next record goes (the trailer's offset)
        check_target(self.path)
        self._open()  # here, not on the thread: a path that cannot be written fails the call
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="gfdit-recorder", daemon=True)
        self._thread.start()

    def add(self, request: Request) -> None:
        """Record one arrival (called on the engine loop: it only queues). Once the writer stopped on
        an error, arrivals are dropped (counted nowhere, `status` tells why): the queue never grows."""
        if self.error is None and self._thread.is_alive():
            self._jobs.put(request)

    def close(self) -> None:
        """Write what is queued, then close the file."""
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def status(self) -> dict:
        return {"path": str(self.path), "records": self.records, "parts": self.parts, "prompts": self.prompts,
                "max_bytes": self.max_bytes, "error": self.error}

    # ---- the writer thread ---------------------------------------------------
    def _run(self) -> None:
        try:
            while (request := self._jobs.get()) is not None:
                self._write(self.record(request))
        except Exception as exc:  # noqa: BLE001 - a full disk, a failed rotation, a bug: the server goes on
            self.error = f"recording to {self.path} stopped: {type(exc).__name__}: {exc}"
            log.error("%s", self.error)
        finally:
            self._drain()
            if self._file is not None:
                self._file.close()

    def _drain(self) -> None:
        """Drop what was queued before the writer stopped (nothing is queued after)."""
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                return

    def record(self, request: Request) -> dict:
        return shifted_record(request, self.start, self.prompts)

    def _write(self, rec: dict) -> None:
        if self._end > self.max_bytes and self._count:
            self._rotate()
        text = ("\n" if not self._count else ",\n") + json.dumps(rec, sort_keys=True)
        self._file.seek(self._end)
        self._file.write(text.encode())
        self._end = self._file.tell()
        self._file.write(TRAILER)
        self._file.flush()
        self._count += 1
        self.records += 1

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        header = {"description": f"arrivals recorded by gfdit serve (part {self.parts})",
                  "metadata": {**self.metadata, "part": self.parts}}
        self._file.write((json.dumps(header)[:-1] + ', "requests": [').encode())
        self._end = self._file.tell()
        self._file.write(TRAILER)
        self._file.flush()
        self._count = 0

    def _rotate(self) -> None:
        """FILE -> FILE.1 -> FILE.2 ...; the oldest past `keep` is removed."""
        self._file.close()
        for k in range(self.keep, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{k}")
            if older.exists():
                if k == self.keep:
                    older.unlink()
                else:
                    os.replace(older, self.path.with_name(f"{self.path.name}.{k + 1}"))
        if self.keep > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self.parts += 1
        self._open()
