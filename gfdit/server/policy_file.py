"""Reading a policy file the server was pointed at (a client's reload path, the watched file).

A path is a request to read a file with the server's rights, and the compiler's
diagnostics quote the source back to whoever asked. So the server reads only:

  * the file itself, never a symbolic link (``O_NOFOLLOW``: a ``x.gfp`` link to
    ``/etc/shadow`` is refused, not followed);
  * a regular file (checked with ``fstat`` on a descriptor opened ``O_NONBLOCK``, so
    a named pipe called ``hang.gfp`` is refused at once instead of blocking);
  * at most `MAX_POLICY_BYTES`, as UTF-8 text without NUL bytes (binary is refused);
  * within `READ_TIMEOUT_S` (the read runs on a helper thread; a stuck file system
    costs that thread, never the caller).

`quotable(text)` says whether diagnostics may quote a file's lines: only when it
is a policy source — it parses, or its first declaration is ``policy NAME``
(what every policy file starts with; a typo further down is still quoted).
Otherwise only codes and positions are reported (`redact`).
"""

from __future__ import annotations

import os
import re
import stat
import threading

MAX_POLICY_BYTES = 1 << 20
READ_TIMEOUT_S = 5.0
SYNTAX_CODES = ("E001", "E002", "E003", "E004", "E005")  # the text does not parse as a policy
_FIRST_DECL = re.compile(r"\A(?:\s*(?:#[^\n]*)?\n)*\s*policy\s+[A-Za-z_]\w*\s*(?:#[^\n]*)?(?:\n|\Z)")


class PolicyFileError(OSError):
    """The file cannot be read as a policy source; the message says why (no contents)."""


def read_policy_file(path: str, timeout_s: float = READ_TIMEOUT_S) -> str:
    """The file's text, or PolicyFileError; never blocks the caller past `timeout_s`."""
    box: dict[str, object] = {}

    def read() -> None:
        try:
            box["text"] = _read(path)
        except PolicyFileError as exc:
            box["error"] = exc

    reader = threading.Thread(target=read, name="gfdit-policy-read", daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        raise PolicyFileError(f"reading {path} took more than {timeout_s:g} s; gave up")
    if "error" in box:
        raise box["error"]
    return box["text"]


def _read(path: str) -> str:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise PolicyFileError(f"{path} is a symbolic link; the server reads only regular files") from None
        raise PolicyFileError(f"cannot open {path}: {exc.strerror}") from None
    except ValueError:  # a NUL in the path
        raise PolicyFileError("a policy path cannot contain NUL") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PolicyFileError(f"{path} is not a regular file; the server reads only regular files")
        if info.st_size > MAX_POLICY_BYTES:
            raise PolicyFileError(f"{path} is {info.st_size} bytes; a policy file is at most {MAX_POLICY_BYTES}")
        data = _read_up_to(fd, MAX_POLICY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyFileError(f"{path} grew past {MAX_POLICY_BYTES} bytes while being read")
    if b"\0" in data:
        raise PolicyFileError(f"{path} is binary (it contains NUL bytes), not a policy source")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyFileError(f"{path} is not UTF-8 text (byte {exc.start}), not a policy source") from None


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(1 << 16, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def quotable(text: str, diagnostic_codes: list[str]) -> bool:
    """May diagnostics quote this server-read text? Only a policy source's (see the module doc)."""
    parses = not any(code in SYNTAX_CODES for code in diagnostic_codes)
    return parses or bool(_FIRST_DECL.match(text))


def redact(source: str, diagnostics) -> list[str]:
    """Codes and positions only: nothing of a file that is not a policy source."""
    shown = [f"{d.location}: {d.severity}[{d.code}]" for d in diagnostics[:5]]
    return [f"{source} does not parse as a policy source; its lines and tokens are not quoted", *shown]
