"""Reading a small file someone names, without trusting the name: the one reader behind
`--token-file` (gfdit.cli.token) and policy paths the server reads (gfdit.server.policy_file).

`read_regular_file` opens with ``O_NONBLOCK`` (a named pipe is refused at once, never waited
on), optionally ``O_NOFOLLOW`` (a symbolic link is refused, not followed), checks with
``fstat`` that it is a regular file of at most `limit` bytes, and reads at most `limit` + 1
bytes. A refusal is a `FileRefused` whose `kind` says which check failed, so each caller
words its own message. It imports nothing from gfdit.
"""

from __future__ import annotations

import os
import stat
from typing import Literal

Refusal = Literal["link", "open", "not_regular", "too_big", "grew"]


class FileRefused(OSError):
    """`kind`: which check failed; `detail`: the OS's reason (open) or the size in bytes (too_big)."""

    def __init__(self, kind: Refusal, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind, self.detail = kind, detail


def read_regular_file(path: str, limit: int, *, follow_links: bool = True) -> tuple[bytes, int]:
    """The bytes of the regular file `path` (at most `limit`) and its st_mode; else `FileRefused`.

    ValueError (a NUL in `path`) is left to the caller."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_links and os.path.islink(path):
            raise FileRefused("link") from None
        raise FileRefused("open", exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("not_regular")
        if info.st_size > limit:
            raise FileRefused("too_big", str(info.st_size))
        data = _read_up_to(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileRefused("grew")
    return data, info.st_mode


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(1 << 16, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)
